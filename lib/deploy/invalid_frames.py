"""Invalid frames of a video's per-frame estimates: found at the door, named, and bridged.

On real footage a per-frame estimator loses the person now and then. A frame is *invalid* when

* HybrIK has no usable estimate for it: a non-finite value in its pose, betas, translation, joints or
  box; rotation matrices that are all zero; no entry for it in a file that carries frame indices
  (``lib.deploy.inputs``: HybrIK's ``res.pk`` skips frames without a detection); on the frames path,
  an empty person box or a crop that fails (``lib.deploy.hybrik_run``);
* or its 2D keypoints hold nobody: every joint's confidence is 0 (a joint with a non-finite value
  counts as confidence 0).

``--on_invalid bridge`` (the default) fills each invalid frame from the nearest valid frames before
and after it: rotations by slerp on SO(3) (``lib.geometry.rotation.slerp_matrix``), every other
per-frame array linearly (betas, translation m, joints m, box px, 2D x, y px and confidence), at the
fraction ``t = (f - before) / (after - before)``; before the first and after the last valid frame the
nearest valid frame is held. The refiner then runs on the bridged sequence, and the output flags each
frame in ``valid``. ``--on_invalid error`` stops instead, with one line naming the file and the first
invalid frames. A sequence without a single valid frame is always an error.

Frame numbers in messages count from 0, as the rows of the output npz.
"""

from __future__ import annotations

import logging
from typing import Sequence

import numpy as np
import torch

from lib.errors import DataError
from lib.geometry.rotation import slerp_matrix

log = logging.getLogger(__name__)

ON_INVALID = ("bridge", "error")
SHOWN_RUNS = 4            # runs of invalid frames named in a message
NO_PERSON_2D = "no person in the 2D keypoints (every confidence 0)"


# ------------------------------------------------------------------------------------------- maths


def nearest_valid(valid: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For every frame, the valid frames it is bridged from and the fraction between them.

    Args:
        valid: (F,) bool, at least one True.
    Returns:
        before (F,) int, after (F,) int, t (F,) float64 in [0, 1]: a valid frame has
        before = after = itself and t = 0; an invalid frame between valid frames a < f < b has
        before = a, after = b, t = (f - a) / (b - a); one before the first (after the last) valid
        frame has before = after = that frame (held).
    """
    valid = np.asarray(valid, dtype=bool)
    frames = len(valid)
    index = np.arange(frames)
    prev = np.maximum.accumulate(np.where(valid, index, -1))                 # last valid <= f, or -1
    nxt = np.minimum.accumulate(np.where(valid, index, frames)[::-1])[::-1]  # first valid >= f, or F
    before = np.where(prev < 0, nxt, prev)
    after = np.where(nxt >= frames, prev, nxt)
    span = after - before
    t = np.where(span > 0, (index - before) / np.maximum(span, 1), 0.0)
    return before, after, t


def bridge_linear(values: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """(F, ...) per-frame values with the invalid frames linearly interpolated (held at the ends).

    Valid frames are returned unchanged (bit for bit); the values of invalid frames are never read.
    """
    values = np.asarray(values)
    before, after, t = nearest_valid(valid)
    shape = (-1,) + (1,) * (values.ndim - 1)
    t = t.reshape(shape)
    bridged = (1.0 - t) * values[before] + t * values[after]
    return np.where(np.asarray(valid).reshape(shape), values, bridged)


def bridge_rotations(rot_mat: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """(F, J, 3, 3) rotations with the invalid frames slerped per joint (held at the ends).

    Valid frames are returned unchanged; the rotations of invalid frames are never read.
    """
    before, after, t = nearest_valid(valid)
    joints = rot_mat.shape[1]
    start = torch.from_numpy(np.ascontiguousarray(rot_mat[before], dtype=np.float64))  # (F, J, 3, 3)
    end = torch.from_numpy(np.ascontiguousarray(rot_mat[after], dtype=np.float64))
    frac = torch.from_numpy(np.repeat(t[:, None], joints, axis=1))  # (F, J)
    bridged = slerp_matrix(start, end, frac).numpy()
    return np.where(np.asarray(valid)[:, None, None, None], rot_mat, bridged)


# ------------------------------------------------------------------------------------- checks


def flag(issues: list[str], bad: np.ndarray, reason: str) -> None:
    """Record ``reason`` for every frame where ``bad`` (F,) is True and no reason is recorded yet."""
    for f in np.flatnonzero(bad):
        if not issues[f]:
            issues[f] = reason


def describe(issues: Sequence[str], shown: int = SHOWN_RUNS) -> str:
    """The first ``shown`` runs of invalid frames with one reason each, e.g.
    ``frame 4: non-finite 'pose_aa'; frames 10-19: missing from 'img_path'; ... (3 more runs)``."""
    runs: list[tuple[int, int, str]] = []
    for f, reason in enumerate(issues):
        if not reason:
            continue
        if runs and runs[-1][1] == f - 1 and runs[-1][2] == reason:
            runs[-1] = (runs[-1][0], f, reason)
        else:
            runs.append((f, f, reason))
    parts = [f"frame {a}: {r}" if a == b else f"frames {a}-{b}: {r}" for a, b, r in runs[:shown]]
    more = f"; ... ({len(runs) - shown} more runs)" if len(runs) > shown else ""
    return "; ".join(parts) + more


def check_frames(issues: Sequence[str], source: str, on_invalid: str) -> np.ndarray:
    """(F,) bool validity of one input; stops where ``on_invalid`` says so.

    Args:
        issues: F reasons, "" for a valid frame.
        source: the file (or HybrIK stage) the frames came from, for messages.
        on_invalid: ``"bridge"`` or ``"error"``.
    Raises:
        DataError: no valid frame at all; or any invalid frame with ``on_invalid="error"``.
    """
    if on_invalid not in ON_INVALID:
        raise DataError(f"--on_invalid {on_invalid!r}; allowed: {list(ON_INVALID)}")
    valid = np.array([not reason for reason in issues], dtype=bool)
    frames, bad = len(valid), int((~valid).sum())
    if bad == frames:
        raise DataError(f"{source}: all {frames} frames are invalid ({describe(issues)}); there is no valid frame "
                        "to bridge from: check that the file holds the person's estimates")
    if bad and on_invalid == "error":
        raise DataError(f"{source}: {bad} of {frames} frames invalid ({describe(issues)}); fix them, or use "
                        "--on_invalid bridge to interpolate them from the nearest valid frames (flagged in 'valid')")
    if bad:
        log.warning("%s: %d of %d frames invalid, bridged from the nearest valid frames (%s)", source, bad, frames,
                    describe(issues))
    return valid


def keypoint_issues(keypoints: np.ndarray) -> list[str]:
    """F reasons for (F, 17, 3) px + confidence 2D keypoints: a frame whose confidences are all 0 is invalid."""
    empty = ~(np.asarray(keypoints)[..., 2] > 0).any(axis=-1)  # (F,)
    return [NO_PERSON_2D if e else "" for e in empty]

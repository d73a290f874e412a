"""Readers for ``infer_mesh.py``'s inputs: HybrIK results and 2D keypoint files, checked at the door.

HybrIK results (``read_hybrik_results``), one person, one row per frame:

* HybrIK's own ``res.pk`` (``scripts/demo_video.py --save-pk``): ``pred_thetas`` (F, 216) 24 row-major
  3x3 rotations, ``pred_betas`` (F, 10), and when present ``transl`` (F, 3) m, ``pred_xyz_17`` (F, 17, 3)
  root-relative in units of 2.2 m, ``bbox`` (F, 4) expanded square box xyxy px, ``height``, ``width`` (F,) px;
* a plain ``.npz`` or ``.json`` (a dict of arrays / nested lists) with the pose as ``pose_aa``
  ((F, 72) or (F, 24, 3) axis-angle, rad) **or** ``rot_mat`` ((F, 216), (F, 24, 9) or (F, 24, 3, 3)),
  ``betas`` (F, 10), and optionally ``transl`` (F, 3) m, ``bbox`` (F, 4), ``width`` / ``height``
  (scalars or (F,)) and ``fps``. HybrIK's key names are accepted in these files too;
* frame indices, when a file carries them (``FRAME_INDEX_KEYS``, else the numbers ending ``img_path``'s
  file names): a frame without an entry is missing, an invalid frame.

2D keypoints (``read_keypoints_2d``), H36M-17 or COCO-17 (converted with ``coco_to_h36m``):

* ``.npy``: (F, 17, 2) or (F, 17, 3) px (x, y[, score]);
* ``.npz``: ``keypoints`` (F, 17, 2|3) and optionally ``scores`` / ``keypoint_scores`` (F, 17);
* ``.json``: mmpose 1.x ``--save-predictions`` (``{"instance_info": [{"frame_id", "instances":
  [{"keypoints", "keypoint_scores"}]}]}``), a list per frame of mmpose / ViTPose instances
  (``[[{"keypoints", "keypoint_scores"}, ...], ...]``), AlphaPose-style records
  (``[{"image_id", "keypoints": [x, y, s] * 17, "score"}, ...]``, as MotionBERT's wild demo reads),
  ``{"keypoints": ...}``, or a plain (F, 17, 2|3) nested list.

When a frame holds several people, the one closest to HybrIK's box for that frame is taken (else the
most confident); a frame with nobody gets zero confidence.

Video frames (``read_video_frames``): a folder of images (``IMAGE_SUFFIXES``, sorted by name), an
animated ``.gif`` or a single image, decoded lazily one frame at a time. Video files are read by
``lib.deploy.video`` (``infer_mesh.py --video``); given here, they are refused with that flag.
Person boxes (``read_boxes``), one per frame, or ``whole_frame_boxes``.

Every problem is one ``DataError`` line naming the file, the key, expected vs actual, and the fix.
Frames without a usable estimate are not problems of the file: they are kept as *invalid frames*
(NaN values, a reason in ``HybrIKSequence.issues``; a 2D joint with a NaN gets confidence 0, an empty
box becomes a NaN row) and ``lib.deploy.invalid_frames`` reports and bridges them.
"""

from __future__ import annotations

import json
import logging
import pickle
import re
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Iterator, Mapping, Sequence

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from lib.body.joint_names import H36M_NUM_JOINTS, SMPL_NUM_BETAS, SMPL_NUM_JOINTS
from lib.data.keypoints2d import COCO_NUM_JOINTS, coco_to_h36m
from lib.deploy.invalid_frames import flag
from lib.errors import DataError
from lib.geometry.rotation import axis_angle_to_matrix, matrix_to_axis_angle, project_to_so3
from lib.hybrik.camera import DEPTH_FACTOR_M
from lib.hybrik.preprocess import INPUT_NAMES, INPUT_SIZE

log = logging.getLogger(__name__)

# Field -> accepted keys, in priority order (ours first, then HybrIK's res.pk names).
ROTMAT_KEYS = ("rot_mat", "pred_thetas", "pred_theta_mats")
AXIS_ANGLE_KEYS = ("pose_aa", "pred_pose_aa")
BETAS_KEYS = ("betas", "pred_betas", "pred_shape")
TRANSL_KEYS = ("transl",)
XYZ17_KEYS = ("pred_xyz_17", "pred_xyz_jts_17")
BBOX_KEYS = ("bbox",)
FRAME_INDEX_KEYS = ("frame_idx", "frame_index", "frame_indices", "frame_ids")
FRAME_NUMBER = re.compile(r"(\d+)$")  # the frame number ending a file name (HybrIK's img_path)
HYBRIK_SUFFIXES = (".pk", ".pkl", ".pickle")
ROTATION_TOLERANCE = 1e-2      # max |R^T R - I| and |det R - 1| accepted for a "rotation matrix"
LEGACY_QUATERNION_SIZE = 96    # old HybrIK: 24 quaternions instead of 24 matrices
KEYPOINT_LAYOUTS = ("coco", "h36m")
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp")  # frames of a folder
GIF_SUFFIXES = (".gif",)                            # animated GIFs (decoded by Pillow)
VIDEO_HINT = "--video {path}"                       # where a video file goes (lib.deploy.video)


@dataclass(frozen=True)
class HybrIKSequence:
    """HybrIK's per-frame predictions for one person.

    Attributes:
        rot_mat: (F, 24, 3, 3) float64 SMPL rotations (global orientation first), on SO(3).
        betas: (F, 10) float64.
        transl: (F, 3) m, HybrIK's translation (``lib.hybrik.camera``), or None.
        xyz_17: (F, 17, 3) m, HybrIK's H36M-17 joints centred on its pelvis, or None.
        bbox: (F, 4) xyxy px, the expanded square box HybrIK's camera uses, or None.
        image_size: (F, 2) (W, H) px, or None.
        fps: frame rate from the file, or None.
        source: the file it came from.
        issues: F reasons a frame is invalid, "" for a valid frame, or None when all are valid
            (``lib.deploy.invalid_frames``). The arrays hold NaN at invalid frames until they are bridged.
    """

    rot_mat: np.ndarray
    betas: np.ndarray
    transl: np.ndarray | None
    xyz_17: np.ndarray | None
    bbox: np.ndarray | None
    image_size: np.ndarray | None
    fps: float | None
    source: str
    issues: tuple[str, ...] | None = None

    @property
    def frames(self) -> int:
        return len(self.rot_mat)

    @property
    def valid(self) -> np.ndarray:
        """(F,) bool: False where the results hold no usable estimate (see ``issues``)."""
        if self.issues is None:
            return np.ones(self.frames, dtype=bool)
        return np.array([not reason for reason in self.issues], dtype=bool)

    @property
    def pose_aa(self) -> np.ndarray:
        """(F, 72) axis-angle, rad."""
        rot = torch.from_numpy(self.rot_mat)
        return matrix_to_axis_angle(rot).reshape(self.frames, 3 * SMPL_NUM_JOINTS).numpy()


# --------------------------------------------------------------------------------------- HybrIK files


def _load_mapping(path: Path) -> Mapping[str, Any]:
    """The dict stored in a res.pk / .npz / .json file."""
    if not path.is_file():
        raise DataError(f"{path}: HybrIK results not found (resolved to {path.resolve()}); pass res.pk from "
                        "HybrIK's demo_video.py --save-pk, or an .npz / .json with pose and betas")
    suffix = path.suffix.lower()
    try:
        if suffix in HYBRIK_SUFFIXES:
            with path.open("rb") as handle:
                data = pickle.load(handle)  # noqa: S301 - the user's own HybrIK output
        elif suffix == ".npz":
            with np.load(path, allow_pickle=False) as npz:
                data = {k: npz[k] for k in npz.files}
        elif suffix == ".json":
            data = json.loads(path.read_text(encoding="utf-8"))
        else:
            raise DataError(f"{path}: unknown HybrIK results format '{suffix}'; use res.pk (.pk/.pkl), .npz or .json")
    except DataError:
        raise
    except Exception as exc:  # noqa: BLE001 - any parse failure is the same user error
        raise DataError(f"{path}: cannot read ({type(exc).__name__}: {' '.join(str(exc).split())[:160]})") from None
    if not isinstance(data, Mapping):
        raise DataError(f"{path}: expected a dict of per-frame arrays, got {type(data).__name__}")
    return data


def _first_key(data: Mapping[str, Any], keys: Sequence[str]) -> str | None:
    return next((k for k in keys if k in data), None)


def _array(data: Mapping[str, Any], key: str, path: Path) -> np.ndarray:
    try:
        return np.asarray(data[key], dtype=np.float64)
    except (TypeError, ValueError):
        raise DataError(f"{path}: key '{key}' is not a numeric array (per-frame values of equal length)") from None


def _rotations(data: Mapping[str, Any], path: Path) -> tuple[str, np.ndarray, list[str]]:
    """(key, (N, 24, 3, 3), N reasons) from whichever pose key the file holds.

    A row with a non-finite value, or (matrices only) all zeros, is an invalid frame: its reason is
    set and its rotations are NaN. The other rows are checked to be rotations and projected to SO(3).
    """
    key = _first_key(data, ROTMAT_KEYS)
    if key is not None:
        raw = _array(data, key, path)
        frames = raw.shape[0] if raw.ndim else 0
        size = int(np.prod(raw.shape[1:])) if raw.ndim >= 2 else -1
        if size == LEGACY_QUATERNION_SIZE:
            raise DataError(f"{path}: key '{key}' has shape {raw.shape}: 24 quaternions (old HybrIK, issues #22/#92); "
                            "expected 24 rotation matrices (F, 216); re-run a current HybrIK or convert to matrices")
        if raw.ndim < 2 or size != 9 * SMPL_NUM_JOINTS or raw.shape[-1] not in (3, 9, 216):
            raise DataError(f"{path}: key '{key}' has shape {raw.shape}; expected (F, 216), (F, 24, 9) or "
                            "(F, 24, 3, 3): 24 row-major 3x3 rotation matrices per frame")
        rot = raw.reshape(frames, SMPL_NUM_JOINTS, 3, 3)
        issues = [""] * frames
        flag(issues, ~np.isfinite(rot).all(axis=(1, 2, 3)), f"non-finite '{key}'")
        flag(issues, ~rot.any(axis=(1, 2, 3)), f"all-zero '{key}'")
        ok = np.array([not reason for reason in issues], dtype=bool)
        _check_rotations(rot[ok], key, path)
        out = np.full_like(rot, np.nan)
        out[ok] = project_to_so3(torch.from_numpy(rot[ok])).numpy()
        return key, out, issues
    key = _first_key(data, AXIS_ANGLE_KEYS)
    if key is None:
        raise DataError(f"{path}: no pose key; expected one of {list(ROTMAT_KEYS + AXIS_ANGLE_KEYS)} "
                        f"(found keys: {sorted(map(str, data))[:12]})")
    raw = _array(data, key, path)
    if raw.ndim < 2 or int(np.prod(raw.shape[1:])) != 3 * SMPL_NUM_JOINTS or raw.shape[-1] not in (3, 72):
        raise DataError(f"{path}: key '{key}' has shape {raw.shape}; expected (F, 72) or (F, 24, 3) axis-angle in "
                        "radians (24 SMPL joints, global orientation first)")
    aa = raw.reshape(len(raw), SMPL_NUM_JOINTS, 3)
    issues = [""] * len(aa)
    bad = ~np.isfinite(aa).all(axis=(1, 2))
    flag(issues, bad, f"non-finite '{key}'")
    rot = axis_angle_to_matrix(torch.from_numpy(aa)).numpy()
    rot[bad] = np.nan
    return key, rot, issues


def _check_rotations(rot: np.ndarray, key: str, path: Path) -> None:
    gram = np.einsum("...ji,...jk->...ik", rot, rot)  # R^T R, (F, 24, 3, 3)
    err = float(np.abs(gram - np.eye(3)).max()) if len(rot) else 0.0
    det = float(np.abs(np.linalg.det(rot) - 1.0).max()) if len(rot) else 0.0
    if err > ROTATION_TOLERANCE or det > ROTATION_TOLERANCE:
        raise DataError(f"{path}: key '{key}' does not hold rotation matrices (max |R^T R - I| = {err:.3g}, "
                        f"max |det R - 1| = {det:.3g}); expected 24 row-major 3x3 rotations per frame")


def _frame_rows(data: Mapping[str, Any], rows: int, path: Path) -> tuple[np.ndarray, int, str | None]:
    """Where each of the file's ``rows`` entries sits in the video: (rows,) positions, the frame count, the key.

    From an explicit frame-index key (``FRAME_INDEX_KEYS``), else from the numbers ending the file names
    of HybrIK's ``img_path`` (``.../image-000123.png``; used only when every name ends in a number and
    they increase). Positions count from the first entry; frames without an entry are missing.
    Without either, the entries are consecutive frames.
    """
    key = _first_key(data, FRAME_INDEX_KEYS)
    if key is not None:
        index = _array(data, key, path).reshape(-1)
        if len(index) != rows or not np.all(index == np.round(index)):
            raise DataError(f"{path}: key '{key}' has {len(index)} values; expected one integer frame index per "
                            f"entry ({rows})")
        if np.any(np.diff(index) <= 0):
            bad = int(np.flatnonzero(np.diff(index) <= 0)[0])
            raise DataError(f"{path}: key '{key}' is not increasing (entry {bad + 1}: {int(index[bad + 1])} after "
                            f"{int(index[bad])}); expected one entry per frame, in frame order")
    elif "img_path" in data and len(data["img_path"]) == rows and rows:
        key = "img_path"
        numbers = [FRAME_NUMBER.search(Path(str(name)).stem) for name in data["img_path"]]
        if not all(numbers):
            return np.arange(rows), rows, None
        index = np.array([int(m.group(1)) for m in numbers], dtype=np.float64)
        if np.any(np.diff(index) <= 0):
            log.warning("%s: the numbers of 'img_path' do not increase; its entries are taken as consecutive frames",
                        path)
            return np.arange(rows), rows, None
    else:
        return np.arange(rows), rows, None
    positions = (index - index[0]).astype(np.int64)
    return positions, int(positions[-1]) + 1, key


def _expand(value: np.ndarray, positions: np.ndarray, frames: int) -> np.ndarray:
    """(N, ...) entries placed at their frame positions of (F, ...), NaN for frames without an entry."""
    if len(value) == frames:
        return value
    out = np.full((frames,) + value.shape[1:], np.nan)
    out[positions] = value
    return out


def _per_frame(data: Mapping[str, Any], keys: Sequence[str], tail: tuple[int, ...], frames: int, path: Path,
               what: str) -> np.ndarray | None:
    key = _first_key(data, keys)
    if key is None:
        return None
    value = _array(data, key, path)
    if value.ndim == 0 or int(np.prod(value.shape[1:])) != int(np.prod(tail)):
        raise DataError(f"{path}: key '{key}' has shape {value.shape}; expected (F, {', '.join(map(str, tail))}) "
                        f"{what}")
    if len(value) != frames:
        raise DataError(f"{path}: key '{key}' has {len(value)} frames but the pose has {frames}; "
                        "every per-frame array must have one row per frame")
    return value.reshape((frames,) + tail)


def _image_size(data: Mapping[str, Any], frames: int, path: Path) -> np.ndarray | None:
    if "width" not in data and "height" not in data:
        return None
    if "width" not in data or "height" not in data:
        raise DataError(f"{path}: holds only one of 'width' / 'height'; give both (px) or neither")
    width, height = _array(data, "width", path).reshape(-1), _array(data, "height", path).reshape(-1)
    for key, value in (("width", width), ("height", height)):
        if len(value) not in (1, frames):
            raise DataError(f"{path}: key '{key}' has {len(value)} values; expected 1 or one per frame ({frames})")
        if not (value > 0).all():
            raise DataError(f"{path}: key '{key}' has non-positive or non-finite values; expected the frame size in "
                            "pixels")
    return np.stack([np.broadcast_to(width, (frames,)), np.broadcast_to(height, (frames,))], axis=-1)  # (F, 2)


def read_hybrik_results(path: str | Path) -> HybrIKSequence:
    """Read HybrIK's per-frame predictions (see the module docstring for the formats).

    Raises:
        DataError: missing file, unknown format, missing pose / betas, wrong shapes or joint counts,
            per-frame arrays whose lengths disagree, matrices that are not rotations.
    """
    path = Path(path)
    return hybrik_sequence_from_mapping(_load_mapping(path), path)


def hybrik_sequence_from_mapping(data: Mapping[str, Any], path: str | Path,
                                 frame_indices: bool = True) -> HybrIKSequence:
    """``HybrIKSequence`` from an in-memory dict in one of the accepted layouts (``path`` names it in errors).

    Frames without a usable estimate are kept, with NaN values and a reason in ``issues``
    (``lib.deploy.invalid_frames`` reports and bridges them): a non-finite value in the pose, betas,
    translation, joints or box; all-zero rotation matrices; no entry in a file with frame indices.

    Args:
        frame_indices: place the entries by the file's frame indices (``_frame_rows``); False when the
            entries are known to be the frames, in order (HybrIK run here on ``--frames``).
    """
    path = Path(path)
    pose_key, rot, issues = _rotations(data, path)
    entries = len(rot)
    if entries == 0:
        raise DataError(f"{path}: key '{pose_key}' holds no frame")
    betas = _per_frame(data, BETAS_KEYS, (SMPL_NUM_BETAS,), entries, path, "SMPL betas")
    if betas is None:
        raise DataError(f"{path}: no betas; expected one of {list(BETAS_KEYS)} with shape (F, {SMPL_NUM_BETAS})")
    xyz = _per_frame(data, XYZ17_KEYS, (H36M_NUM_JOINTS, 3), entries, path,
                     "H36M-17 joints (HybrIK's pred_xyz_17, units of 2.2 m)")
    transl = _per_frame(data, TRANSL_KEYS, (3,), entries, path, "translation in metres")
    bbox = _per_frame(data, BBOX_KEYS, (4,), entries, path, "boxes xyxy px")
    for key, value in (("betas", betas), ("transl", transl), ("pred_xyz_17", xyz), ("bbox", bbox)):
        if value is not None:
            flag(issues, ~np.isfinite(value.reshape(entries, -1)).all(axis=1), f"non-finite '{key}'")
    positions, frames, index_key = (_frame_rows(data, entries, path) if frame_indices
                                    else (np.arange(entries), entries, None))
    if frames != entries:  # frames without an entry
        entry_issues, issues = issues, [f"missing from '{index_key}'"] * frames
        for position, reason in zip(positions, entry_issues):
            issues[position] = reason
    fps = None
    if "fps" in data:
        fps_arr = _array(data, "fps", path).reshape(-1)
        if len(fps_arr) != 1 or not fps_arr[0] > 0:
            raise DataError(f"{path}: key 'fps' = {fps_arr.tolist()}; expected one positive number")
        fps = float(fps_arr[0])

    def expand(value: np.ndarray | None) -> np.ndarray | None:
        return None if value is None else _expand(value, positions, frames)

    seq = HybrIKSequence(
        rot_mat=expand(rot), betas=expand(betas), transl=expand(transl),
        xyz_17=None if xyz is None else expand(xyz) * DEPTH_FACTOR_M, bbox=expand(bbox),
        image_size=expand(_image_size(data, entries, path)), fps=fps, source=str(path),
        issues=tuple(issues) if any(issues) else None)
    invalid = frames - int(seq.valid.sum())
    log.info("%s: %d frames (pose from '%s'%s%s)", path, frames, pose_key,
             "" if seq.transl is not None else "; no 'transl': meshes stay centred on the pelvis",
             f"; {invalid} invalid" if invalid else "")
    return seq


def _instance_arrays(inst: Mapping[str, Any], path: Path) -> np.ndarray:
    """One mmpose / ViTPose / AlphaPose instance -> (J, 3) px + score."""
    if "keypoints" not in inst:
        raise DataError(f"{path}: a person entry has no 'keypoints' (keys: {sorted(inst)[:8]})")
    kp = np.asarray(inst["keypoints"], dtype=np.float64)
    if kp.ndim == 1:  # AlphaPose / COCO flat [x, y, s] * J
        if kp.size % 3:
            raise DataError(f"{path}: flat 'keypoints' of {kp.size} values; expected [x, y, score] per joint")
        kp = kp.reshape(-1, 3)
    kp = kp.reshape(kp.shape[-2], kp.shape[-1]) if kp.ndim == 3 and kp.shape[0] == 1 else kp
    if kp.ndim != 2 or kp.shape[1] not in (2, 3):
        raise DataError(f"{path}: person 'keypoints' of shape {kp.shape}; expected (J, 2) or (J, 3)")
    scores = inst.get("keypoint_scores", inst.get("scores"))
    if scores is not None:
        s = np.asarray(scores, dtype=np.float64).reshape(-1)
        if len(s) != len(kp):
            raise DataError(f"{path}: {len(s)} keypoint_scores for {len(kp)} keypoints in one person entry")
        kp = np.concatenate([kp[:, :2], s[:, None]], axis=1)
    elif kp.shape[1] == 2:
        kp = np.concatenate([kp, np.ones((len(kp), 1))], axis=1)
    return kp


def _pick_person(people: list[np.ndarray], ref_box: np.ndarray | None) -> np.ndarray | None:
    """The person nearest HybrIK's box centre (score-weighted keypoint centre), else the most confident."""
    if not people:
        return None
    if ref_box is None or len(people) == 1:
        return max(people, key=lambda kp: float(kp[:, 2].mean()))
    centre = np.array([(ref_box[0] + ref_box[2]) / 2, (ref_box[1] + ref_box[3]) / 2])

    def distance(kp: np.ndarray) -> float:
        w = np.clip(kp[:, 2], 1e-6, None)
        return float(np.linalg.norm((kp[:, :2] * w[:, None]).sum(0) / w.sum() - centre))

    return min(people, key=distance)


def _frames_from_json(obj: Any, path: Path) -> list[list[np.ndarray]] | np.ndarray:
    """Per-frame lists of people (or a dense array) from any supported json layout."""
    if isinstance(obj, Mapping):
        if "instance_info" in obj:  # mmpose 1.x --save-predictions
            entries = sorted(obj["instance_info"], key=lambda e: e.get("frame_id", 0))
            return [[_instance_arrays(i, path) for i in e.get("instances", [])] for e in entries]
        if "keypoints" in obj:
            arr = np.asarray(obj["keypoints"], dtype=np.float64)
            scores = obj.get("keypoint_scores", obj.get("scores"))
            if scores is not None:
                arr = np.concatenate([arr[..., :2], np.asarray(scores, dtype=np.float64)[..., None]], axis=-1)
            return arr
        raise DataError(f"{path}: json dict without 'instance_info' or 'keypoints' (keys: {sorted(obj)[:8]}); "
                        "see the supported layouts in lib/deploy/inputs.py")
    if not isinstance(obj, list) or not obj:
        raise DataError(f"{path}: expected a json list or dict of keypoints, got {type(obj).__name__} (or empty)")
    first = obj[0]
    if isinstance(first, Mapping) and "image_id" in first:  # AlphaPose-style flat records
        order: dict[Any, list[np.ndarray]] = {}
        for rec in obj:
            order.setdefault(rec["image_id"], []).append(_instance_arrays(rec, path))
        return list(order.values())
    if isinstance(first, list) and (not first or isinstance(first[0], Mapping)):  # per-frame people
        return [[_instance_arrays(i, path) for i in frame] for frame in obj]
    if isinstance(first, Mapping) and "keypoints" in first:  # one person per frame
        return [[_instance_arrays(rec, path)] for rec in obj]
    try:
        return np.asarray(obj, dtype=np.float64)
    except (TypeError, ValueError):
        raise DataError(f"{path}: json keypoints are neither per-frame person entries nor a numeric "
                        "(F, 17, 2|3) list") from None


def _load_keypoint_frames(path: Path) -> list[list[np.ndarray]] | np.ndarray:
    if not path.is_file():
        raise DataError(f"{path}: 2D keypoint file not found (resolved to {path.resolve()})")
    suffix = path.suffix.lower()
    try:
        if suffix == ".npy":
            return np.load(path, allow_pickle=False).astype(np.float64)
        if suffix == ".npz":
            with np.load(path, allow_pickle=False) as npz:
                if "keypoints" not in npz.files:
                    raise DataError(f"{path}: no key 'keypoints' (keys: {npz.files}); expected keypoints (F, 17, 2|3)")
                arr = npz["keypoints"].astype(np.float64)
                score_key = next((k for k in ("keypoint_scores", "scores") if k in npz.files), None)
                if score_key is not None:
                    arr = np.concatenate([arr[..., :2], npz[score_key].astype(np.float64)[..., None]], axis=-1)
                return arr
        if suffix == ".json":
            return _frames_from_json(json.loads(path.read_text(encoding="utf-8")), path)
    except DataError:
        raise
    except Exception as exc:  # noqa: BLE001
        raise DataError(f"{path}: cannot read ({type(exc).__name__}: {' '.join(str(exc).split())[:160]})") from None
    raise DataError(f"{path}: unknown 2D keypoint format '{suffix}'; use .npy, .npz or .json")


def read_keypoints_2d(path: str | Path, layout: str, frames: int, ref_boxes: np.ndarray | None = None) -> np.ndarray:
    """2D keypoints of one person per frame, converted to H36M-17.

    Args:
        path: .npy / .npz / .json (module docstring).
        layout: ``"coco"`` (COCO-17, mmpose / ViTPose order) or ``"h36m"`` (H36M-17).
        frames: F, the number of frames of the HybrIK results (must match).
        ref_boxes: (F, 4) xyxy px used to pick the person when a frame holds several, or None.
    Returns:
        (F, 17, 3) float64 (x px, y px, score) in ``H36M_JOINT_NAMES`` order; score 0 where a frame had nobody
        and (x, y, score) = 0 for a joint with a non-finite value (``lib.deploy.invalid_frames`` treats a
        frame whose scores are all 0 as invalid).
    Raises:
        DataError: unreadable file, wrong joint count, frame count different from ``frames``.
    """
    if layout not in KEYPOINT_LAYOUTS:
        raise DataError(f"2D keypoint layout {layout!r}; allowed: {list(KEYPOINT_LAYOUTS)}")
    path = Path(path)
    loaded = _load_keypoint_frames(path)
    if isinstance(loaded, np.ndarray):
        arr = loaded[:, 0] if loaded.ndim == 4 and loaded.shape[1] == 1 else loaded  # (F, 1, J, C) -> (F, J, C)
        if arr.ndim != 3 or arr.shape[-1] not in (2, 3):
            raise DataError(f"{path}: keypoints of shape {loaded.shape}; expected (F, 17, 2) or (F, 17, 3) px")
        if arr.shape[-1] == 2:
            arr = np.concatenate([arr, np.ones(arr.shape[:-1] + (1,))], axis=-1)
    else:
        people = [[p for p in frame] for frame in loaded]
        counts = {len(p) for frame in people for p in frame}
        if len(counts) > 1:
            raise DataError(f"{path}: person entries with different joint counts {sorted(counts)}")
        joints = counts.pop() if counts else COCO_NUM_JOINTS
        arr = np.zeros((len(people), joints, 3))
        empty = 0
        for f, frame in enumerate(people):
            chosen = _pick_person(frame, None if ref_boxes is None or f >= len(ref_boxes) else ref_boxes[f])
            if chosen is None:
                empty += 1
            else:
                arr[f] = chosen
        if empty:
            log.warning("%s: %d frame(s) without a person: their 2D confidence is 0", path, empty)
    joints = arr.shape[1]
    expected = COCO_NUM_JOINTS if layout == "coco" else H36M_NUM_JOINTS
    if joints != expected:
        raise DataError(f"{path}: {joints} joints per frame; expected {expected} ({layout.upper()}-17, "
                        "--keypoints_layout coco|h36m); for COCO-WholeBody (133) or Halpe (26) keep the "
                        "first 17 joints")
    if len(arr) != frames:
        raise DataError(f"{path}: {len(arr)} frames of 2D keypoints but the HybrIK results have {frames}; "
                        "give one entry per frame of the same video")
    lost = ~np.isfinite(arr).all(axis=-1)  # (F, J) a joint the detector lost
    if lost.any():
        log.warning("%s: %d joint(s) in %d frame(s) hold NaN or inf: taken as confidence 0", path, int(lost.sum()),
                    int(lost.any(axis=1).sum()))
        arr[lost] = 0.0
    return coco_to_h36m(arr) if layout == "coco" else arr


def read_boxes(path: str | Path, frames: int | None = None) -> np.ndarray:
    """Person boxes, one per frame: .npy / .txt (F, 4) or .json (a list of [x1, y1, x2, y2]), xyxy px.

    A frame where the detector found nobody may hold an *empty* box: NaN / inf values, all zeros, zero
    width or height, or (json) ``null`` / ``[]``. Empty boxes come back as NaN rows: those frames are
    invalid (``lib.deploy.invalid_frames``), HybrIK does not run on them.

    Raises:
        DataError: unreadable file, not (F, 4), not xyxy (x2 < x1 or y2 < y1), or F != ``frames``.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: box file not found (resolved to {path.resolve()})")
    try:
        if path.suffix.lower() == ".npy":
            boxes = np.load(path, allow_pickle=False)
        elif path.suffix.lower() == ".json":
            raw = json.loads(path.read_text(encoding="utf-8"))
            raw = raw["bbox"] if isinstance(raw, Mapping) and "bbox" in raw else raw
            if isinstance(raw, list):  # null / [] where the detector found nobody
                raw = [[np.nan] * 4 if box is None or (isinstance(box, list) and not box) else box for box in raw]
            boxes = np.asarray(raw)
        else:
            boxes = np.loadtxt(path, ndmin=2, delimiter="," if "," in path.read_text()[:200] else None)
        boxes = np.asarray(boxes, dtype=np.float64)
    except Exception as exc:  # noqa: BLE001
        reason = " ".join(str(exc).split())[:160]
        raise DataError(f"{path}: cannot read boxes ({type(exc).__name__}: {reason})") from None
    if boxes.ndim != 2 or boxes.shape[1] != 4:
        raise DataError(f"{path}: boxes of shape {boxes.shape}; expected (F, 4) x1, y1, x2, y2 px, one per frame")
    if frames is not None and len(boxes) != frames:
        raise DataError(f"{path}: {len(boxes)} boxes for {frames} frames; give one box per frame")
    with np.errstate(invalid="ignore"):
        width, height = boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]
        empty = ~np.isfinite(boxes).all(axis=1) | (width == 0) | (height == 0)
        bad = np.flatnonzero(~empty & ((width < 0) | (height < 0)))
    if len(bad):
        raise DataError(f"{path}: box {int(bad[0])} = {boxes[bad[0]].tolist()} is not xyxy (x2 > x1, y2 > y1); "
                        "convert xywh boxes with x2 = x1 + w, y2 = y1 + h")
    if empty.any():
        log.warning("%s: %d empty box(es) (NaN, zeros or zero size): those frames are invalid", path, int(empty.sum()))
    return np.where(empty[:, None], np.nan, boxes)


def whole_frame_boxes(sizes: np.ndarray) -> np.ndarray:
    """The whole frame as each frame's person box: (F, 2) (W, H) px -> (F, 4) xyxy px ``[0, 0, W, H]``."""
    sizes = np.asarray(sizes, dtype=np.float64)
    zeros = np.zeros(len(sizes))
    return np.stack([zeros, zeros, sizes[:, 0], sizes[:, 1]], axis=-1)  # (F, 4)


@dataclass(frozen=True)
class HybrIKCrops:
    """Crops made and normalised the HybrIK way, with their square boxes (``read_hybrik_crops``).

    Attributes:
        source: the npz.
        images: (F, 256, 256, 3) float32 normalised crops (HybrIK's ``input_image``, NHWC).
        bbox: (F, 4) xyxy px, the square region of each frame a crop covers (HybrIK's ``bbox``).
        sizes: (F, 2) (W, H) px of the full frames, ``2 * image_center``.
    """

    source: Path
    images: np.ndarray
    bbox: np.ndarray
    sizes: np.ndarray

    def __len__(self) -> int:
        return len(self.images)


CROP_KEYS = INPUT_NAMES  # input_image, bbox, image_center: the HybrIK ONNX's inputs


def read_hybrik_crops(path: str | Path) -> HybrIKCrops:
    """Ready HybrIK crops: an npz holding the HybrIK ONNX's three inputs, ``np.savez(path, **feeds)``:
    ``input_image`` (F, 256, 256, 3) float normalised, ``bbox`` (F, 4) square crop boxes xyxy px,
    ``image_center`` (F, 2) px (W / 2, H / 2 of the full frames).

    Raises:
        DataError: unreadable, a key missing, or shapes that do not fit (one line naming file and key).
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: crop file not found (resolved to {path.resolve()})")
    try:
        with np.load(path, allow_pickle=False) as npz:
            arrays = {key: np.asarray(npz[key]) for key in CROP_KEYS if key in npz.files}
            found = list(npz.files)
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as exc:
        raise DataError(f"{path}: cannot read crops ({type(exc).__name__}); expected an .npz with "
                        f"{list(CROP_KEYS)} (np.savez of the HybrIK ONNX's inputs)") from None
    missing = [key for key in CROP_KEYS if key not in arrays]
    if missing:
        raise DataError(f"{path}: key(s) {missing} missing (found {found}); expected {list(CROP_KEYS)}: input_image "
                        "(F, 256, 256, 3) normalised crops, bbox (F, 4) their square boxes xyxy px, image_center "
                        "(F, 2) px")
    images, bbox, center = (arrays[key] for key in CROP_KEYS)
    frames = len(images)
    expected = {"input_image": (frames, INPUT_SIZE, INPUT_SIZE, 3), "bbox": (frames, 4), "image_center": (frames, 2)}
    for key, shape in expected.items():
        if arrays[key].shape != shape:
            raise DataError(f"{path}: '{key}' has shape {arrays[key].shape}; expected {shape}")
    return HybrIKCrops(source=path, images=images.astype(np.float32, copy=False),
                       bbox=bbox.astype(np.float64), sizes=2.0 * center.astype(np.float64))


# ----------------------------------------------------------------------------------------- video frames


@dataclass(frozen=True)
class VideoFrames:
    """The frames of one video, decoded lazily (``read_video_frames``).

    Attributes:
        source: the folder, GIF or image it came from.
        names: F frame names (the image file names; ``"<gif name>:<index>"`` for a GIF).
        sizes: (F, 2) (W, H) px of each frame.
        paths: the F image files, or None for a GIF.
    """

    source: Path
    names: tuple[str, ...]
    sizes: np.ndarray
    paths: tuple[Path, ...] | None

    def __len__(self) -> int:
        return len(self.names)

    def read(self, indices: Iterable[int] | None = None) -> Iterator[np.ndarray]:
        """(H, W, 3) uint8 RGB frames at ``indices`` (default: all, in order), one at a time.

        Raises:
            DataError: a frame that cannot be decoded.
        """
        order = range(len(self)) if indices is None else indices
        if self.paths is not None:
            for i in order:
                with _open_image(self.paths[i]) as image:
                    yield _to_rgb(image, self.paths[i])
            return
        with _open_image(self.source) as gif:  # one handle: a GIF decodes forward from the current frame
            for i in order:
                try:
                    gif.seek(i)
                except (EOFError, ValueError):
                    raise DataError(f"{self.source}: no frame {i} (the GIF has {len(self)})") from None
                yield _to_rgb(gif, f"{self.source} frame {i}")


def _open_image(path: Path) -> Image.Image:
    try:
        return Image.open(path)
    except (OSError, UnidentifiedImageError, ValueError) as exc:
        raise DataError(f"{path}: cannot read image ({type(exc).__name__}: {' '.join(str(exc).split())[:120]}); "
                        f"expected one of {list(IMAGE_SUFFIXES + GIF_SUFFIXES)}") from None


def _to_rgb(image: Image.Image, where: object) -> np.ndarray:
    """The pixels of an open image (frame) -> (H, W, 3) uint8 RGB."""
    try:
        return np.asarray(image.convert("RGB"))
    except (OSError, ValueError) as exc:  # truncated or corrupt data
        raise DataError(f"{where}: cannot decode ({type(exc).__name__}: {' '.join(str(exc).split())[:120]}); "
                        "re-extract the frames") from None


def read_video_frames(path: str | Path) -> VideoFrames:
    """The frames of a video: an image folder (sorted by name), an animated GIF, or one image.

    Only image headers are read here; ``VideoFrames.read`` decodes the pixels.

    Raises:
        DataError: missing path, a folder without images, an unreadable image, or a video file
            (.mp4, .avi, ...): the message says to pass it with ``--video``.
    """
    path = Path(path)
    if path.is_dir():
        paths = tuple(sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES))
        if not paths:
            raise DataError(f"{path}: no image files ({', '.join(IMAGE_SUFFIXES)}); give a folder of frames, "
                            f"or a video file with {VIDEO_HINT.format(path='video.mp4')}")
    elif path.is_file() and path.suffix.lower() in IMAGE_SUFFIXES:
        paths = (path,)
    elif path.is_file() and path.suffix.lower() in GIF_SUFFIXES:
        with _open_image(path) as gif:
            count, size = int(getattr(gif, "n_frames", 1)), gif.size
        names = tuple(f"{path.name}:{i:06d}" for i in range(count))
        return VideoFrames(source=path, names=names, sizes=np.tile(np.asarray(size, dtype=np.float64), (count, 1)),
                           paths=None)
    elif path.is_file():
        raise DataError(f"{path}: not an image folder, .gif or image ('{path.suffix}'); a video file goes to "
                        f"{VIDEO_HINT.format(path=path)} instead of --frames")
    else:
        raise DataError(f"{path}: frames not found (resolved to {path.resolve()}); pass a folder of "
                        f"{'/'.join(IMAGE_SUFFIXES)} frames or a .gif")
    sizes = []
    for p in paths:
        with _open_image(p) as image:
            sizes.append(image.size)
    return VideoFrames(source=path, names=tuple(p.name for p in paths), sizes=np.asarray(sizes, dtype=np.float64),
                       paths=paths)

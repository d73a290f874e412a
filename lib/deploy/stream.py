"""Online refinement: frames go in one at a time, each refined frame comes out ``lookahead`` frames later.

``StreamRefiner.push`` takes one frame (HybrIK's pose and betas, the normalised 2D) and returns the
frames that are ready: from the moment frame f + K has arrived, frame f leaves (K = ``lookahead``;
K = 0 is causal). ``flush`` returns the last K frames when the stream ends. ``refine_stream`` runs a
whole sequence through it, the online twin of ``lib.windowed.refine_sequence``.

**What a frame's value is.** Frame f leaves with exactly the value the offline path
(``lib.windowed.refine_sequence``, same window function, ``clip_len``, ``sample_stride``, overlap)
gives frame f of the sequence seen so far, frames 0 .. f + K (at ``flush``: of the whole sequence).
The offline window plan of that prefix ends with a window aligned to its last frame, so for small K
frame f is refined near that window's end (the offline model cut at its window edge, blended with the
earlier windows that cover it, trapezoid weights as offline). With K >= ``clip_len`` x
``sample_stride`` every window that covers f in the whole sequence's plan is complete when f leaves,
and the stream equals the offline result of the whole sequence on every frame.

**State is bounded**: per phase (``sample_stride`` s: frames p, p + s, ... at the training frame
rate), a ring buffer of its last ``clip_len`` frames and the outputs of the windows that frames not
yet emitted still need (at most ``K / (s step) + 2`` windows, step = ``clip_len - overlap``: the
window ending at the newest frame and the offline grid's windows ending in the last K frames); nothing
grows with the length of the stream.

**Cost**: one window call per frame while K < ``clip_len`` (the window ending at the newest frame);
with larger K only the windows of the offline grid, one per ``clip_len - overlap`` frames, as offline.
Flip test-time augmentation (``lib.windowed.with_flip``) doubles it.
"""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass
from typing import Callable

import numpy as np

from lib.body.joint_names import SMPL_NUM_BETAS, SMPL_NUM_JOINTS
from lib.data.clips import Span, covering_windows, default_overlap, stitch_weights
from lib.geometry.rotation import project_to_so3_numpy
from lib.windowed import WindowFn

POSE_DIM = 3 * SMPL_NUM_JOINTS  # 72 axis-angle values per frame


@dataclass(frozen=True)
class RefinedFrame:
    """One refined frame leaving the stream."""

    index: int             # frame number in the stream, from 0
    rot_mat: np.ndarray    # (24, 3, 3) float64 on SO(3)
    betas: np.ndarray      # (10,) float64


class _PhaseStream:
    """One phase of a stream at the training frame rate: its last ``clip_len`` frames and the outputs
    of the windows of the offline plan that its frames not yet emitted still need."""

    def __init__(self, window_fn: WindowFn, clip_len: int, overlap: int) -> None:
        self.window_fn = window_fn
        self.clip_len = clip_len
        self.overlap = overlap
        self.step = clip_len - overlap
        self.length = 0  # frames pushed into this phase
        self.buffer: deque[tuple[np.ndarray, np.ndarray, np.ndarray]] = deque(maxlen=clip_len)
        self.outputs: dict[Span, tuple[np.ndarray, np.ndarray]] = {}  # window -> (T_w,24,3,3), (T_w,10) float64

    def push(self, frame: tuple[np.ndarray, np.ndarray, np.ndarray]) -> None:
        # a window off the offline grid ends at the newest frame: no later prefix's plan holds it
        self.outputs = {span: out for span, out in self.outputs.items() if self._on_grid(span)}
        self.buffer.append(frame)
        self.length += 1
        start = self.length - self.clip_len
        if start >= 0 and start % self.step == 0:
            self._window((start, self.length))  # a window of the offline grid, complete now: later frames need it

    def _on_grid(self, span: Span) -> bool:
        return span[1] - span[0] == self.clip_len and span[0] % self.step == 0

    def _window(self, span: Span) -> tuple[np.ndarray, np.ndarray]:
        """The window's outputs, computed on first use; only a window ending at the newest frame can be."""
        if span not in self.outputs:
            start, end = span
            if end != self.length:  # would need frames the ring buffer no longer holds: a bug, not user input
                raise RuntimeError(f"window {span} was not computed while its frames were buffered")
            frames = list(self.buffer)[len(self.buffer) - (end - start):]
            pose2d, theta, betas = (np.stack(a)[None] for a in zip(*frames))  # (1, T_w, ...)
            rot, shape = self.window_fn(pose2d, theta, betas)
            self.outputs[span] = (np.asarray(rot, dtype=np.float64)[0], np.asarray(shape, dtype=np.float64)[0])
        return self.outputs[span]

    def blended(self, position: int) -> tuple[np.ndarray, np.ndarray]:
        """Frame ``position`` as the offline stitch gives it for the frames pushed so far:
        (24, 3, 3) weighted mean of matrices (not yet on SO(3)) and (10,) betas."""
        rot = np.zeros((SMPL_NUM_JOINTS, 3, 3))
        shape = np.zeros(SMPL_NUM_BETAS)
        total = 0.0
        for start, end in covering_windows(position, self.length, self.clip_len, self.overlap):
            weight = stitch_weights(end - start, self.overlap)[position - start]
            window_rot, window_shape = self._window((start, end))
            rot += weight * window_rot[position - start]
            shape += weight * window_shape[position - start]
            total += weight
        return rot / total, shape / total

    def forget_before(self, position: int) -> None:
        """Drop the windows that only cover frames before ``position`` (all emitted)."""
        for span in [s for s in self.outputs if s[1] <= position]:
            del self.outputs[span]


class StreamRefiner:
    """Online, windowed refinement with a fixed delay of ``lookahead`` frames (see the module docstring).

    Args:
        window_fn: a ``lib.windowed.WindowFn`` (``torch_window_fn``, ``RefinerSession.window_fn``,
            optionally wrapped in ``with_flip``), called with one window at a time.
        clip_len: window length (the checkpoint's ``clip_len``).
        lookahead: K >= 0, frames each output waits for (0: causal).
        sample_stride: the checkpoint's ``sample_stride`` (each phase refined at the training frame rate).
        overlap: frames shared by consecutive offline windows, 0 <= overlap < clip_len (default clip_len // 2).
    """

    def __init__(self, window_fn: WindowFn, *, clip_len: int, lookahead: int, sample_stride: int = 1,
                 overlap: int | None = None) -> None:
        overlap = default_overlap(clip_len) if overlap is None else overlap
        if clip_len < 1 or not 0 <= overlap < clip_len:
            raise ValueError(f"need clip_len >= 1 and 0 <= overlap < clip_len, got clip_len {clip_len}, overlap {overlap}")
        if lookahead < 0 or sample_stride < 1:
            raise ValueError(f"need lookahead >= 0 and sample_stride >= 1, got {lookahead} and {sample_stride}")
        self.window_fn, self.clip_len, self.overlap = window_fn, clip_len, overlap
        self.lookahead, self.sample_stride = lookahead, sample_stride
        self._reset()

    def _reset(self) -> None:
        self.phases = [_PhaseStream(self.window_fn, self.clip_len, self.overlap) for _ in range(self.sample_stride)]
        self.pushed = 0   # frames in
        self.emitted = 0  # frames out

    def push(self, pose2d: np.ndarray, theta: np.ndarray, betas: np.ndarray) -> list[RefinedFrame]:
        """Add the next frame; returns the frames now ready (one once K frames are buffered, else none).

        Args:
            pose2d: (17, C) normalised 2D keypoints (``lib.data.keypoints2d.pose2d_input``).
            theta: (72,) HybrIK axis-angle, rad.
            betas: (10,) HybrIK betas.
        """
        frame = (np.asarray(pose2d, dtype=np.float32), np.asarray(theta, dtype=np.float32),
                 np.asarray(betas, dtype=np.float32))
        if frame[0].ndim != 2 or frame[1].shape != (POSE_DIM,) or frame[2].shape != (SMPL_NUM_BETAS,):
            raise ValueError(f"one frame is pose2d (17, C), theta ({POSE_DIM},), betas ({SMPL_NUM_BETAS},); got "
                             f"{frame[0].shape}, {frame[1].shape}, {frame[2].shape}")
        self.phases[self.pushed % self.sample_stride].push(frame)
        self.pushed += 1
        return self._emit(self.pushed - self.lookahead)

    def flush(self) -> list[RefinedFrame]:
        """End the stream: the frames still waiting, refined with the whole sequence. The refiner is then
        empty and the next ``push`` starts a new stream at frame 0."""
        out = self._emit(self.pushed)
        self._reset()
        return out

    def _emit(self, stop: int) -> list[RefinedFrame]:
        """Frames ``emitted .. stop - 1``, each from its phase's offline stitch of the frames pushed so far."""
        out = []
        while self.emitted < stop:
            index = self.emitted
            phase, position = self.phases[index % self.sample_stride], index // self.sample_stride
            rot, shape = phase.blended(position)
            rot = project_to_so3_numpy(rot)  # as lib.windowed's project_to_so3, without torch's per-call cost
            out.append(RefinedFrame(index, rot, shape))
            phase.forget_before(position + 1)
            self.emitted += 1
        return out

    def buffered_windows(self) -> int:
        """Window outputs held in memory now (at most (K / (sample_stride x step) + 2) per phase)."""
        return sum(len(p.outputs) for p in self.phases)


def refine_stream(window_fn: WindowFn, pose2d: np.ndarray, theta: np.ndarray, betas: np.ndarray, *, clip_len: int,
                  lookahead: int, sample_stride: int = 1, overlap: int | None = None,
                  on_push: Callable[[int, float], None] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """A whole sequence through a ``StreamRefiner``, frame by frame, then flushed.

    Args:
        pose2d (F, 17, C), theta (F, 72) rad, betas (F, 10): as ``lib.windowed.refine_sequence``.
        on_push: called after each push with the frame number and the push's wall time in seconds.
    Returns:
        rot_mat (F, 24, 3, 3) float64 on SO(3), betas (F, 10) float64 (F = 0 gives empty arrays).
    """
    frames = len(theta)
    if len(pose2d) != frames or len(betas) != frames:
        raise ValueError(f"pose2d, theta and betas have {len(pose2d)}, {frames} and {len(betas)} frames")
    stream = StreamRefiner(window_fn, clip_len=clip_len, lookahead=lookahead, sample_stride=sample_stride,
                           overlap=overlap)
    rot = np.zeros((frames, SMPL_NUM_JOINTS, 3, 3))
    shape = np.zeros((frames, SMPL_NUM_BETAS))
    ready: list[RefinedFrame] = []
    for f in range(frames):
        start = time.perf_counter()
        ready += stream.push(pose2d[f], theta[f], betas[f])
        if on_push is not None:
            on_push(f, time.perf_counter() - start)
    ready += stream.flush()
    for item in ready:
        rot[item.index], shape[item.index] = item.rot_mat, item.betas
    if [item.index for item in ready] != list(range(frames)):
        raise RuntimeError(f"the stream returned frames {[item.index for item in ready][:8]}... for {frames} frames")
    return rot, shape

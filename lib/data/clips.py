"""Sequence spans, training clips, evaluation windows and their stitching (pure numpy, no torch).

The pickles store every sequence of a split concatenated along the frame axis; ``source`` names the
sequence of each frame. Everything here works on row indices into such a split, so that every
per-frame array (2D, confidence, GT and HybrIK pose/shape) is indexed by the *same* rows: the
original's ``sample_stride`` misalignment (reference ``ehgformer_mesh.md`` 10.6) cannot happen.

Conventions:
    * a span is ``(start, end)``: rows ``start .. end - 1`` of one sequence (half-open);
    * training clips are ``(K, clip_len)`` int64 row indices;
    * evaluation windows are ``(start, end)`` positions inside one sequence (or one phase of it).

Differences from the original ``split_clips`` (reference 10.14), all deliberate:
    * a tail that does not fill a window gets one extra window aligned to the sequence end (the
      original dropped it), so every frame is seen in training and scored in evaluation;
    * a sequence shorter than ``clip_len`` is resampled in training with a fixed rounding rule (the
      original used random floor/ceil), and kept whole, not resampled, in evaluation;
    * ``sample_stride`` restarts at each sequence start instead of striding the concatenation.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

Span = tuple[int, int]


def sequence_spans(source: Sequence | np.ndarray) -> list[Span]:
    """Runs of equal consecutive values of ``source``.

    Args:
        source: (F,) per-frame sequence id (str, bytes or int).
    Returns:
        ``[(start, end), ...]`` covering ``0 .. F`` in order; a sequence id that reappears after
        another one starts a new span (the frames are not contiguous, so they are not one sequence).
    """
    src = np.asarray(source)
    if src.ndim != 1:
        raise ValueError(f"source must be 1-D (F,), got shape {src.shape}")
    n = len(src)
    if n == 0:
        return []
    change = np.flatnonzero(src[1:] != src[:-1]) + 1  # first row of every span but the first
    bounds = np.concatenate([[0], change, [n]])
    return [(int(a), int(b)) for a, b in zip(bounds[:-1], bounds[1:])]


def _check_positive(name: str, value: int) -> None:
    if int(value) != value or value < 1:
        raise ValueError(f"{name} must be an integer >= 1, got {value!r}")


def subsample_indices(spans: Sequence[Span], sample_stride: int, phase: int = 0) -> np.ndarray:
    """Rows kept by a temporal stride, restarting at each sequence start.

    Sequence ``(start, end)`` keeps rows ``start + phase, start + phase + s, ... < end``. Index
    every per-frame array with the result (all arrays together) to subsample a split.

    Args:
        spans: sequence spans of the split (``sequence_spans``).
        sample_stride: s >= 1.
        phase: 0 <= phase < s; the offset of the first kept frame in each sequence.
    Returns:
        (F',) int64 rows, increasing.
    """
    _check_positive("sample_stride", sample_stride)
    if not 0 <= phase < sample_stride:
        raise ValueError(f"phase must be in [0, {sample_stride}), got {phase}")
    parts = [np.arange(start + phase, end, sample_stride, dtype=np.int64) for start, end in spans]
    return np.concatenate(parts) if parts else np.zeros(0, dtype=np.int64)


def subsampled_spans(spans: Sequence[Span], sample_stride: int, phase: int = 0) -> list[Span]:
    """The spans of the rows ``subsample_indices`` keeps, as positions in that subsampled array.

    A sequence with no frame left (length <= phase) disappears.
    """
    _check_positive("sample_stride", sample_stride)
    out: list[Span] = []
    pos = 0
    for start, end in spans:
        n = len(range(start + phase, end, sample_stride))
        if n:
            out.append((pos, pos + n))
            pos += n
    return out


def _window_starts(length: int, clip_len: int, step: int) -> list[int]:
    """Starts of windows of ``clip_len`` every ``step`` frames, plus one aligned to the end if needed.

    Requires ``length >= clip_len``; the last window always ends at ``length``.
    """
    starts = list(range(0, length - clip_len + 1, step))
    if starts[-1] + clip_len < length:
        starts.append(length - clip_len)
    return starts


def resample_indices(length: int, clip_len: int) -> np.ndarray:
    """Deterministic resampling of ``length`` frames to ``clip_len`` positions.

    ``round(linspace(0, length - 1, clip_len))`` (round half to even): evenly spread, first and last
    frames included, increasing, some frames repeated when ``length < clip_len``. No randomness.

    Returns:
        (clip_len,) int64 positions in ``0 .. length - 1``.
    """
    _check_positive("length", length)
    _check_positive("clip_len", clip_len)
    return np.rint(np.linspace(0.0, length - 1, clip_len)).astype(np.int64)


def train_clips(spans: Sequence[Span], clip_len: int, stride: int) -> np.ndarray:
    """Training clips: windows of ``clip_len`` rows every ``stride`` rows, never crossing a span.

    Per sequence of length L:
        * L >= clip_len: starts ``0, stride, 2 stride, ...``; when the last of those windows does not
          reach the sequence end, one more window ending exactly at the end is added, so no frame is
          left out (the original dropped such tails);
        * 0 < L < clip_len: one clip resampled deterministically to ``clip_len`` rows
          (``resample_indices``: evenly spread, repeats allowed, no randomness).

    Args:
        spans: sequence spans (in whatever row space the caller indexes, e.g. after subsampling).
        clip_len: frames per clip, >= 1.
        stride: rows between consecutive clip starts, >= 1.
    Returns:
        (K, clip_len) int64 rows.
    """
    _check_positive("clip_len", clip_len)
    _check_positive("stride", stride)
    offsets = np.arange(clip_len, dtype=np.int64)
    clips: list[np.ndarray] = []
    for start, end in spans:
        length = end - start
        if length <= 0:
            continue
        if length >= clip_len:
            starts = np.asarray(_window_starts(length, clip_len, stride), dtype=np.int64)
            clips.append(start + starts[:, None] + offsets[None, :])  # (k, clip_len)
        else:
            clips.append((start + resample_indices(length, clip_len))[None, :])  # (1, clip_len)
    if not clips:
        return np.zeros((0, clip_len), dtype=np.int64)
    return np.concatenate(clips, axis=0)


def clip_spans(spans: Sequence[Span], clips: np.ndarray) -> np.ndarray:
    """(K, 2) the (start, end) span holding each clip of ``train_clips(spans, ...)`` (K, T)."""
    bounds = np.asarray(spans, dtype=np.int64).reshape(-1, 2)  # (S, 2), sorted by start
    if len(clips) == 0:
        return np.zeros((0, 2), dtype=np.int64)
    holder = np.searchsorted(bounds[:, 0], clips[:, 0], side="right") - 1  # (K,) span of each clip
    return bounds[holder]


def speed_up_clip(clip: np.ndarray, span: Span, step: int) -> np.ndarray:
    """A training clip read every ``step``-th row: the same motion ``step`` times faster.

    Takes ``clip_len`` rows ``step`` apart from the clip's first row; when that runs past the span's
    end the window slides back, and when the span is too short for ``step`` the largest step that
    fits is used. A clip that is not consecutive rows (a short span resampled with repeats) and
    ``step`` 1 are returned unchanged.

    Args:
        clip: (T,) rows of one span, as ``train_clips`` cuts them.
        span: (start, end) of that span, end exclusive.
        step: rows between consecutive frames of the returned clip, >= 1.
    Returns:
        (T,) int64 rows inside the span, evenly spaced by a step in ``1 .. step``.
    """
    _check_positive("step", step)
    start, end = int(span[0]), int(span[1])
    clip_len = len(clip)
    if step == 1 or clip_len < 2 or np.any(np.diff(clip) != 1):
        return clip
    step = max(1, min(step, (end - start - 1) // (clip_len - 1)))
    first = min(int(clip[0]), end - 1 - step * (clip_len - 1))  # >= start: step * (T - 1) <= end - start - 1
    return first + step * np.arange(clip_len, dtype=np.int64)


def default_overlap(clip_len: int) -> int:
    """The evaluation overlap used when none is given: half a window."""
    return clip_len // 2


def eval_windows(length: int, clip_len: int, overlap: int | None = None) -> list[Span]:
    """Evaluation windows covering every frame of one sequence.

    Consecutive windows overlap by ``overlap`` frames (step ``clip_len - overlap``); the last window
    is aligned to the sequence end (so it may overlap its neighbour by more). A sequence of at most
    ``clip_len`` frames is one window of its own length: the model accepts any T <= maxlen, so
    nothing is resampled or padded.

    Args:
        length: frames in the sequence, >= 1.
        clip_len: window length, >= 1.
        overlap: 0 <= overlap < clip_len; default ``clip_len // 2``.
    Returns:
        ``[(start, end), ...]`` positions in ``0 .. length``, increasing starts.
    """
    _check_positive("length", length)
    _check_positive("clip_len", clip_len)
    overlap = default_overlap(clip_len) if overlap is None else overlap
    if not 0 <= overlap < clip_len:
        raise ValueError(f"overlap must be in [0, clip_len={clip_len}), got {overlap}")
    if length <= clip_len:
        return [(0, length)]
    return [(s, s + clip_len) for s in _window_starts(length, clip_len, clip_len - overlap)]


def covering_windows(position: int, length: int, clip_len: int, overlap: int | None = None) -> list[Span]:
    """The windows of ``eval_windows(length, clip_len, overlap)`` that contain ``position``, found without
    listing every window (O(clip_len / step)): what a stream needs to blend one frame of a growing sequence.

    Args:
        position: 0 <= position < length.
        length, clip_len, overlap: as ``eval_windows``.
    Returns:
        ``[(start, end), ...]`` in increasing start order (a subset of ``eval_windows``' list).
    """
    _check_positive("length", length)
    _check_positive("clip_len", clip_len)
    overlap = default_overlap(clip_len) if overlap is None else overlap
    if not 0 <= overlap < clip_len:
        raise ValueError(f"overlap must be in [0, clip_len={clip_len}), got {overlap}")
    if not 0 <= position < length:
        raise ValueError(f"position must be in [0, {length}), got {position}")
    if length <= clip_len:
        return [(0, length)]
    step = clip_len - overlap
    last_regular = (length - clip_len) // step * step  # start of the last window of the regular grid
    first = max(0, -(-(position - clip_len + 1) // step)) * step  # smallest grid start with start + clip_len > position
    windows = [(s, s + clip_len) for s in range(first, min(position, last_regular) + 1, step)]
    if last_regular + clip_len < length and position >= length - clip_len:
        windows.append((length - clip_len, length))  # the window aligned to the end
    return windows


def stitch_weights(window_len: int, overlap: int | None = None) -> np.ndarray:
    """Per-frame blending weights of one window: a trapezoid, > 0 everywhere.

    ``w[i] = min(1, (i + 1) / (r + 1), (window_len - i) / (r + 1))`` with ramp ``r = overlap``
    (default ``window_len // 2``). Two windows overlapping by exactly ``r`` frames then have weights
    summing to 1 across the overlap (a partition of unity), so the blend is a linear cross-fade; at
    the sequence ends, where a single window covers a frame, the normalisation in ``stitch`` makes
    the small weights irrelevant.

    Returns:
        (window_len,) float64 in (0, 1].
    """
    _check_positive("window_len", window_len)
    ramp = default_overlap(window_len) if overlap is None else overlap
    if ramp < 0:
        raise ValueError(f"overlap must be >= 0, got {overlap}")
    i = np.arange(window_len, dtype=np.float64)
    return np.minimum(1.0, np.minimum((i + 1) / (ramp + 1), (window_len - i) / (ramp + 1)))


def stitch(window_values: Sequence[np.ndarray], windows: Sequence[Span], length: int,
           overlap: int | None = None) -> np.ndarray:
    """Per-frame weighted average of overlapping window values.

    Frame f gets ``sum_w weight_w(f) * value_w(f) / sum_w weight_w(f)`` over the windows covering it,
    with ``stitch_weights(window_len, overlap)``. Stitching a constant gives the constant; stitching
    windows cut from one signal gives the signal back exactly. For rotation matrices the result is a
    weighted mean of matrices: project it back with ``lib.geometry.rotation.project_to_so3``.

    Args:
        window_values: one (w, ...) array per window, w = its length.
        windows: the ``(start, end)`` of each window, as ``eval_windows`` returns.
        length: frames in the sequence.
        overlap: the ramp of ``stitch_weights`` (default: half of each window).
    Returns:
        (length, ...) float array (the values' float dtype, float64 for integer values).
    Raises:
        ValueError: mismatched counts or shapes, or a frame no window covers.
    """
    if len(window_values) != len(windows):
        raise ValueError(f"{len(window_values)} window values for {len(windows)} windows")
    if not windows:
        raise ValueError("stitch needs at least one window")
    first = np.asarray(window_values[0])
    out_dtype = first.dtype if np.issubdtype(first.dtype, np.floating) else np.float64
    tail = first.shape[1:]
    acc = np.zeros((length,) + tail, dtype=np.float64)
    total = np.zeros(length, dtype=np.float64)
    for values, (start, end) in zip(window_values, windows):
        values = np.asarray(values)
        if values.shape != (end - start,) + tail:
            raise ValueError(f"window ({start}, {end}) has values of shape {values.shape}, "
                             f"expected {(end - start,) + tail}")
        if not 0 <= start < end <= length:
            raise ValueError(f"window ({start}, {end}) outside a sequence of {length} frames")
        weight = stitch_weights(end - start, overlap)  # (w,)
        acc[start:end] += weight.reshape((-1,) + (1,) * len(tail)) * values
        total[start:end] += weight
    if np.any(total <= 0):
        raise ValueError(f"frames {np.flatnonzero(total <= 0)[:5].tolist()}... are covered by no window")
    return (acc / total.reshape((-1,) + (1,) * len(tail))).astype(out_dtype, copy=False)


def phase_split(length: int, sample_stride: int) -> list[np.ndarray]:
    """The phases of a sequence under a temporal stride: frames p, p + s, p + 2s, ... for p < s.

    Evaluation with ``sample_stride`` s > 1 refines each phase at the training frame rate and then
    puts the results back with ``interleave``. Phases with no frame (only when length < s) are left
    out, so every returned phase is non-empty.

    Returns:
        up to s (F_p,) int64 arrays of positions in ``0 .. length``; together, every position once.
    """
    _check_positive("sample_stride", sample_stride)
    if length < 0:
        raise ValueError(f"length must be >= 0, got {length}")
    phases = [np.arange(p, length, sample_stride, dtype=np.int64) for p in range(sample_stride)]
    return [p for p in phases if len(p)]


def interleave(phase_values: Sequence[np.ndarray], phases: Sequence[np.ndarray]) -> np.ndarray:
    """Inverse of ``phase_split``: put per-phase values back at their frames.

    Args:
        phase_values: one (F_p, ...) array per phase.
        phases: the positions of each phase (``phase_split``).
    Returns:
        (sum F_p, ...) array with ``out[phases[p]] = phase_values[p]``.
    """
    if len(phase_values) != len(phases):
        raise ValueError(f"{len(phase_values)} phase values for {len(phases)} phases")
    if not phases:
        raise ValueError("interleave needs at least one phase")
    first = np.asarray(phase_values[0])
    length = int(sum(len(p) for p in phases))
    out = np.empty((length,) + first.shape[1:], dtype=np.result_type(*[np.asarray(v).dtype for v in phase_values]))
    seen = np.zeros(length, dtype=bool)
    for values, pos in zip(phase_values, phases):
        values = np.asarray(values)
        if values.shape[0] != len(pos) or values.shape[1:] != first.shape[1:]:
            raise ValueError(f"phase values of shape {values.shape} for {len(pos)} frames")
        out[pos] = values
        seen[pos] = True
    if not seen.all():
        raise ValueError("phases do not cover 0 .. length - 1 exactly once")
    return out


# ------------------------------------------------------------------------- one sequence, windowed


@dataclass(frozen=True)
class PlannedWindow:
    """One window of a ``WindowPlan``: positions ``start .. end - 1`` of phase ``phase``."""

    phase: int
    start: int
    end: int

    @property
    def length(self) -> int:
        return self.end - self.start


class WindowPlan:
    """How one sequence is refined window by window and put back together (evaluation and inference).

    1. with ``sample_stride`` s > 1 the sequence is split into its s phases (``phase_split``), each
       refined at the training frame rate;
    2. each phase is cut into windows of ``clip_len`` overlapping by ``overlap`` (``eval_windows``: the
       last aligned to the phase end; a phase shorter than ``clip_len`` is one window of its own length);
    3. ``windows`` lists them longest first (a stable sort), so equal lengths batch together
       (``groups``); ``stitch`` blends the per-window outputs per phase (``stitch``, trapezoid weights)
       and interleaves the phases back: one value per frame, every frame once.

    Args:
        frames: frames in the sequence, >= 1.
        clip_len: window length.
        sample_stride: the training frame-rate stride.
        overlap: frames shared by consecutive windows, default ``clip_len // 2``.
    """

    def __init__(self, frames: int, clip_len: int, sample_stride: int = 1, overlap: int | None = None) -> None:
        _check_positive("frames", frames)
        self.frames = frames
        self.overlap = default_overlap(clip_len) if overlap is None else overlap
        self.phases = phase_split(frames, sample_stride)
        windows = [PlannedWindow(p, start, end) for p, pos in enumerate(self.phases)
                   for start, end in eval_windows(len(pos), clip_len, self.overlap)]
        self.windows: list[PlannedWindow] = sorted(windows, key=lambda w: -w.length)

    def positions(self, window: PlannedWindow) -> np.ndarray:
        """(T,) int64 frame positions (into the sequence) of ``window``."""
        return self.phases[window.phase][window.start:window.end]

    def groups(self, max_windows: int) -> list[list[PlannedWindow]]:
        """Consecutive runs of ``windows`` of equal length, at most ``max_windows`` each."""
        _check_positive("max_windows", max_windows)
        groups: list[list[PlannedWindow]] = []
        for window in self.windows:
            if groups and groups[-1][0].length == window.length and len(groups[-1]) < max_windows:
                groups[-1].append(window)
            else:
                groups.append([window])
        return groups

    def stitch(self, per_window: Sequence[np.ndarray], what: str = "sequence") -> np.ndarray:
        """One (T_w, ...) value per window, in ``windows`` order -> (frames, ...) per-frame values.

        For rotation matrices project the result with ``lib.geometry.rotation.project_to_so3``.
        ``what`` names the sequence in error messages.
        """
        if len(per_window) != len(self.windows):
            raise ValueError(f"{what}: {len(per_window)} window outputs for {len(self.windows)} windows; "
                             "pass one per window, in order")
        values: list[list[np.ndarray]] = [[] for _ in self.phases]
        spans: list[list[Span]] = [[] for _ in self.phases]
        for window, value in zip(self.windows, per_window):
            if len(value) != window.length:
                raise ValueError(f"{what}: window of {window.length} frames got an output of {len(value)} frames")
            values[window.phase].append(value)
            spans[window.phase].append((window.start, window.end))
        return interleave([stitch(v, sp, len(pos), self.overlap) for v, sp, pos in zip(values, spans, self.phases)],
                          self.phases)

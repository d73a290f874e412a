"""Readers and ``torch.utils.data.Dataset``s over the mesh pickles (H36M, COCO, 3DPW).

Three layers:
    * ``MeshSplit``: one split of one pickle, as ``lib.data.schema.load_mesh_pickle`` returns it
      (checked, not copied), its sequence spans, and the normalised 2D input computed once;
    * ``TrainClipDataset``: training clips (``lib.data.clips.train_clips``) over the
      ``sample_stride``-subsampled frames, with the random flip;
    * ``EvalSequences``: evaluation sequence by sequence, each with its frames at the full frame rate
      and its ``clips.WindowPlan``; ``lib.windowed`` refines it window by window and stitches the
      outputs back to one value per frame (every test frame exactly once).

Items and batches are dicts of tensors (``docs/architecture.md``):
    ``pose2d`` (T, 17, C) float32, C = 3 (x, y, confidence) or 2 with ``no_conf``;
    ``gt_pose`` (T, 72) rad, ``gt_shape`` (T, 10), ``hybrik_pose`` (T, 72) rad, ``hybrik_shape``
    (T, 10), all float32; ``frame_index`` (T,) int64.
``frame_index`` is the row of each frame in its split (the pickle's row, before any subsampling),
so ``split.sequence_name(row)`` names it; with ``sample_stride`` s the rows of a clip are s apart.

Every per-frame array is indexed with the same rows (the fix of ``ehgformer_mesh.md`` 10.6).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterator, Mapping
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import Dataset

from lib.config.task import TaskConfig
from lib.data import augment, keypoints2d, schema
from lib.data.clips import (
    clip_spans,
    speed_up_clip,
    Span,
    WindowPlan,
    sequence_spans,
    subsample_indices,
    subsampled_spans,
    train_clips,
)
from lib.errors import ConfigError, DataError
from lib.body.flip import flip_h36m_keypoints, flip_smpl_axis_angle
from lib.geometry.rotation import axis_angle_to_matrix, roll_keypoints_2d, roll_smpl_axis_angle, turn_smpl_axis_angle

log = logging.getLogger(__name__)

DATASETS = ("h36m", "coco", "pw3d")
SPLITS = ("train", "test")

# Pickle keys (reference ehgformer_mesh.md 4.2).
KEY_2D = "joint_2d"
KEY_CONF = "confidence"
KEY_SOURCE = "source"
KEY_CAMERA = "camera_name"
KEY_GT_POSE = "smpl_pose"
KEY_GT_SHAPE = "smpl_shape"
KEY_HYBRIK_POSE = "pred_smpl_pose"
KEY_HYBRIK_SHAPE = "pred_smpl_shape"

# Item key -> pickle key of the SMPL arrays (all float32 in items).
SMPL_ITEM_KEYS = {
    "gt_pose": KEY_GT_POSE,
    "gt_shape": KEY_GT_SHAPE,
    "hybrik_pose": KEY_HYBRIK_POSE,
    "hybrik_shape": KEY_HYBRIK_SHAPE,
}
POSE_ITEM_KEYS = ("gt_pose", "hybrik_pose")  # flipped by the augmentation; betas are not
ITEM_KEYS = ("pose2d", *SMPL_ITEM_KEYS, "frame_index")

FLIP_PROBABILITY = 0.5
_CORRUPTION_STREAM = 1  # extra seed word: the corruptions never share draws with the flip and roll
_SPEED_STREAM = 2  # extra seed word of the speed-up draw
_ORBIT_STREAM = 3  # extra seed word of the camera-orbit draw
_LIMB_STREAM = 4  # extra seed word of the body-pose offsets
KEY_JOINT_CAM = "joint_cam"
# COCO is a set of single images: each image is its own clip, and every image is kept.
COCO_CLIP_LEN = 1
COCO_DATA_STRIDE = 1
COCO_SAMPLE_STRIDE = 1


def _as_name(value: Any) -> str:
    """A sequence id from the pickle as text (ids may be str, bytes or int)."""
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    return str(value)


class MeshSplit:
    """One split of one mesh pickle: arrays by reference, spans, and the normalised 2D input.

    Args:
        arrays: the split's per-frame arrays as ``schema.load_mesh_pickle`` returns them (not copied).
        dataset: ``"h36m"``, ``"coco"`` or ``"pw3d"``; selects the 2D canvas (H36M: per frame, from
            ``camera_name``; the others: ``keypoints2d.DATASET_CANVAS``).
        split: ``"train"`` or ``"test"``.
        path: the file the arrays came from (for messages).
        no_conf: drop the confidence channel of the 2D input (C = 2 instead of 3).
    """

    def __init__(self, arrays: Mapping[str, np.ndarray], dataset: str, split: str,
                 path: str | Path = "<memory>", no_conf: bool = False) -> None:
        if dataset not in DATASETS:
            raise ValueError(f"dataset must be one of {DATASETS}, got {dataset!r}")
        self.arrays = arrays
        self.dataset = dataset
        self.split = split
        self.path = str(path)
        self.no_conf = no_conf
        self.frames = int(len(arrays[KEY_SOURCE]))
        self.spans: list[Span] = sequence_spans(np.asarray(arrays[KEY_SOURCE]))
        # (F, 72) HybrIK's own pose where KEY_HYBRIK_POSE holds its 2D fit (MeshFiles, fit2d_prior), else None
        self.unfitted_hybrik_pose: np.ndarray | None = None

    def __repr__(self) -> str:
        return (f"MeshSplit({self.dataset}/{self.split}: {self.frames} frames, "
                f"{len(self.spans)} sequences, {self.path})")

    @property
    def channels(self) -> int:
        """Channels of the 2D input: 3 (x, y, confidence) or 2 with ``no_conf``."""
        return 2 if self.no_conf else 3

    def _confidence(self) -> np.ndarray:
        """(F, 17) detector confidence; ones where the pickle has none (allowed for H36M)."""
        if KEY_CONF not in self.arrays:
            if self.dataset != "h36m":
                raise DataError(f"{self.path}: split '{self.split}' has no key '{KEY_CONF}' (required for "
                                f"{self.dataset}); regenerate the pickle with detector confidences")
            return np.ones(np.shape(self.arrays[KEY_2D])[:2], dtype=np.float32)
        conf = np.asarray(self.arrays[KEY_CONF])
        return conf.reshape(conf.shape[:2])  # (F, 17, 1) or (F, 17) -> (F, 17)

    @cached_property
    def pose2d(self) -> np.ndarray:
        """(F, 17, C) float32: 2D keypoints normalised on the dataset canvas, confidence in [0, 1].

        ``x / W * 2 - 1``, ``y / W * 2 - H / W`` with (W, H) the dataset's canvas (H36M: each frame's
        camera). Computed once, on first access.
        """
        joints = np.asarray(self.arrays[KEY_2D])
        xy = joints[..., :2]  # (F, 17, 2) px; a third channel, if any, is not used (as the original)
        conf = self._confidence()
        out = np.empty(xy.shape[:2] + (self.channels,), dtype=np.float32)
        for (width, height), rows in self._canvas_groups():
            normalised = keypoints2d.pose2d_input(xy[rows], conf[rows], width, height)  # (n, 17, 3)
            out[rows] = normalised[..., : self.channels]
        return out

    def _canvas_groups(self) -> list[tuple[tuple[int, int], slice | np.ndarray]]:
        """((W, H), rows) for every canvas of the split: one for 3DPW / COCO, one per H36M camera."""
        if self.dataset != "h36m":
            return [(keypoints2d.DATASET_CANVAS[self.dataset], slice(None))]
        cameras, which = np.unique(np.asarray(self.arrays[KEY_CAMERA]), return_inverse=True)
        groups = []
        for k, camera in enumerate(map(_as_name, cameras)):
            if camera not in keypoints2d.H36M_CAMERA_RES:
                known = sorted(keypoints2d.H36M_CAMERA_RES)
                raise DataError(f"{self.path}: split '{self.split}' key '{KEY_CAMERA}' holds unknown camera "
                                f"'{camera}'; expected one of {known}; fix the pickle's camera ids")
            groups.append((keypoints2d.H36M_CAMERA_RES[camera], np.flatnonzero(which.reshape(-1) == k)))
        return groups

    def canvas_widths(self) -> np.ndarray:
        """(F,) the canvas width W (px) of every frame, as ``pose2d`` normalises it."""
        widths = np.empty(self.frames, dtype=np.float64)
        for (width, _), rows in self._canvas_groups():
            widths[rows] = width
        return widths

    def sequence_name(self, row: int) -> str:
        """The ``source`` of the frame at ``row``."""
        return _as_name(self.arrays[KEY_SOURCE][int(row)])

    def take(self, rows: np.ndarray) -> dict[str, np.ndarray]:
        """Every per-frame input and label at ``rows`` (any shape (...)), all indexed identically.

        Returns:
            ``pose2d`` (..., 17, C) float32, the four SMPL arrays (..., 72 | 10) float32,
            ``frame_index`` (...) int64 = ``rows``.
        """
        rows = np.asarray(rows, dtype=np.int64)
        out = {"pose2d": self.pose2d[rows]}
        for item_key, pickle_key in SMPL_ITEM_KEYS.items():
            out[item_key] = np.asarray(self.arrays[pickle_key][rows], dtype=np.float32)
        out["frame_index"] = rows.copy()
        return out


def sequence_focals(split: MeshSplit) -> np.ndarray:
    """(F,) the focal length (px) fitted per sequence (``augment.focal_from_projection``), NaN where none fits.

    Needs ``joint_cam`` (camera-frame 3D joints, optional in the pickles); a one-line ``DataError`` otherwise.
    """
    if KEY_JOINT_CAM not in split.arrays:
        raise DataError(f"{split.path}: split '{split.split}' has no key '{KEY_JOINT_CAM}' (F, 17, 3), which "
                        "orbit_deg > 0 and limb_deg > 0 need to re-project the 2D; set both to 0 or use pickles with joint_cam")
    joints_cam = np.asarray(split.arrays[KEY_JOINT_CAM], dtype=np.float64)  # (F, 17, 3)
    joints_2d = np.asarray(split.arrays[KEY_2D], dtype=np.float64)[..., :2]  # (F, 17, 2) px
    conf = split.pose2d[..., 2] if split.channels == 3 else np.ones(joints_2d.shape[:2])
    focal = np.full(split.frames, np.nan)
    for start, end in split.spans:
        focal[start:end] = augment.focal_from_projection(joints_cam[start:end], joints_2d[start:end],
                                                         conf[start:end])
    return focal


def _to_tensors(arrays: Mapping[str, np.ndarray]) -> dict[str, Tensor]:
    return {key: torch.from_numpy(np.ascontiguousarray(value)) for key, value in arrays.items()}


class TrainClipDataset(Dataset):
    """Training clips of one split, with the random horizontal flip.

    Frames are first subsampled by ``sample_stride`` per sequence (phase 0: frames 0, s, 2s, ... of
    every sequence); clips of ``clip_len`` of those frames every ``data_stride`` are cut with
    ``train_clips`` (never across a sequence, tails covered, short sequences resampled without
    randomness). Every per-frame array is indexed with the same split rows.

    Flip (``flip=True``): with probability 0.5 per item, the 2D is mirrored
    (``flip_h36m_keypoints``: x -> -x on the normalised canvas, left/right swapped) and both the GT
    and the HybrIK poses are flipped (``flip_smpl_axis_angle``); betas are unchanged.

    Camera roll (``rotate_deg`` a > 0): every item is then rotated by an angle drawn uniformly from
    [-a, a] degrees about the optical axis: the 2D about the canvas centre (``roll_keypoints_2d``),
    the GT and HybrIK global orientations by the same rotation (``roll_smpl_axis_angle``), so the
    refiner cannot tie its corrections to the few camera orientations of a small training set.

    Corruptions (``lib.data.augment``; ``hybrik_noise_deg`` > 0, ``drop_2d`` > 0): HybrIK's input pose
    gets extra white + drifting rotation noise of a random level up to ``hybrik_noise_deg`` per axis
    (the GT is untouched), and up to a fraction ``drop_2d`` of the 2D joints lose their detection.

    Speed-up (``speed_max`` m > 1): each item reads its clip every s-th (subsampled) frame, s drawn
    uniformly from 1..m (``clips.speed_up_clip``): every input and label of the same frames, so the
    motion is up to m times faster and the frame rate effectively lower. Why: a small training set
    shows the refiner its own motions at its own frame rates (25/30/50 fps and fast motions elsewhere).

    Camera orbit (``orbit_deg`` o > 0, video splits with ``joint_cam``): each item is seen by a camera
    moved round the person by a pitch and a yaw drawn uniformly from [-o, o] degrees about the root:
    the GT and HybrIK global orientations turn by that rotation and every detected 2D joint moves by
    the projection change of its true 3D joint (``augment.orbit_keypoints_2d``; the focal length of
    each sequence fitted once from ``joint_cam`` and ``joint_2d``), its detection error kept. Why: the
    refiner otherwise learns the few camera elevations of a small training set as a prior on the
    global orientation, and pulls every other camera's people towards them (issue 14: a model trained
    on style a's cameras, pitched down 2-9 deg, made style b's global orientation error 1.45x worse).

    Body-pose offsets (``limb_deg`` l > 0, video splits with ``joint_cam``; needs ``body``): every body
    joint of the GT and of HybrIK's input turns by the same rotation in its own frame (a constant plus a
    ramp over the clip, up to l degrees each, ``augment.limb_offsets``), so HybrIK's error on that joint
    is carried over; the true 3D joints move by the SMPL change (GT betas, root kept in place) and every
    detected 2D joint by its projection change (``augment.reproject_keypoints_2d``, detection error
    kept). Applied first, so the corruptions, the orbit and the roll see the new pose. Why: a small
    training set shows the refiner a few motion families; learnt on them alone, its residual pulls other
    people's poses towards them (issue 14: trained on style a, given style b's true poses and clean 2D,
    it still returned 100 mm errors).

    Randomness: the flip, roll and corruptions of item ``i`` in epoch ``e`` are drawn from
    ``numpy.random.default_rng([seed, e, i])``, a function of (seed, epoch, index) only, so it does
    not depend on the number of DataLoader workers, on which worker loads the item, or on the order
    of loading. Call ``set_epoch(e)`` before creating each epoch's DataLoader iterator (workers copy
    the dataset when the iterator starts; do not use ``persistent_workers``).

    Args:
        split: the split to cut.
        clip_len: frames per clip (T of the items).
        data_stride: clip starts this many (subsampled) frames apart.
        sample_stride: temporal subsampling, >= 1.
        flip: enable the random flip.
        seed: base seed of the augmentation.
        rotate_deg: the largest camera roll, degrees (0: none).
        hybrik_noise_deg: the largest per-axis std of the extra HybrIK noise, degrees (0: none).
        drop_2d: the largest fraction of dropped 2D joints (0: none).
        speed_max: the largest speed-up factor (1: none).
        orbit_deg: the largest camera-orbit pitch and yaw, degrees (0: none).
        limb_deg: the largest body-pose offset per joint, degrees (0: none).
        body: ``lib.body.smpl.BodyModel`` (CPU), needed when ``limb_deg`` > 0.
    """

    def __init__(self, split: MeshSplit, clip_len: int, data_stride: int, sample_stride: int,
                 flip: bool, seed: int, rotate_deg: float = 0.0, hybrik_noise_deg: float = 0.0,
                 drop_2d: float = 0.0, speed_max: int = 1, orbit_deg: float = 0.0, limb_deg: float = 0.0,
                 body: torch.nn.Module | None = None) -> None:
        self.split = split
        self.clip_len = clip_len
        self.data_stride = data_stride
        self.sample_stride = sample_stride
        self.flip = flip
        self.seed = seed
        self.rotate_deg = rotate_deg
        self.hybrik_noise_deg = hybrik_noise_deg
        self.drop_2d = drop_2d
        self.speed_max = speed_max
        self.epoch = 0
        self.kept = subsample_indices(split.spans, sample_stride)  # (F',) split rows
        spans = subsampled_spans(split.spans, sample_stride)
        self.clips = train_clips(spans, clip_len, data_stride)  # (K, clip_len) positions in `kept`
        self.clip_spans = clip_spans(spans, self.clips)  # (K, 2) span of each clip, positions in `kept`
        self.clip_rows: np.ndarray = self.kept[self.clips]  # (K, clip_len) split rows
        _ = split.pose2d  # normalise once here, before DataLoader workers copy the split
        self.orbit_deg = orbit_deg
        self.limb_deg = limb_deg
        if limb_deg > 0 and body is None:
            raise ValueError("limb_deg > 0 needs the SMPL body model (body=BodyModel(data_root))")
        self.body = body
        self.focal = self.widths = None
        if orbit_deg > 0 or limb_deg > 0:
            self.focal, self.widths = sequence_focals(split), split.canvas_widths()  # (F,) px each
        log.info("%s/%s: %d training clips of %d frames (data_stride %d, sample_stride %d, flip %s)",
                 split.dataset, split.split, len(self.clip_rows), clip_len, data_stride, sample_stride, flip)

    def set_epoch(self, epoch: int) -> None:
        """Select the augmentation draws of ``epoch`` (see the class docstring)."""
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return len(self.clip_rows)

    def augmentation(self, index: int) -> tuple[bool, float]:
        """(flipped, roll angle in rad) of item ``index`` in the current epoch: a pure function of
        (seed, epoch, index)."""
        rng = np.random.default_rng([self.seed, self.epoch, int(index)])
        flipped = bool(rng.random() < FLIP_PROBABILITY) and self.flip
        angle = math.radians(rng.uniform(-self.rotate_deg, self.rotate_deg)) if self.rotate_deg > 0 else 0.0
        return flipped, angle

    def is_flipped(self, index: int) -> bool:
        """Whether item ``index`` of the current epoch is flipped (a pure function of seed, epoch, index)."""
        return self.augmentation(index)[0]

    def rows(self, index: int) -> np.ndarray:
        """(clip_len,) split rows of item ``index`` in the current epoch (sped up by a drawn factor)."""
        if self.speed_max <= 1:
            return self.clip_rows[index]
        rng = np.random.default_rng([self.seed, self.epoch, int(index), _SPEED_STREAM])
        step = int(rng.integers(1, self.speed_max + 1))
        return self.kept[speed_up_clip(self.clips[index], self.clip_spans[index], step)]

    def orbit(self, arrays: dict[str, np.ndarray], joints_cam: np.ndarray, rng: np.random.Generator) -> None:
        """Apply a camera orbit drawn from ``rng`` to an item's arrays in place (class docstring).
        joints_cam: (T, 17, 3) mm, the item's true joints in the camera frame."""
        rows = arrays["frame_index"]
        focal = float(self.focal[rows[0]])
        pitch, yaw = np.radians(rng.uniform(-self.orbit_deg, self.orbit_deg, size=2))
        if not np.isfinite(focal):  # no camera could be fitted to this sequence: leave it as it is
            return
        rot = augment.orbit_matrix(pitch, yaw)
        arrays["pose2d"] = augment.orbit_keypoints_2d(arrays["pose2d"], joints_cam, rot, focal,
                                                      float(self.widths[rows[0]]))
        for key in POSE_ITEM_KEYS:
            arrays[key] = turn_smpl_axis_angle(torch.from_numpy(arrays[key]), torch.from_numpy(rot)).numpy()

    def offset_limbs(self, arrays: dict[str, np.ndarray], joints_cam: np.ndarray,
                     rng: np.random.Generator) -> np.ndarray:
        """Apply body-pose offsets drawn from ``rng`` to an item's arrays in place (class docstring).

        Args:
            joints_cam: (T, 17, 3) mm, the item's true joints in the camera frame.
        Returns:
            (T, 17, 3) mm, the true joints of the new pose (``joints_cam`` when no camera fits the sequence).
        """
        rows = arrays["frame_index"]
        focal = float(self.focal[rows[0]])
        offsets = augment.limb_offsets(rng, len(rows), self.limb_deg)  # (T, 24, 3) rad
        if not np.isfinite(focal):  # the 2D could not follow: leave the item as it is
            return joints_cam
        from lib.body.smpl import posed_mesh_mm  # smplx: only when an augmentation needs SMPL

        new_pose = augment.offset_pose(arrays["gt_pose"], offsets)
        poses = torch.from_numpy(np.stack([arrays["gt_pose"], new_pose])).float()  # (2, T, 72): before, after
        betas = torch.from_numpy(arrays["gt_shape"]).float().expand(2, -1, -1)  # (2, T, 10)
        with torch.no_grad():  # both poses in one SMPL call; joints pelvis-centred, so the root stays in place
            _, joints = posed_mesh_mm(self.body, axis_angle_to_matrix(poses.unflatten(-1, (24, 3))), betas)
        before, after = joints.double().numpy()  # (T, 17, 3) mm each
        moved = joints_cam + after - before  # (T, 17, 3) mm
        arrays["pose2d"] = augment.reproject_keypoints_2d(arrays["pose2d"], joints_cam, moved, focal,
                                                          float(self.widths[rows[0]]))
        arrays["gt_pose"] = new_pose
        arrays["hybrik_pose"] = augment.offset_pose(arrays["hybrik_pose"], offsets)
        return moved

    def __getitem__(self, index: int) -> dict[str, Tensor]:
        arrays = self.split.take(self.rows(index))
        joints_cam = None  # (T, 17, 3) mm, the true joints, when an augmentation re-projects the 2D
        if self.limb_deg > 0 or self.orbit_deg > 0:
            joints_cam = np.asarray(self.split.arrays[KEY_JOINT_CAM][arrays["frame_index"]], dtype=np.float64)
        if self.limb_deg > 0:
            joints_cam = self.offset_limbs(arrays, joints_cam,
                                           np.random.default_rng([self.seed, self.epoch, int(index), _LIMB_STREAM]))
        if self.hybrik_noise_deg > 0 or self.drop_2d > 0:
            rng = np.random.default_rng([self.seed, self.epoch, int(index), _CORRUPTION_STREAM])
            arrays["hybrik_pose"] = augment.corrupt_pose(arrays["hybrik_pose"], rng, self.hybrik_noise_deg)
            arrays["pose2d"] = augment.drop_keypoints(arrays["pose2d"], rng, self.drop_2d)
        if self.orbit_deg > 0:
            self.orbit(arrays, joints_cam, np.random.default_rng([self.seed, self.epoch, int(index), _ORBIT_STREAM]))
        item = _to_tensors(arrays)
        flipped, angle = self.augmentation(index)
        if flipped:
            item["pose2d"] = flip_h36m_keypoints(item["pose2d"])
            for key in POSE_ITEM_KEYS:
                item[key] = flip_smpl_axis_angle(item[key])
        if angle != 0.0:
            item["pose2d"] = roll_keypoints_2d(item["pose2d"], angle)
            for key in POSE_ITEM_KEYS:
                item[key] = roll_smpl_axis_angle(item[key], angle)
        return item


# ------------------------------------------------------------------------------------ evaluation


class EvalSequence:
    """One test sequence of a split, refined window by window as ``clips.WindowPlan`` lays out.

    With ``sample_stride`` s > 1 the sequence is split into its s phases (frames p, p + s, ...),
    each phase is cut into windows of ``clip_len`` overlapping by ``overlap`` (the last aligned to
    the phase end; a phase shorter than ``clip_len`` is one window of its own length). ``lib.windowed``
    batches the windows of ``frame_arrays()`` and stitches the outputs back per frame.

    Attributes:
        name: the ``source`` id.
        rows: (F_seq,) split rows of the sequence, in frame order (full frame rate).
        clip_len, sample_stride: the window length and frame-rate stride it is refined with.
        plan: the ``WindowPlan`` (phases, windows, stitching weights).
    """

    def __init__(self, split: MeshSplit, name: str, rows: np.ndarray, sample_stride: int,
                 clip_len: int, overlap: int | None = None) -> None:
        self.split = split
        self.name = name
        self.rows = rows
        self.clip_len = clip_len
        self.sample_stride = sample_stride
        self.plan = WindowPlan(len(rows), clip_len, sample_stride, overlap)

    def __repr__(self) -> str:
        return f"EvalSequence({self.name!r}: {len(self.rows)} frames, {len(self.plan.windows)} windows)"

    @property
    def frames(self) -> int:
        return len(self.rows)

    def frame_arrays(self) -> dict[str, Tensor]:
        """The sequence's inputs and labels at the full frame rate, one entry per frame.

        Returns:
            the item keys with T = F_seq (frame order), e.g. for the HybrIK-input metrics and the GT;
            plus ``hybrik_pose_unfitted`` (T, 72), HybrIK's own pose, when ``hybrik_pose`` is its 2D fit.
        """
        arrays = self.split.take(self.rows)
        if self.split.unfitted_hybrik_pose is not None:
            arrays["hybrik_pose_unfitted"] = np.asarray(self.split.unfitted_hybrik_pose[self.rows], dtype=np.float32)
        return _to_tensors(arrays)


class EvalSequences:
    """The test sequences of a split, one at a time (memory does not grow with the test set).

    Every frame of the split belongs to exactly one sequence, and the stitched refinement of a
    sequence has exactly one value per frame, so evaluating every sequence scores every frame once
    (``frames`` = the split's frame count, the number the report prints).

    Args:
        split: the test split.
        sample_stride: the training frame-rate stride; each sequence is evaluated per phase.
        clip_len: window length (the training ``clip_len``).
        overlap: frames shared by consecutive windows; default ``clip_len // 2``.
    """

    def __init__(self, split: MeshSplit, sample_stride: int, clip_len: int, overlap: int | None = None) -> None:
        if sample_stride < 1 or clip_len < 1:
            raise ValueError(f"sample_stride and clip_len must be >= 1, got {sample_stride}, {clip_len}")
        self.split = split
        self.sample_stride = sample_stride
        self.clip_len = clip_len
        self.overlap = overlap

    def __len__(self) -> int:
        return len(self.split.spans)

    @property
    def frames(self) -> int:
        return self.split.frames

    def __iter__(self) -> Iterator[EvalSequence]:
        for start, end in self.split.spans:
            rows = np.arange(start, end, dtype=np.int64)
            yield EvalSequence(self.split, self.split.sequence_name(start), rows,
                               self.sample_stride, self.clip_len, self.overlap)


# ----------------------------------------------------------------------------- files and configs


class MeshFiles:
    """The pickles a config names, each loaded at most once (both splits kept together).

    ``split(dataset, name)`` loads ``cfg.data_path(cfg.dt_file_<dataset>)`` on first use and wraps
    both of its splits; later calls for either split reuse them. With ``cfg.fit2d_prior`` set, every
    split's HybrIK pose is the fit to its own 2D (``lib.data.hybrik_fit``): what training, validation
    and the smoothers see; the reports' "input" stays HybrIK's own (``MeshSplit.unfitted_hybrik_pose``).
    """

    def __init__(self, cfg: TaskConfig) -> None:
        self.cfg = cfg
        self._loaded: dict[str, dict[str, MeshSplit]] = {}
        self._body: torch.nn.Module | None = None  # SMPL, for the 2D fit of HybrIK's input (fit2d_prior)

    def path(self, dataset: str) -> Path:
        """The pickle of ``dataset`` under ``data_root``.

        Raises:
            ConfigError: the config does not name a file for ``dataset``.
        """
        if dataset not in DATASETS:
            raise ValueError(f"dataset must be one of {DATASETS}, got {dataset!r}")
        name = getattr(self.cfg, f"dt_file_{dataset}")
        if name is None:
            raise ConfigError(f"{self.cfg.source}: key 'dt_file_{dataset}' is not set; "
                              f"name the {dataset} pickle (a file under data_root) to use {dataset} data")
        return self.cfg.data_path(name)

    def split(self, dataset: str, split: str) -> MeshSplit:
        if split not in SPLITS:
            raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
        if dataset not in self._loaded:
            path = self.path(dataset)
            data = schema.load_mesh_pickle(path, dataset)
            self._loaded[dataset] = {name: MeshSplit(data[name], dataset, name, path, no_conf=self.cfg.no_conf)
                                     for name in SPLITS}
            if self.cfg.fit2d_prior is not None:
                for name in SPLITS:
                    self._loaded[dataset][name] = self._fitted(self._loaded[dataset][name])
            log.info("loaded %s: %s", path, ", ".join(f"{s} {self._loaded[dataset][s].frames} frames"
                                                     for s in SPLITS))
        return self._loaded[dataset][split]

    def _fitted(self, split: MeshSplit) -> MeshSplit:
        """``split`` with HybrIK's pose replaced by its fit to the split's own 2D (``lib.data.hybrik_fit``;
        the arrays copied shallowly, the pickle's own untouched)."""
        from lib.data.hybrik_fit import fitted_split_pose

        if self._body is None:
            self._body = body_model_for(self.cfg)
        arrays = dict(split.arrays)
        arrays[KEY_HYBRIK_POSE] = fitted_split_pose(
            split.path, split.split, self._body, np.asarray(arrays[KEY_HYBRIK_POSE]),
            np.asarray(arrays[KEY_HYBRIK_SHAPE]), split.pose2d, prior_weight=self.cfg.fit2d_prior,
            steps=self.cfg.fit2d_steps, robust=self.cfg.fit2d_robust)
        fitted = MeshSplit(arrays, split.dataset, split.split, split.path, no_conf=split.no_conf)
        fitted.__dict__["pose2d"] = split.pose2d  # the same 2D, computed once
        fitted.unfitted_hybrik_pose = np.asarray(split.arrays[KEY_HYBRIK_POSE])
        return fitted


def load_split(cfg: TaskConfig, dataset: str, split: str, files: MeshFiles | None = None) -> MeshSplit:
    """One split of the pickle ``cfg`` names for ``dataset`` (through ``files`` to load it once)."""
    return (files if files is not None else MeshFiles(cfg)).split(dataset, split)


def body_model_for(cfg: TaskConfig) -> torch.nn.Module:
    """The SMPL model of ``cfg.data_root`` on the CPU, for augmentations that re-pose the body."""
    from lib.body.smpl import BodyModel  # smplx: only when an augmentation needs SMPL

    return BodyModel(cfg.data_root).eval()


def build_train_sets(cfg: TaskConfig, seed: int, files: MeshFiles | None = None) -> dict[str, TrainClipDataset]:
    """The training datasets of a config, keyed by dataset name.

    * ``h36m``: when ``dt_file_h36m`` is set and ``warmup_h36m`` > 0 (the loop runs its pass in epochs
      < warmup_h36m);
    * ``coco``: when ``dt_file_coco`` is set and ``warmup_coco`` > 0; single images (clip_len 1,
      data_stride 1, sample_stride 1: every image is its own clip and every image is kept; the
      original strided COCO by 2 and so used half of the images, with labels misaligned);
    * ``pw3d``: when ``train_pw3d`` (which requires ``dt_file_pw3d``).
    Video datasets use ``clip_len``, ``data_stride`` and ``sample_stride`` from the config; all use
    ``cfg.flip`` and ``seed``. Pass ``files`` to share loaded pickles with the evaluation splits.
    """
    files = files if files is not None else MeshFiles(cfg)
    augment_kwargs = dict(rotate_deg=cfg.rotate_deg, hybrik_noise_deg=cfg.hybrik_noise_deg, drop_2d=cfg.drop_2d)
    video_kwargs = dict(speed_max=cfg.speed_max, orbit_deg=cfg.orbit_deg,  # video clips only: no motion in a COCO image
                        limb_deg=cfg.limb_deg, body=body_model_for(cfg) if cfg.limb_deg > 0 else None)
    sets: dict[str, TrainClipDataset] = {}
    if cfg.dt_file_h36m is not None and cfg.warmup_h36m > 0:
        sets["h36m"] = TrainClipDataset(files.split("h36m", "train"), cfg.clip_len, cfg.data_stride,
                                        cfg.sample_stride, cfg.flip, seed, **augment_kwargs, **video_kwargs)
    if cfg.dt_file_coco is not None and cfg.warmup_coco > 0:
        sets["coco"] = TrainClipDataset(files.split("coco", "train"), COCO_CLIP_LEN, COCO_DATA_STRIDE,
                                        COCO_SAMPLE_STRIDE, cfg.flip, seed, **augment_kwargs)
    if cfg.train_pw3d:
        sets["pw3d"] = TrainClipDataset(files.split("pw3d", "train"), cfg.clip_len, cfg.data_stride,
                                        cfg.sample_stride, cfg.flip, seed, **augment_kwargs, **video_kwargs)
    return sets


def build_eval_splits(cfg: TaskConfig, files: MeshFiles | None = None) -> dict[str, MeshSplit]:
    """The test splits a config validates on: ``h36m`` when ``dt_file_h36m`` is set, ``pw3d`` when
    ``dt_file_pw3d`` is set (COCO has no evaluation, as the original)."""
    files = files if files is not None else MeshFiles(cfg)
    return {name: files.split(name, "test") for name in ("h36m", "pw3d")
            if getattr(cfg, f"dt_file_{name}") is not None}

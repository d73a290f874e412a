"""Datasets: every per-frame array aligned (bug 10.6), flips, repeatable augmentation, 2D
normalisation, evaluation covering every frame once, and the config-driven loaders."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader
from scipy.spatial.transform import Rotation

from lib.body.joint_names import H36M_LEFT, H36M_RIGHT, SMPL_FLIP_PAIRS
from lib.data import schema
from lib.data.datasets import (
    EvalSequences,
    MeshFiles,
    MeshSplit,
    TrainClipDataset,
    build_eval_splits,
    build_train_sets,
    load_split,
)
from lib.errors import ConfigError, DataError

# Encoding of the row f of a hand-built split into each array (all exact in float32):
#   joint_2d[f, j] = (f, j) px; smpl_pose[f, k] = 100 f + k; smpl_shape[f, k] = 100 f + k + 0.5;
#   pred_smpl_pose = -(100 f + k); pred_smpl_shape = -(100 f + k + 0.5).
ROW_SCALE = 100.0
PW3D_WIDTH = 1920.0


def encoded_split(lengths: list[int], dataset: str = "pw3d", no_conf: bool = False,
                  cameras: list[str] | None = None) -> MeshSplit:
    frames = int(sum(lengths))
    f = np.arange(frames, dtype=np.float64)
    xy = np.stack(np.broadcast_arrays(f[:, None], np.arange(17.0)[None, :]), axis=-1)  # (F, 17, 2)
    arrays = {
        "joint_2d": xy,
        "confidence": np.full((frames, 17, 1), 0.5),
        "source": np.repeat(np.array([f"seq{i:02d}" for i in range(len(lengths))]), lengths),
        "smpl_pose": f[:, None] * ROW_SCALE + np.arange(72.0),
        "smpl_shape": f[:, None] * ROW_SCALE + np.arange(10.0) + 0.5,
        "pred_smpl_pose": -(f[:, None] * ROW_SCALE + np.arange(72.0)),
        "pred_smpl_shape": -(f[:, None] * ROW_SCALE + np.arange(10.0) + 0.5),
    }
    if cameras is not None:
        arrays["camera_name"] = np.asarray(cameras)
    return MeshSplit(arrays, dataset, "train", no_conf=no_conf)


def decoded_rows(item: dict[str, torch.Tensor]) -> dict[str, np.ndarray]:
    """The split row each array of an (unflipped) item came from, decoded independently per array."""
    x_px = (item["pose2d"][..., 0, 0].double().numpy() + 1.0) * PW3D_WIDTH / 2  # joint 0 holds x = f
    return {
        "pose2d": np.rint(x_px).astype(np.int64),
        "gt_pose": (item["gt_pose"][..., 0].double().numpy() / ROW_SCALE).astype(np.int64),
        "gt_shape": ((item["gt_shape"][..., 0].double().numpy() - 0.5) / ROW_SCALE).astype(np.int64),
        "hybrik_pose": (-item["hybrik_pose"][..., 0].double().numpy() / ROW_SCALE).astype(np.int64),
        "hybrik_shape": ((-item["hybrik_shape"][..., 0].double().numpy() - 0.5) / ROW_SCALE).astype(np.int64),
    }


# ------------------------------------------------------------------------- alignment (bug 10.6)


@pytest.mark.parametrize("sample_stride", [1, 2, 3])
def test_every_array_aligned_after_sample_stride(sample_stride: int) -> None:
    lengths = [40, 7, 33, 2, 25]
    split = encoded_split(lengths)
    source = split.arrays["source"]
    starts = np.concatenate([[0], np.cumsum(lengths)[:-1]])
    ds = TrainClipDataset(split, clip_len=8, data_stride=4, sample_stride=sample_stride, flip=False, seed=0)
    seen = set()
    for i in range(len(ds)):
        item = ds[i]
        assert item["pose2d"].shape == (8, 17, 3) and item["pose2d"].dtype == torch.float32
        assert item["gt_pose"].shape == (8, 72) and item["hybrik_shape"].shape == (8, 10)
        assert item["frame_index"].dtype == torch.int64
        rows = item["frame_index"].numpy()
        for key, decoded in decoded_rows(item).items():
            assert np.array_equal(decoded, rows), key  # every array comes from the same frames
        seq = source[rows]
        assert np.all(seq == seq[0])  # one sequence per clip
        # Subsampled per sequence: offsets from the sequence start are multiples of the stride.
        first = starts[int(seq[0][3:])]
        assert np.all((rows - first) % sample_stride == 0)
        if len(np.unique(rows)) == 8:  # a full window: consecutive subsampled frames
            assert np.all(np.diff(rows) == sample_stride)
        seen.update(rows.tolist())
    kept = {s + k for s, n in zip(starts, lengths) for k in range(0, n, sample_stride)}
    assert seen == kept  # tails and short sequences included, nothing else


def test_short_sequence_resampled_deterministically_in_training() -> None:
    split = encoded_split([5, 20])
    ds = TrainClipDataset(split, clip_len=8, data_stride=8, sample_stride=1, flip=False, seed=0)
    # round(linspace(0, 4, 8)) = [0, 1, 1, 2, 2, 3, 3, 4]
    assert ds[0]["frame_index"].tolist() == [0, 1, 1, 2, 2, 3, 3, 4]
    again = TrainClipDataset(split, clip_len=8, data_stride=8, sample_stride=1, flip=False, seed=1)
    assert np.array_equal(ds.clip_rows, again.clip_rows)


# --------------------------------------------------------------------------------------- flips


def _np_flip_h36m(kp: np.ndarray) -> np.ndarray:
    out = kp.copy()
    out[..., list(H36M_LEFT), :] = kp[..., list(H36M_RIGHT), :]
    out[..., list(H36M_RIGHT), :] = kp[..., list(H36M_LEFT), :]
    out[..., 0] *= -1
    return out


def _np_flip_smpl(pose: np.ndarray) -> np.ndarray:
    aa = pose.reshape(pose.shape[:-1] + (24, 3)).copy()
    out = aa.copy()
    for a, b in SMPL_FLIP_PAIRS:
        out[..., a, :], out[..., b, :] = aa[..., b, :], aa[..., a, :]
    out[..., 1:] *= -1
    return out.reshape(pose.shape)


def test_flip_applied_to_2d_and_both_poses_not_betas() -> None:
    split = encoded_split([30, 30])
    plain = TrainClipDataset(split, clip_len=6, data_stride=3, sample_stride=2, flip=False, seed=0)
    flipping = TrainClipDataset(split, clip_len=6, data_stride=3, sample_stride=2, flip=True, seed=0)
    flipped_count = 0
    for i in range(len(plain)):
        a, b = plain[i], flipping[i]
        assert torch.equal(a["frame_index"], b["frame_index"])
        for key in ("gt_shape", "hybrik_shape"):
            assert torch.equal(a[key], b[key])
        if flipping.is_flipped(i):
            flipped_count += 1
            assert np.array_equal(b["pose2d"].numpy(), _np_flip_h36m(a["pose2d"].numpy()))
            for key in ("gt_pose", "hybrik_pose"):
                assert np.array_equal(b[key].numpy(), _np_flip_smpl(a[key].numpy()))
        else:
            for key in ("pose2d", "gt_pose", "hybrik_pose"):
                assert torch.equal(a[key], b[key])
    assert 0 < flipped_count < len(plain)


def test_flipped_2d_is_the_mirror_image_on_the_canvas() -> None:
    # Mirroring a frame of width W maps x px -> W - x px; normalised, that is x_n -> -x_n.
    split = encoded_split([12])
    ds = TrainClipDataset(split, clip_len=12, data_stride=12, sample_stride=1, flip=True, seed=0)
    for epoch in range(64):  # the first epoch whose draw flips item 0 (p 0.5 each)
        ds.set_epoch(epoch)
        if ds.is_flipped(0):
            break
    else:
        pytest.fail("item 0 never flipped in 64 epochs")
    item = ds[0]
    x_px = np.arange(12.0)  # joint j holds x = row f
    expected = (PW3D_WIDTH - x_px) / PW3D_WIDTH * 2 - 1
    # Left hip (4) takes the right hip's (1) position; both hold x = f.
    assert np.allclose(item["pose2d"][:, 4, 0].numpy(), expected, atol=1e-6)
    assert np.allclose(item["pose2d"][:, 4, 1].numpy(), 1 / PW3D_WIDTH * 2 - 1, atol=1e-6)  # y of joint 1


def test_augmentation_repeatable_given_seed_and_epoch_and_worker_count() -> None:
    split = encoded_split([50, 41])
    make = lambda seed: TrainClipDataset(split, clip_len=4, data_stride=2, sample_stride=1, flip=True, seed=seed)
    ds = make(3)
    flips_e0 = [ds.is_flipped(i) for i in range(len(ds))]
    assert flips_e0 == [make(3).is_flipped(i) for i in range(len(ds))]
    ds.set_epoch(1)
    flips_e1 = [ds.is_flipped(i) for i in range(len(ds))]
    assert flips_e1 != flips_e0
    assert [make(4).is_flipped(i) for i in range(len(ds))] != flips_e0
    assert 0.25 < np.mean(flips_e0) < 0.75

    def epoch_batches(workers: int) -> list[dict[str, torch.Tensor]]:
        d = make(3)
        d.set_epoch(1)
        return list(DataLoader(d, batch_size=7, shuffle=False, num_workers=workers))

    serial, parallel = epoch_batches(0), epoch_batches(2)
    assert len(serial) == len(parallel)
    for a, b in zip(serial, parallel):
        for key in a:
            assert torch.equal(a[key], b[key])


# ---------------------------------------------------------------------------------- 2D inputs


def test_pose2d_normalised_on_canvas_with_clipped_confidence() -> None:
    split = encoded_split([6], dataset="coco")
    split.arrays["confidence"][:, :, 0] = np.linspace(-0.5, 1.7, 17)
    xy = split.arrays["joint_2d"]
    out = split.pose2d
    assert out.dtype == np.float32 and out.shape == (6, 17, 3)
    assert np.allclose(out[..., 0], xy[..., 0] / 640 * 2 - 1, atol=1e-6)
    assert np.allclose(out[..., 1], xy[..., 1] / 640 * 2 - 1, atol=1e-6)
    assert np.allclose(out[..., 2], np.clip(np.linspace(-0.5, 1.7, 17), 0, 1), atol=1e-7)


def test_h36m_uses_each_frames_camera_and_fills_missing_confidence() -> None:
    cams = ["54138969", "55011271", "60457274", "58860488", "54138969"]
    split = encoded_split([5], dataset="h36m", cameras=cams)
    del split.arrays["confidence"]
    out = split.pose2d
    heights = np.array([1002, 1000, 1002, 1000, 1002], dtype=np.float64)
    xy = split.arrays["joint_2d"]
    assert np.allclose(out[..., 0], xy[..., 0] / 1000 * 2 - 1, atol=1e-6)
    assert np.allclose(out[..., 1], xy[..., 1] / 1000 * 2 - heights[:, None] / 1000, atol=1e-6)
    assert np.all(out[..., 2] == 1.0)


def test_h36m_unknown_camera_is_a_data_error() -> None:
    split = encoded_split([3], dataset="h36m", cameras=["54138969", "123", "123"])
    with pytest.raises(DataError, match="'123'"):
        _ = split.pose2d


def test_no_conf_drops_the_confidence_channel() -> None:
    split = encoded_split([10], no_conf=True)
    full = encoded_split([10])
    ds = TrainClipDataset(split, clip_len=4, data_stride=4, sample_stride=1, flip=True, seed=0)
    assert all(ds[i]["pose2d"].shape == (4, 17, 2) for i in range(len(ds)))
    assert np.array_equal(split.pose2d, full.pose2d[..., :2])


# --------------------------------------------------------------------------------- evaluation


def recording_window_fn(calls: list[dict[str, np.ndarray]]):
    """A ``lib.windowed`` window function that records the split rows of each window (decoded from the 2D
    and from the betas independently) and returns identity rotations and the input betas unchanged."""

    def run(pose2d: np.ndarray, theta: np.ndarray, betas: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        x_px = (pose2d[..., 0, 0].astype(np.float64) + 1.0) * PW3D_WIDTH / 2  # joint 0 holds x = f
        calls.append({"pose2d": pose2d, "rows": np.rint(x_px).astype(np.int64),
                      "rows_betas": ((-betas[..., 0].astype(np.float64) - 0.5) / ROW_SCALE).astype(np.int64)})
        rot = np.broadcast_to(np.eye(3), theta.shape[:2] + (24, 3, 3)).copy()
        return rot, betas

    return run


def refine_identity(seq, calls: list, **kwargs) -> np.ndarray:
    """The stitched betas of ``seq`` through ``lib.windowed.refine_sequence`` (every frame, full rate)."""
    from lib.windowed import refine_sequence

    arrays = seq.frame_arrays()
    _, betas = refine_sequence(recording_window_fn(calls), *(arrays[k].numpy() for k in
                                                             ("pose2d", "hybrik_pose", "hybrik_shape")),
                               clip_len=seq.clip_len, sample_stride=seq.sample_stride,
                               overlap=seq.plan.overlap, **kwargs)
    return betas


@pytest.mark.parametrize("sample_stride", [1, 2, 3])
@pytest.mark.parametrize("max_windows", [1, 3, 64])
def test_eval_stitch_scores_every_frame_once(sample_stride: int, max_windows: int) -> None:
    lengths = [40, 5, 17, 1, 33]
    split = encoded_split(lengths)
    sequences = EvalSequences(split, sample_stride=sample_stride, clip_len=8)
    assert len(sequences) == len(lengths) and sequences.frames == sum(lengths)
    covered = []
    for seq, length in zip(sequences, lengths):
        calls: list[dict[str, np.ndarray]] = []
        stitched = refine_identity(seq, calls, max_windows_per_batch=max_windows)
        for call in calls:
            b, t = call["rows"].shape
            assert b <= max_windows and call["pose2d"].shape == (b, t, 17, 3)
            # Windows are consecutive frames of one phase; a short phase is kept whole (no resampling).
            assert np.all(np.diff(call["rows"], axis=1) == sample_stride)
            phase_len = -(-length // sample_stride)
            assert t == 8 or t in (phase_len, length // sample_stride)
            assert np.array_equal(call["rows"], call["rows_betas"])  # 2D and betas of the same rows
        # "Model": the input betas themselves, so the stitched result must be the per-frame input exactly.
        frames = seq.frame_arrays()
        assert stitched.shape == (length, 10)
        assert np.allclose(stitched, frames["hybrik_shape"].numpy(), atol=1e-3, rtol=0)
        assert np.array_equal(frames["frame_index"].numpy(), seq.rows)
        covered.extend(seq.rows.tolist())
    assert covered == list(range(sum(lengths)))  # every frame, once, in order


def test_eval_short_sequence_is_a_single_window() -> None:
    split = encoded_split([5])
    (seq,) = list(EvalSequences(split, sample_stride=1, clip_len=16))
    calls: list[dict[str, np.ndarray]] = []
    refine_identity(seq, calls)
    assert [call["rows"].tolist() for call in calls] == [[[0, 1, 2, 3, 4]]]


def test_eval_stitch_with_overlap_and_stride_returns_every_frame() -> None:
    lengths = [30, 4, 21]
    split = encoded_split(lengths)
    for seq in EvalSequences(split, sample_stride=2, clip_len=8, overlap=2):
        values = refine_identity(seq, [], max_windows_per_batch=2)
        assert np.allclose(values, split.arrays["pred_smpl_shape"][seq.rows], atol=1e-3, rtol=0)


# ------------------------------------------------------------------------- files and configs


def _cfg(data_root: Path, **changes):
    from lib.config.task import parse_task_config
    from lib.data.synthetic import MESH_FILES

    raw = dict(data_root=str(data_root), dt_file_h36m=MESH_FILES["h36m"], dt_file_coco=MESH_FILES["coco"],
               dt_file_pw3d=MESH_FILES["pw3d"], warmup_h36m=1, warmup_coco=1, clip_len=8, data_stride=4,
               sample_stride=2, maxlen=16)
    raw.update(changes)
    return parse_task_config(raw, source="test.yaml")


def test_build_train_sets_loads_each_file_once(data_root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple[str, str]] = []
    real = schema.load_mesh_pickle

    def counting(path, dataset):
        calls.append((Path(path).name, dataset))
        return real(path, dataset)

    monkeypatch.setattr(schema, "load_mesh_pickle", counting)
    cfg = _cfg(data_root)
    files = MeshFiles(cfg)
    sets = build_train_sets(cfg, seed=0, files=files)
    evals = build_eval_splits(cfg, files=files)
    assert set(sets) == {"h36m", "coco", "pw3d"} and set(evals) == {"h36m", "pw3d"}
    assert sorted(d for _, d in calls) == ["coco", "h36m", "pw3d"]  # once each, train and test shared
    assert load_split(cfg, "pw3d", "test", files) is evals["pw3d"]
    for name in ("h36m", "pw3d"):
        item = sets[name][0]
        assert item["pose2d"].shape == (8, 17, 3) and item["gt_pose"].shape == (8, 72)
        assert torch.all(item["frame_index"].diff() >= 0)
    coco = sets["coco"]
    assert len(coco) == coco.split.frames  # every image kept (no sample_stride for COCO)
    item = coco[0]
    assert item["pose2d"].shape == (1, 17, 3) and item["hybrik_shape"].shape == (1, 10)
    batch = next(iter(DataLoader(coco, batch_size=5)))
    assert batch["pose2d"].shape == (5, 1, 17, 3)


def test_build_train_sets_follows_the_config(data_root: Path) -> None:
    cfg = _cfg(data_root, dt_file_coco=None, warmup_h36m=0, train_pw3d=True, no_conf=True)
    sets = build_train_sets(cfg, seed=0)
    assert set(sets) == {"pw3d"}
    assert sets["pw3d"][0]["pose2d"].shape == (8, 17, 2)


def test_dataset_not_named_by_config_is_a_config_error(tmp_path: Path) -> None:
    cfg = _cfg(tmp_path, dt_file_coco=None)
    with pytest.raises(ConfigError, match="dt_file_coco"):
        load_split(cfg, "coco", "train")


def test_real_split_normalisation_matches_formula(data_root: Path) -> None:
    from lib.data.keypoints2d import H36M_CAMERA_RES

    split = load_split(_cfg(data_root), "h36m", "test")
    xy = np.asarray(split.arrays["joint_2d"])[..., :2].astype(np.float64)
    size = np.array([H36M_CAMERA_RES[str(c)] for c in np.asarray(split.arrays["camera_name"])], dtype=np.float64)
    w, h = size[:, 0, None], size[:, 1, None]
    assert np.allclose(split.pose2d[..., 0], xy[..., 0] / w * 2 - 1, atol=1e-5)
    assert np.allclose(split.pose2d[..., 1], xy[..., 1] / w * 2 - h / w, atol=1e-5)
    assert split.pose2d[..., 2].min() >= 0 and split.pose2d[..., 2].max() <= 1


def test_synthetic_test_split_every_frame_scored_once(data_root: Path) -> None:
    from lib.geometry.rotation import axis_angle_to_matrix
    from lib.windowed import refine_sequence

    def identity(pose2d, theta, betas):  # "model" = identity on the HybrIK input
        b, t = theta.shape[:2]
        return axis_angle_to_matrix(torch.from_numpy(theta).double().reshape(b, t, 24, 3)).numpy(), betas

    cfg = _cfg(data_root, clip_len=16, maxlen=243)
    split = load_split(cfg, "pw3d", "test")
    sequences = EvalSequences(split, cfg.sample_stride, cfg.clip_len)
    scored = np.zeros(split.frames, dtype=int)
    for seq in sequences:
        arrays = seq.frame_arrays()
        rot, betas = refine_sequence(identity, *(arrays[k].numpy() for k in ("pose2d", "hybrik_pose", "hybrik_shape")),
                                     clip_len=cfg.clip_len, sample_stride=cfg.sample_stride, max_windows_per_batch=8)
        pose = torch.from_numpy(np.asarray(split.arrays["pred_smpl_pose"])[seq.rows]).double()
        assert np.allclose(rot, axis_angle_to_matrix(pose.reshape(-1, 24, 3)).numpy(), atol=1e-6)
        assert np.allclose(betas, np.asarray(split.arrays["pred_smpl_shape"])[seq.rows], atol=1e-6)
        scored[seq.rows] += 1
    assert sequences.frames == split.frames and np.all(scored == 1)
    assert min(b - a for a, b in split.spans) < cfg.clip_len  # the preset holds a short sequence


def test_camera_roll_turns_2d_and_both_global_orientations_together(data_root: Path) -> None:
    """A rolled item is the same scene seen by a camera rolled about its optical axis: the GT mesh's
    root-relative joints turn by Rz(angle), the 2D by the same angle, the body pose stays; the flip
    draws are those of the unrolled dataset."""
    from lib.body.smpl import BodyModel
    from lib.train.targets import smpl_targets

    split = load_split(_cfg(data_root), "pw3d", "train")
    plain = TrainClipDataset(split, clip_len=8, data_stride=8, sample_stride=1, flip=True, seed=5)
    rolled = TrainClipDataset(split, clip_len=8, data_stride=8, sample_stride=1, flip=True, seed=5, rotate_deg=40.0)
    body = BodyModel(data_root)
    angles = []
    for i in range(4):
        flipped, angle = rolled.augmentation(i)
        assert flipped == plain.is_flipped(i)
        angles.append(angle)
        a, b = plain[i], rolled[i]
        c, s = np.cos(angle), np.sin(angle)
        rz = np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])
        xy = a["pose2d"][..., :2].double().numpy()
        np.testing.assert_allclose(b["pose2d"][..., :2].double().numpy(), xy @ rz[:2, :2].T, atol=1e-5)
        assert torch.equal(a["pose2d"][..., 2], b["pose2d"][..., 2])
        for key, shape_key in (("gt_pose", "gt_shape"), ("hybrik_pose", "hybrik_shape")):
            assert torch.equal(a[key][:, 3:], b[key][:, 3:])
            joints_a = smpl_targets(body, a[key][None], a[shape_key][None])["keypoint_3d"][0].double().numpy()
            joints_b = smpl_targets(body, b[key][None], b[shape_key][None])["keypoint_3d"][0].double().numpy()
            np.testing.assert_allclose(joints_b, joints_a @ rz.T, atol=0.05)  # mm
    assert all(abs(x) <= np.radians(40.0) for x in angles) and len(set(angles)) == 4


def test_corruptions_touch_only_hybriks_pose_and_the_2d_and_are_reproducible(data_root: Path) -> None:
    from lib.data import augment

    split = load_split(_cfg(data_root), "pw3d", "train")
    kwargs = dict(clip_len=8, data_stride=8, sample_stride=1, flip=False, seed=5)
    plain = TrainClipDataset(split, **kwargs)
    noisy = TrainClipDataset(split, **kwargs, hybrik_noise_deg=8.0, drop_2d=0.3)
    dropped = 0
    for i in range(6):
        a, b = plain[i], noisy[i]
        for key in ("gt_pose", "gt_shape", "hybrik_shape", "frame_index"):
            assert torch.equal(a[key], b[key])
        # the item's own draws: seed, epoch, index and the corruption stream
        rng = np.random.default_rng([5, 0, i, 1])
        expected = augment.corrupt_pose(a["hybrik_pose"].numpy(), rng, 8.0)
        np.testing.assert_allclose(b["hybrik_pose"].numpy(), expected, atol=1e-6)
        assert np.abs(expected - a["hybrik_pose"].numpy()).max() > 1e-3
        np.testing.assert_array_equal(b["pose2d"].numpy(), augment.drop_keypoints(a["pose2d"].numpy(), rng, 0.3))
        dropped += int((b["pose2d"][..., 2] == 0).sum())
    assert dropped > 0
    first = noisy[0]["hybrik_pose"]
    noisy.set_epoch(1)
    assert not torch.equal(noisy[0]["hybrik_pose"], first)  # new draws every epoch


def test_speed_up_reads_every_sth_frame_of_one_sequence(data_root: Path) -> None:
    split = load_split(_cfg(data_root), "pw3d", "train")
    kwargs = dict(clip_len=8, data_stride=8, sample_stride=1, flip=False, seed=3)
    plain = TrainClipDataset(split, **kwargs)
    fast = TrainClipDataset(split, **kwargs, speed_max=3)
    steps = set()
    for i in range(len(fast)):
        rows = fast.rows(i)
        gaps = np.diff(rows)
        assert np.all(gaps == gaps[0]) and 1 <= gaps[0] <= 3
        start, end = fast.clip_spans[i]
        assert start <= rows.min() and rows.max() < end  # never across a sequence
        steps.add(int(gaps[0]))
        item = fast[i]
        np.testing.assert_array_equal(item["frame_index"].numpy(), split.take(rows)["frame_index"])
        assert torch.equal(item["gt_pose"], torch.from_numpy(np.ascontiguousarray(split.take(rows)["gt_pose"])))
    assert steps == {1, 2, 3}
    np.testing.assert_array_equal(plain.rows(0), plain.clip_rows[0])


def test_orbit_turns_both_global_orientations_alike_and_moves_the_2d(data_root: Path) -> None:
    from scipy.spatial.transform import Rotation

    split = load_split(_cfg(data_root), "pw3d", "train")
    kwargs = dict(clip_len=8, data_stride=8, sample_stride=1, flip=False, seed=4)
    plain = TrainClipDataset(split, **kwargs)
    orbited = TrainClipDataset(split, **kwargs, orbit_deg=20.0)
    assert np.all(np.isfinite(orbited.focal))
    for i in range(4):
        a, b = plain[i], orbited[i]
        for key in ("gt_pose", "hybrik_pose"):
            assert torch.equal(a[key][:, 3:], b[key][:, 3:])
        # one rotation per item, the same for the GT and HybrIK: b_0 a_0^T equal for both and every frame
        turn = {key: Rotation.from_rotvec(b[key][:, :3].double().numpy())
                * Rotation.from_rotvec(a[key][:, :3].double().numpy()).inv() for key in ("gt_pose", "hybrik_pose")}
        mats = np.concatenate([turn["gt_pose"].as_matrix(), turn["hybrik_pose"].as_matrix()])
        np.testing.assert_allclose(mats, np.broadcast_to(mats[0], mats.shape), atol=1e-4)
        assert 0.0 < np.degrees(turn["gt_pose"][0].magnitude()) <= 20.0 * np.sqrt(2) + 1e-6
        assert float((a["pose2d"][..., :2] - b["pose2d"][..., :2]).abs().max()) > 1e-4


def test_orbit_needs_joint_cam_and_says_so(data_root: Path) -> None:
    from lib.data.datasets import MeshSplit
    from lib.errors import DataError

    split = load_split(_cfg(data_root), "pw3d", "train")
    without = MeshSplit({k: v for k, v in split.arrays.items() if k != "joint_cam"}, "pw3d", "train", "x.pkl")
    with pytest.raises(DataError, match=r"x.pkl: split 'train' has no key 'joint_cam'.*orbit_deg"):
        TrainClipDataset(without, clip_len=8, data_stride=8, sample_stride=1, flip=False, seed=0, orbit_deg=10.0)



def test_limb_offsets_turn_gt_and_hybrik_alike_and_move_the_2d_with_the_body(data_root: Path) -> None:
    from lib.body.smpl import BodyModel

    split = load_split(_cfg(data_root), "pw3d", "train")
    body = BodyModel(data_root).eval()
    kwargs = dict(clip_len=8, data_stride=8, sample_stride=1, flip=False, seed=6)
    plain = TrainClipDataset(split, **kwargs)
    posed = TrainClipDataset(split, **kwargs, limb_deg=30.0, body=body)
    regressor = np.load(data_root / "J_regressor_h36m_correct.npy")  # (17, 6890)

    def joints_mm(pose: torch.Tensor, betas: torch.Tensor) -> np.ndarray:  # numpy regressor, (T, 17, 3)
        with torch.no_grad():
            vertices = body.forward_axis_angle(pose.float(), betas.float()).vertices.double().numpy()
        return np.einsum("jv,tvc->tjc", regressor, vertices) * 1000.0

    for i in range(3):
        a, b = plain[i], posed[i]
        rows = a["frame_index"].numpy()
        # one change per joint and frame, the same for the GT and HybrIK: R_a^T R_b equal; the root unchanged
        change = {key: (Rotation.from_rotvec(a[key].double().numpy().reshape(-1, 3)).inv()
                        * Rotation.from_rotvec(b[key].double().numpy().reshape(-1, 3))).as_matrix() for key in ("gt_pose", "hybrik_pose")}
        np.testing.assert_allclose(change["gt_pose"], change["hybrik_pose"], atol=1e-4)
        np.testing.assert_allclose(change["gt_pose"].reshape(8, 24, 3, 3)[:, 0], np.broadcast_to(np.eye(3), (8, 3, 3)),
                                   atol=1e-5)
        assert np.degrees(Rotation.from_matrix(change["gt_pose"]).magnitude()).max() > 10.0
        # the 2D moved by the projection change of the re-posed body (root kept), detection error kept
        before, after = joints_mm(a["gt_pose"], a["gt_shape"]), joints_mm(b["gt_pose"], b["gt_shape"])
        cam = np.asarray(split.arrays["joint_cam"][rows], np.float64)
        moved = cam + (after - after[:, :1]) - (before - before[:, :1])
        focal, width = float(posed.focal[rows[0]]), float(split.canvas_widths()[rows[0]])
        project = lambda x: focal * x[..., :2] / x[..., 2:3] * (2.0 / width)
        seen = a["pose2d"][..., 2].numpy() > 0
        expected = a["pose2d"][..., :2].numpy() + project(moved) - project(cam)
        np.testing.assert_allclose(b["pose2d"][..., :2].numpy()[seen], expected[seen], atol=2e-4)
        assert np.abs(b["pose2d"][..., :2].numpy() - a["pose2d"][..., :2].numpy())[seen].max() > 1e-2
        np.testing.assert_array_equal(b["pose2d"][..., 2].numpy(), a["pose2d"][..., 2].numpy())
    with pytest.raises(ValueError, match="limb_deg > 0 needs the SMPL body model"):
        TrainClipDataset(split, **kwargs, limb_deg=10.0)

"""The synthetic data_root: real formats, determinism, disjoint splits, and the documented noise model."""

from __future__ import annotations

import hashlib
import math
import pickle
import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from scipy.spatial.transform import Rotation

from lib.body.joint_names import H36M_EVAL_14, H36M_ROOT
from lib.data import synthetic, synthetic_style_a
from lib.data.keypoints2d import DATASET_CANVAS, H36M_CAMERA_RES
from lib.data.synthetic import GENERATOR_VERSIONS, MANIFEST_FILE, MESH_FILES, PRESETS, ensure_data_root, generate_data_root

# Mean angle of an isotropic 3D Gaussian rotation vector with per-axis std s is s * sqrt(8 / pi).
MEAN_ANGLE_PER_AXIS_STD = math.sqrt(8 / math.pi)


@pytest.fixture(scope="module")
def pickles(data_root: Path) -> dict[str, dict[str, Any]]:
    out = {}
    for dataset, name in MESH_FILES.items():
        with (data_root / name).open("rb") as f:
            out[dataset] = pickle.load(f)
    return out


def _runs(source: list[str]) -> list[tuple[str, int, int]]:
    """(name, start, stop) of each run of equal consecutive values."""
    src = np.asarray(source)
    starts = np.flatnonzero(np.r_[True, src[1:] != src[:-1]])
    stops = np.r_[starts[1:], len(src)]
    return [(str(src[a]), int(a), int(b)) for a, b in zip(starts, stops)]


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_same_seed_same_bytes_and_cli_summary(tmp_path: Path, capsys: pytest.CaptureFixture,
                                              data_root: Path) -> None:
    first = generate_data_root(tmp_path / "a", seed=3, preset="tiny")
    summary = synthetic.main(["--out", str(tmp_path / "b"), "--seed", "3", "--preset", "tiny"])
    assert sorted(p.name for p in (tmp_path / "a").iterdir()) == first["files"]
    for name in first["files"]:
        assert _sha256(tmp_path / "a" / name) == _sha256(tmp_path / "b" / name), name
    for name in MESH_FILES.values():                           # data_root holds seed 0
        assert _sha256(tmp_path / "a" / name) != _sha256(data_root / name), name
    printed = capsys.readouterr().out
    for dataset, info in summary["datasets"].items():
        assert info["file"] in printed and f"train {info['train']['frames']} frames" in printed
    assert info["train"]["frames"] == PRESETS["tiny"].coco_train
    assert summary["datasets"]["pw3d"]["test"]["sequences"] == len(PRESETS["tiny"].pw3d_test)



def test_ensure_data_root_reuses_only_a_matching_manifest(tmp_path: Path) -> None:
    import json

    root = tmp_path / "root"
    summary, generated = ensure_data_root(root, seed=3, preset="tiny")
    assert generated and summary["generator_version"] == GENERATOR_VERSIONS["a"]
    pickle_file = root / MESH_FILES["pw3d"]
    digest = _sha256(pickle_file)
    assert ensure_data_root(root, seed=3, preset="tiny") == (summary, False)
    manifest = root / MANIFEST_FILE
    # a data_root written by an older generator (or another seed) is rewritten, not reused
    manifest.write_text(json.dumps({**summary, "generator_version": GENERATOR_VERSIONS["a"] - 1}))
    again, generated = ensure_data_root(root, seed=3, preset="tiny")
    assert generated and again["generator_version"] == GENERATOR_VERSIONS["a"]
    assert _sha256(pickle_file) == digest                      # same seed, same bytes
    assert ensure_data_root(root, seed=4, preset="tiny")[1]
    assert _sha256(pickle_file) != digest
    manifest.unlink()                                          # an interrupted generation: no manifest
    assert ensure_data_root(root, seed=4, preset="tiny")[1]


def test_files_keys_shapes_dtypes(data_root: Path, pickles: dict[str, dict[str, Any]]) -> None:
    for name in ("SMPL_NEUTRAL.pkl", "J_regressor_h36m_correct.npy", "J_regressor_extra.npy"):
        assert (data_root / name).is_file()
    for dataset, data in pickles.items():
        assert list(data) == ["train", "test"]
        for split, arrays in data.items():
            n = len(arrays["source"])
            expected = {"joint_2d": ((n, 17, 2), np.float32 if split == "train" else np.float64),
                        "confidence": ((n, 17, 1), np.float32 if split == "train" else np.float64),
                        "joint_cam": ((n, 17, 3), np.float64), "smpl_pose": ((n, 72), np.float64),
                        "smpl_shape": ((n, 10), np.float64), "pred_smpl_pose": ((n, 72), np.float32),
                        "pred_smpl_shape": ((n, 10), np.float32)}
            for key, (shape, dtype) in expected.items():
                assert arrays[key].shape == shape and arrays[key].dtype == dtype, (dataset, split, key)
            assert isinstance(arrays["source"], list) and isinstance(arrays["source"][0], str)
            assert isinstance(arrays["img_hw"], list) and len(arrays["img_hw"]) == n
            assert len(arrays["image_id"]) == n and arrays["image_id"][0].shape == (1,)
            conf = arrays["confidence"]
            assert conf.min() >= 0 and conf.max() <= 1
            if dataset == "h36m":
                assert set(arrays["camera_name"]) <= set(H36M_CAMERA_RES)
                assert {tuple(hw) for hw in arrays["img_hw"]} <= {(h, w) for w, h in H36M_CAMERA_RES.values()}
            else:
                w, h = DATASET_CANVAS[dataset]
                assert set(arrays["img_hw"]) == {(h, w)}


def test_source_names_and_disjoint_splits(pickles: dict[str, dict[str, Any]]) -> None:
    for dataset, data in pickles.items():
        runs = {split: _runs(data[split]["source"]) for split in ("train", "test")}
        names = {split: [name for name, _, _ in r] for split, r in runs.items()}
        for split in names:
            assert len(set(names[split])) == len(names[split]), "a sequence name appears twice"
        assert not set(names["train"]) & set(names["test"])
    h36m = pickles["h36m"]
    pattern = re.compile(r"^(S\d+)_[A-Za-z]+_\d+\.(\d{8})$")
    for split, subjects in (("train", {"S1", "S5", "S6", "S7", "S8"}), ("test", {"S9", "S11"})):
        for name, start, stop in _runs(h36m[split]["source"]):
            match = pattern.match(name)
            assert match and match.group(1) in subjects, name
            assert set(h36m[split]["camera_name"][start:stop]) == {match.group(2)}
    for name, _, _ in _runs(pickles["pw3d"]["train"]["source"]):
        assert re.match(r"^[a-z]+_[A-Za-z]+_\d{3}$", name), name
    coco = pickles["coco"]["train"]["source"]
    assert len(set(coco)) == len(coco) == PRESETS["tiny"].coco_train     # one image per source


def test_h36m_motion_seen_by_two_cameras(pickles: dict[str, dict[str, Any]]) -> None:
    arrays = pickles["h36m"]["train"]
    by_take: dict[str, list[tuple[int, int]]] = {}
    for name, start, stop in _runs(arrays["source"]):
        by_take.setdefault(name.split(".")[0], []).append((start, stop))
    pairs = [views for views in by_take.values() if len(views) == 2]
    assert pairs
    for (a0, a1), (b0, b1) in pairs:
        pose_a, pose_b = arrays["smpl_pose"][a0:a1], arrays["smpl_pose"][b0:b1]
        np.testing.assert_allclose(pose_a[:, 3:], pose_b[:, 3:], atol=1e-9)      # same body motion
        assert not np.allclose(pose_a[:, :3], pose_b[:, :3], atol=0.1)         # another camera
        assert arrays["camera_name"][a0] != arrays["camera_name"][b0]
        # Camera-frame joints of two views differ by one rigid motion (the same skeleton).
        pa, pb = arrays["joint_cam"][a0:a1], arrays["joint_cam"][b0:b1]
        np.testing.assert_allclose(np.linalg.norm(pa[:, 1] - pa[:, 0], axis=-1),
                                   np.linalg.norm(pb[:, 1] - pb[:, 0], axis=-1), rtol=1e-6)


def test_test_splits_hold_evaluation_edge_cases(pickles: dict[str, dict[str, Any]]) -> None:
    for dataset in ("h36m", "pw3d"):
        lengths = [stop - start for _, start, stop in _runs(pickles[dataset]["test"]["source"])]
        assert min(lengths) < 16
        assert any(n % 16 for n in lengths if n >= 16)


def test_gt_shape_per_person_and_plausible_motion(pickles: dict[str, dict[str, Any]]) -> None:
    subject_betas: dict[str, np.ndarray] = {}
    for split in ("train", "test"):
        arrays = pickles["h36m"][split]
        for name, start, stop in _runs(arrays["source"]):
            betas = arrays["smpl_shape"][start:stop]
            np.testing.assert_array_equal(betas, np.broadcast_to(betas[0], betas.shape))
            subject = name.split("_")[0]
            if subject in subject_betas:
                np.testing.assert_array_equal(betas[0], subject_betas[subject])
            subject_betas[subject] = betas[0]
    betas = np.stack(list(subject_betas.values()))
    assert 0.3 < betas.std() < 1.2
    for dataset, fps in (("pw3d", 30.0), ("h36m", 50.0)):
        arrays = pickles[dataset]["train"]
        rot = Rotation.from_rotvec(arrays["smpl_pose"].reshape(-1, 3))
        angles = np.degrees(rot.magnitude()).reshape(-1, 24)
        assert angles[:, 1:].max() < 165                      # within joint limits
        knee = arrays["smpl_pose"].reshape(-1, 24, 3)[:, 4:6]   # flexion = +x in SMPL's knee frame
        assert knee[..., 0].min() > -0.1
        for _, start, stop in _runs(arrays["source"]):
            r = Rotation.from_rotvec(arrays["smpl_pose"][start:stop].reshape(-1, 3))
            r = r.as_matrix().reshape(stop - start, 24, 3, 3)
            step = Rotation.from_matrix(np.einsum("tjba,tjbc->tjac", r[:-1], r[1:]).reshape(-1, 3, 3))
            speed = np.degrees(step.magnitude()) * fps           # deg / s
            assert speed.max() < 720                             # smooth: no joint jumps between frames
            assert np.degrees(step.magnitude()).mean() * fps > 5  # and it moves


def _fit_intrinsics(points: np.ndarray, uv: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Least-squares pinhole (f, cx, cy) from 3D camera points and 2D; returns (params, residuals)."""
    x = points[:, 0] / points[:, 2]
    y = points[:, 1] / points[:, 2]
    ones, zeros = np.ones_like(x), np.zeros_like(x)
    a = np.concatenate([np.stack([x, ones, zeros], 1), np.stack([y, zeros, ones], 1)])
    b = np.concatenate([uv[:, 0], uv[:, 1]])
    params = np.linalg.lstsq(a, b, rcond=None)[0]
    residual = (a @ params - b).reshape(2, -1).T
    return params, residual


@pytest.mark.parametrize("dataset", ["pw3d", "h36m"])
def test_2d_is_the_projection_of_joint_cam_plus_documented_noise(pickles: dict[str, dict[str, Any]],
                                                                dataset: str) -> None:
    arrays = pickles[dataset]["train"]
    residuals, confs = [], []
    for _, start, stop in _runs(arrays["source"]):
        points = arrays["joint_cam"][start:stop].reshape(-1, 3)
        uv = arrays["joint_2d"][start:stop].reshape(-1, 2).astype(np.float64)
        conf = arrays["confidence"][start:stop].reshape(-1)
        inlier = conf > 0.5
        (f, cx, cy), _ = _fit_intrinsics(points[inlier], uv[inlier])
        assert 1000 < f < 1600 and 2.5 < np.median(points[:, 2]) / 1000 < 9     # mm -> m
        _, residual = _fit_intrinsics(points, uv)
        clean = np.stack([f * points[:, 0] / points[:, 2] + cx, f * points[:, 1] / points[:, 2] + cy], 1)
        width, height = arrays["img_hw"][start][::-1]
        assert clean.min() >= 0 and (clean[:, 0].max() <= width) and (clean[:, 1].max() <= height)
        residuals.append(uv - clean)
        confs.append(conf)
    err = np.linalg.norm(np.concatenate(residuals), axis=-1)
    conf = np.concatenate(confs)
    outlier = err > 20                                          # 5 sigma: only the injected outliers
    assert abs(outlier.mean() - synthetic_style_a.KP2D_OUTLIER_PROB) < 0.015
    inlier_xy = np.concatenate(residuals)[~outlier]
    assert abs(inlier_xy.std() / synthetic_style_a.KP2D_SIGMA_PX - 1) < 0.15
    # Confidence follows the error: outliers low, small errors high.
    assert conf[outlier].max() <= synthetic_style_a.KP2D_OUTLIER_CONF[1] + 1e-6
    assert conf[err < synthetic_style_a.KP2D_SIGMA_PX].mean() > 0.85


def _relative_rotvec(pickles: dict[str, dict[str, Any]], split: str) -> tuple[np.ndarray, list]:
    arrays = pickles["pw3d"][split]
    gt = Rotation.from_rotvec(arrays["smpl_pose"].reshape(-1, 3))
    pred = Rotation.from_rotvec(arrays["pred_smpl_pose"].reshape(-1, 3).astype(np.float64))
    err = (gt.inv() * pred).as_rotvec().reshape(-1, 24, 3)      # R_gt^T R_pred per joint, (F, 24, 3)
    return err, _runs(arrays["source"])


def test_hybrik_like_pose_error_has_documented_magnitudes(pickles: dict[str, dict[str, Any]]) -> None:
    err, runs = _relative_rotvec(pickles, "train")
    jitter, bias = np.radians(synthetic_style_a.HYBRIK_JITTER_DEG), np.radians(synthetic_style_a.HYBRIK_BIAS_DEG)
    total = MEAN_ANGLE_PER_AXIS_STD * math.hypot(jitter, bias)
    assert abs(np.linalg.norm(err, axis=-1).mean() / total - 1) < 0.15
    steps, smoothed = [], []
    for _, start, stop in runs:
        e = Rotation.from_rotvec(err[start:stop].reshape(-1, 3)).as_matrix().reshape(-1, 24, 3, 3)
        step = np.einsum("tjba,tjbc->tjac", e[:-1], e[1:])     # change of the error between frames
        steps.append(Rotation.from_matrix(step.reshape(-1, 3, 3)).magnitude())
        # Averaging 21 frames removes most of the i.i.d. jitter and keeps the slow bias.
        window = np.lib.stride_tricks.sliding_window_view(err[start:stop], 21, axis=0).mean(-1)
        smoothed.append(np.linalg.norm(window, axis=-1).ravel())
    step_mean = np.concatenate(steps).mean()
    assert abs(step_mean / (MEAN_ANGLE_PER_AXIS_STD * math.sqrt(2) * jitter) - 1) < 0.15
    residual_jitter = jitter / math.sqrt(21)
    assert abs(np.concatenate(smoothed).mean() / (MEAN_ANGLE_PER_AXIS_STD * math.hypot(bias, residual_jitter))
               - 1) < 0.3


def test_hybrik_like_betas_and_coco_error(pickles: dict[str, dict[str, Any]]) -> None:
    arrays = pickles["pw3d"]["train"]
    diff = arrays["pred_smpl_shape"] - arrays["smpl_shape"]
    total = math.hypot(synthetic_style_a.HYBRIK_BETAS_OFFSET_STD, synthetic_style_a.HYBRIK_BETAS_JITTER_STD)
    assert abs(diff.std() / total - 1) < 0.35
    coco = pickles["coco"]["train"]
    gt = Rotation.from_rotvec(coco["smpl_pose"].reshape(-1, 3))
    pred = Rotation.from_rotvec(coco["pred_smpl_pose"].reshape(-1, 3).astype(np.float64))
    expected = MEAN_ANGLE_PER_AXIS_STD * math.hypot(np.radians(synthetic_style_a.HYBRIK_JITTER_DEG),
                                                    np.radians(synthetic_style_a.HYBRIK_BIAS_DEG))
    assert abs((gt.inv() * pred).magnitude().mean() / expected - 1) < 0.15


def test_hybrik_like_mpjpe_in_documented_range(data_root: Path, pickles: dict[str, dict[str, Any]]) -> None:
    from lib.body.smpl import BodyModel

    body = BodyModel(data_root)
    arrays = pickles["pw3d"]["test"]

    def joints(pose: np.ndarray, betas: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            out = body.forward_axis_angle(torch.as_tensor(pose, dtype=torch.float32),
                                          torch.as_tensor(betas, dtype=torch.float32))
            kp = body.h36m_joints(out.vertices).numpy() * 1000.0                     # mm
        return kp - kp[:, H36M_ROOT:H36M_ROOT + 1]

    gt = joints(arrays["smpl_pose"], arrays["smpl_shape"])[:, list(H36M_EVAL_14)]
    pred = joints(arrays["pred_smpl_pose"], arrays["pred_smpl_shape"])[:, list(H36M_EVAL_14)]
    mpjpe = np.linalg.norm(gt - pred, axis=-1).mean()
    assert 40 < mpjpe < 90

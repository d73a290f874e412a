"""The 2D fit of HybrIK's input as a pipeline stage: one function for training, evaluation and inference,
cached beside the pickle, and the refiner fed the fitted pose everywhere."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np
import pytest
import torch

from lib.body.fit2d import fit_to_2d, weak_perspective_error
from lib.body.smpl import BodyModel
from lib.data import hybrik_fit
from lib.data.datasets import KEY_HYBRIK_POSE, MeshFiles
from lib.data.hybrik_fit import CACHE_SUFFIX, cache_path, fit_hybrik_pose
from lib.geometry.rotation import axis_angle_to_matrix

PRIOR, STEPS = 0.01, 10


def _cfg(data_root: Path, **changes):
    from lib.config.task import parse_task_config
    from lib.data.synthetic import MESH_FILES

    raw = dict(data_root=str(data_root), dt_file_pw3d=MESH_FILES["pw3d"], clip_len=8, data_stride=4, maxlen=16,
               fit2d_prior=PRIOR, fit2d_steps=STEPS)
    raw.update(changes)
    return parse_task_config(raw, source="test.yaml")


@pytest.fixture()
def own_root(data_root: Path, tmp_path: Path) -> Path:
    """A private copy of the session's data_root (the fit writes its cache beside the pickles), without the
    caches other tests' fitting configs may have left in the shared one."""
    import shutil

    return Path(shutil.copytree(data_root, tmp_path / "root", ignore=shutil.ignore_patterns("*" + CACHE_SUFFIX)))


def _reprojection_error(body: BodyModel, pose_aa: np.ndarray, betas: np.ndarray, pose2d: np.ndarray) -> float:
    n = len(pose_aa)
    rot = axis_angle_to_matrix(torch.as_tensor(pose_aa, dtype=torch.float32).reshape(n, 24, 3))
    joints = body.h36m_joints_of_pose(rot, torch.as_tensor(betas, dtype=torch.float32))
    pose2d = torch.as_tensor(pose2d)
    return float(weak_perspective_error(joints[..., :2], pose2d[..., :2], pose2d[..., 2]).mean())


def test_fit_hybrik_pose_is_fit_to_2d_in_axis_angle(data_root: Path) -> None:
    """The chunked wrapper returns fit_to_2d's rotations (one chunk here) as (F, 72) axis-angle, and a
    2-channel 2D (no confidence) is fitted with every joint weighted 1."""
    files = MeshFiles(_cfg(data_root, fit2d_prior=None))
    split = files.split("pw3d", "test")
    rows = slice(0, 12)
    pose, betas = (np.asarray(split.arrays[k][rows], np.float32) for k in ("pred_smpl_pose", "pred_smpl_shape"))
    pose2d = split.pose2d[rows]
    body = BodyModel(data_root)
    got = fit_hybrik_pose(body, pose, betas, pose2d, prior_weight=PRIOR, steps=STEPS)
    assert got.shape == (12, 72) and got.dtype == np.float32
    direct = fit_to_2d(body, axis_angle_to_matrix(torch.from_numpy(pose).reshape(12, 24, 3)), torch.from_numpy(betas),
                       torch.from_numpy(pose2d), prior_weight=PRIOR, steps=STEPS)
    np.testing.assert_allclose(axis_angle_to_matrix(torch.from_numpy(got).reshape(12, 24, 3)).numpy(), direct.numpy(),
                               atol=1e-5)
    ones = pose2d.copy()
    ones[..., 2] = 1.0
    np.testing.assert_allclose(fit_hybrik_pose(body, pose, betas, pose2d[..., :2], prior_weight=PRIOR, steps=STEPS),
                               fit_hybrik_pose(body, pose, betas, ones, prior_weight=PRIOR, steps=STEPS), atol=1e-6)


def test_mesh_files_feed_the_fitted_pose_and_cache_it(own_root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    raw = MeshFiles(_cfg(own_root, fit2d_prior=None)).split("pw3d", "test")
    fitted = MeshFiles(_cfg(own_root)).split("pw3d", "test")
    body = BodyModel(own_root)
    pose_raw = np.asarray(raw.arrays[KEY_HYBRIK_POSE], np.float32)
    pose_fit = np.asarray(fitted.arrays[KEY_HYBRIK_POSE])
    assert pose_fit.shape == pose_raw.shape and not np.allclose(pose_fit, pose_raw, atol=1e-3)
    betas = np.asarray(raw.arrays["pred_smpl_shape"], np.float32)
    # the fit moved HybrIK's joints onto the split's own 2D: the reprojection error falls
    before = _reprojection_error(body, pose_raw, betas, raw.pose2d)
    after = _reprojection_error(body, pose_fit, betas, raw.pose2d)
    assert after < 0.5 * before, (before, after)
    # what training and evaluation read is the fitted pose; everything else is the pickle's
    item = fitted.take(np.arange(4))
    np.testing.assert_array_equal(item["hybrik_pose"], pose_fit[:4])
    np.testing.assert_array_equal(item["gt_pose"], raw.take(np.arange(4))["gt_pose"])
    np.testing.assert_array_equal(fitted.pose2d, raw.pose2d)
    # cached beside the pickle: a second load reads it instead of fitting
    path = cache_path(fitted.path, "test", PRIOR, STEPS)
    assert path.is_file() and path.parent.name.endswith(".fit2d")
    monkeypatch.setattr(hybrik_fit, "fit_hybrik_pose", lambda *a, **k: pytest.fail("fitted again"))
    again = MeshFiles(_cfg(own_root)).split("pw3d", "test")
    np.testing.assert_array_equal(np.asarray(again.arrays[KEY_HYBRIK_POSE]), pose_fit)
    # another prior, or a changed pickle, is another cache file
    assert cache_path(fitted.path, "test", 0.1, STEPS) != path
    assert cache_path(fitted.path, "test", PRIOR, STEPS, robust=0.2) not in (path, cache_path(
        fitted.path, "test", PRIOR, STEPS, robust=0.3))  # the robust scale is part of the key
    # the config's fit2d_robust reaches the fit
    monkeypatch.undo()
    robust = np.asarray(MeshFiles(_cfg(own_root, fit2d_robust=0.05)).split("pw3d", "test").arrays[KEY_HYBRIK_POSE])
    expected = fit_hybrik_pose(body, pose_raw, betas, raw.pose2d, prior_weight=PRIOR, steps=STEPS, robust=0.05)
    np.testing.assert_allclose(robust, expected, atol=1e-5)
    assert not np.allclose(robust, pose_fit, atol=1e-3)
    stat = os.stat(fitted.path)
    os.utime(fitted.path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000))
    assert cache_path(fitted.path, "test", PRIOR, STEPS) != path


def test_unwritable_cache_folder_warns_and_still_fits(own_root: Path, caplog: pytest.LogCaptureFixture) -> None:
    from lib.data.synthetic import MESH_FILES

    blocker = own_root / (MESH_FILES["pw3d"] + ".fit2d")
    blocker.write_text("a file where the cache folder would go")
    with caplog.at_level(logging.WARNING, logger="lib.data.hybrik_fit"):
        split = MeshFiles(_cfg(own_root)).split("pw3d", "test")
    assert split.arrays[KEY_HYBRIK_POSE].shape == (split.frames, 72)
    assert any("could not be cached" in r.getMessage() for r in caplog.records)
    assert blocker.read_text().startswith("a file")  # nothing of the user's overwritten


def test_inference_fits_before_the_network_as_training_did(data_root: Path) -> None:
    """``pipeline.refine`` gives the network the fitted pose when the refiner was trained on it (the window
    function here returns its input rotations, so the output is what the network was given)."""
    from lib.deploy.inputs import HybrIKSequence
    from lib.deploy.pipeline import Refiner, refine

    split = MeshFiles(_cfg(data_root, fit2d_prior=None)).split("pw3d", "test")
    n = 12
    pose = np.asarray(split.arrays["pred_smpl_pose"][:n], np.float64)
    betas = np.asarray(split.arrays["pred_smpl_shape"][:n], np.float64)
    rot = axis_angle_to_matrix(torch.from_numpy(pose).reshape(n, 24, 3)).numpy()
    seq = HybrIKSequence(rot_mat=rot, betas=betas, transl=None, xyz_17=None, bbox=None, image_size=None, fps=None,
                         source="test")

    def echo(pose2d, theta, shape):  # (B, T, 17, C), (B, T, 72), (B, T, 10) -> the input rotations
        b, t = theta.shape[:2]
        return axis_angle_to_matrix(torch.from_numpy(theta).reshape(b, t, 24, 3)).numpy(), shape

    body = BodyModel(data_root)
    pose2d = split.pose2d[:n]
    plain = Refiner(window_fn=echo, clip_len=8, sample_stride=1, maxlen=16, in_channels=3, flip=False,
                    description="echo")
    with_fit = Refiner(window_fn=echo, clip_len=8, sample_stride=1, maxlen=16, in_channels=3, flip=False,
                       description="echo", fit2d_prior=PRIOR, fit2d_steps=STEPS)
    out_plain, _ = refine(plain, seq, pose2d)
    np.testing.assert_allclose(out_plain, rot, atol=1e-5)
    out_fit, _ = refine(with_fit, seq, pose2d, body=body)
    expected = fit_hybrik_pose(body, seq.pose_aa, betas, pose2d, prior_weight=PRIOR, steps=STEPS)
    np.testing.assert_allclose(out_fit, axis_angle_to_matrix(torch.from_numpy(expected).reshape(n, 24, 3)).numpy(),
                               atol=1e-5)
    assert np.abs(out_fit - rot).max() > 1e-2  # the fit did change the input
    robust = Refiner(window_fn=echo, clip_len=8, sample_stride=1, maxlen=16, in_channels=3, flip=False,
                     description="echo", fit2d_prior=PRIOR, fit2d_steps=STEPS, fit2d_robust=0.05)
    out_robust, _ = refine(robust, seq, pose2d, body=body)
    expected = fit_hybrik_pose(body, seq.pose_aa, betas, pose2d, prior_weight=PRIOR, steps=STEPS, robust=0.05)
    np.testing.assert_allclose(out_robust, axis_angle_to_matrix(torch.from_numpy(expected).reshape(n, 24, 3)).numpy(),
                               atol=1e-5)
    assert np.abs(out_robust - out_fit).max() > 1e-3  # the robust fit is another fit
    with pytest.raises(ValueError, match="fitted to the 2D; pass body="):
        refine(with_fit, seq, pose2d)


def test_baselines_read_hybriks_own_input_and_the_refiners_input_apart(own_root: Path) -> None:
    """On a fitting config, the "input" baseline is HybrIK's own pose (as the evaluation's input) and the
    "refiner input" one is the fit (the "fit alone" row of bench_transfer)."""
    from lib.data.datasets import EvalSequences
    from lib.eval.baselines import input_predictor, refiner_input_predictor

    raw = MeshFiles(_cfg(own_root, fit2d_prior=None)).split("pw3d", "test")
    fitted = MeshFiles(_cfg(own_root)).split("pw3d", "test")
    seq = next(iter(EvalSequences(fitted, 1, 8)))
    labels = seq.frame_arrays()
    n = seq.frames
    own, _ = input_predictor(seq, labels)
    given, _ = refiner_input_predictor(seq, labels)
    raw_pose = torch.from_numpy(np.asarray(raw.arrays[KEY_HYBRIK_POSE][seq.rows], np.float32)).reshape(n, 24, 3)
    fit_pose = torch.from_numpy(np.asarray(fitted.arrays[KEY_HYBRIK_POSE][seq.rows])).reshape(n, 24, 3)
    torch.testing.assert_close(own, axis_angle_to_matrix(raw_pose))
    torch.testing.assert_close(given, axis_angle_to_matrix(fit_pose))

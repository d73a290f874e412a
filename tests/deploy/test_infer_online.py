"""infer_mesh --online --lookahead K: the same npz as offline once K covers a window, a causal run from
the ONNX back end, the summary's latency entries, and one-line errors for the flags."""

from __future__ import annotations

import json

import numpy as np
import pytest

from lib.deploy.infer_cli import main
from lib.deploy.pipeline import refine, refiner_from_model
from lib.deploy.stream import refine_stream
from lib.windowed import torch_window_fn, with_flip


def _run(argv: list[object]) -> int:
    return main([str(a) for a in argv])


def _summary(capsys) -> dict:
    return json.loads(capsys.readouterr().out.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def offline_npz(synthetic_video, tiny_setup, tmp_path_factory) -> dict[str, np.ndarray]:
    out = tmp_path_factory.mktemp("offline") / "offline.npz"
    assert _run(["--hybrik", synthetic_video.folder / "res.pk", "--checkpoint_file", tiny_setup.checkpoint,
                 "--out", out]) == 0
    with np.load(out) as npz:
        return dict(npz)


def test_a_window_of_lookahead_writes_the_offline_npz(synthetic_video, tiny_setup, offline_npz, tmp_path,
                                                      capsys) -> None:
    cfg = tiny_setup.task_cfg
    lookahead = cfg.clip_len * cfg.sample_stride  # 16 x 2: every offline window complete when a frame leaves
    out = tmp_path / "online.npz"
    capsys.readouterr()
    assert _run(["--hybrik", synthetic_video.folder / "res.pk", "--checkpoint_file", tiny_setup.checkpoint,
                 "--online", "--lookahead", lookahead, "--out", out]) == 0
    summary = _summary(capsys)
    assert summary["online"] is True and summary["lookahead"] == lookahead
    assert summary["delay_s"] == pytest.approx(lookahead / 30.0, abs=1e-4)
    assert 0 < summary["refiner_ms_per_frame"]["p50"] <= summary["refiner_ms_per_frame"]["p99"]
    with np.load(out) as online:
        for key in ("rot_mat", "betas", "vertices", "keypoints_3d", "input_vertices"):
            np.testing.assert_allclose(online[key], offline_npz[key], atol=1e-5, err_msg=key)
        assert json.loads(str(online["settings"]))["lookahead"] == lookahead


def test_causal_run_from_the_onnx_equals_the_checkpoints_stream(synthetic_video, tiny_setup, exported, data_root,
                                                                offline_npz, tmp_path) -> None:
    out = tmp_path / "causal.npz"
    assert _run(["--hybrik", synthetic_video.folder / "res.pk", "--onnx", exported.path, "--data_root", data_root,
                 "--online", "--lookahead", 0, "--out", out]) == 0
    with np.load(out) as causal:
        rot, pose2d, theta, betas = causal["rot_mat"], causal["pose2d"], causal["input_pose_aa"], causal["input_betas"]
        np.testing.assert_allclose(np.linalg.det(rot.astype(np.float64)), 1.0, atol=1e-5)
        assert np.abs(rot - offline_npz["rot_mat"]).max() > 1e-3  # without the future frames the result differs
    cfg = tiny_setup.task_cfg
    expected, _ = refine_stream(with_flip(torch_window_fn(tiny_setup.model)), pose2d, theta, betas,
                                clip_len=cfg.clip_len, sample_stride=cfg.sample_stride, lookahead=0)
    np.testing.assert_allclose(rot, expected, atol=1e-4)  # the back ends agree as offline (test_infer.py)


def test_pipeline_refine_offline_and_online_share_the_plan(synthetic_video, tiny_setup) -> None:
    from lib.deploy.inputs import read_hybrik_results

    seq = read_hybrik_results(synthetic_video.folder / "res.pk")
    refiner = refiner_from_model(tiny_setup.model, tiny_setup.task_cfg, "tiny")
    pose2d = np.zeros((seq.frames, 17, 3), dtype=np.float32)
    pushes: list[int] = []
    offline = refine(refiner, seq, pose2d, overlap=4)
    online = refine(refiner, seq, pose2d, overlap=4, lookahead=32, on_push=lambda f, s: pushes.append(f))
    np.testing.assert_allclose(online[0], offline[0], atol=1e-5)
    assert pushes == list(range(seq.frames))


def test_online_flag_errors_are_one_line(synthetic_video, tiny_setup, tmp_path, capsys) -> None:
    base = ["--hybrik", synthetic_video.folder / "res.pk", "--checkpoint_file", tiny_setup.checkpoint,
            "--out", tmp_path / "x.npz"]
    for extra in (["--lookahead", 2], ["--online", "--lookahead", -1]):
        assert _run([*base, *extra]) == 2
        err = capsys.readouterr().err
        assert "--lookahead" in err and "expected K >= 0 together with --online" in err and err.count("\n") == 1
    assert not (tmp_path / "x.npz").exists()

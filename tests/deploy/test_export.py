"""The seed's export command: one self-contained ONNX, proven against PyTorch; tampering is caught."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import onnx
import pytest

from lib.deploy import export as ex
from lib.deploy.export import check_shapes
from lib.deploy.export_cli import main
from lib.deploy.onnx_runner import RefinerSession
from lib.errors import CheckpointError
from lib.model.refiner import EXPORT_INPUT_NAMES, EXPORT_OUTPUT_NAMES

V_TEMPLATE_SHAPE = (3 * 6890,)  # BodyModel.template_cm: the rest mesh, component-major (x of every vertex first)


def test_cli_writes_one_verified_file_with_dynamic_n_and_t(exported, tiny_setup) -> None:
    assert exported.exit_code == 0, exported.stdout
    assert [p.name for p in exported.path.parent.iterdir()] == [exported.path.name]  # no .data file, no temp
    proto = onnx.load(str(exported.path))
    assert [i.name for i in proto.graph.input] == list(EXPORT_INPUT_NAMES)
    assert [o.name for o in proto.graph.output] == list(EXPORT_OUTPUT_NAMES)
    dims = {v.name: [d.dim_param or d.dim_value for d in v.type.tensor_type.shape.dim]
            for v in (*proto.graph.input, *proto.graph.output)}
    assert dims["pose2d"] == ["N", "T", 17, 3] and dims["hybrik_theta"] == ["N", "T", 72]
    assert dims["vertices"] == ["N", "T", 6890, 3] and dims["rot_mat"] == ["N", "T", 24, 3, 3]
    for line in ("onnx.checker: ok", "parity (N, T) = (1, 16): ok", "parity (N, T) = (3, 27): ok", "opset",
                 "latency (N, T) = (8, 16)"):
        assert line in exported.stdout
    session = RefinerSession(exported.path)
    assert (session.clip_len, session.sample_stride, session.maxlen) == (16, 2, 243)
    assert session.signature()["dim_rep"] == 32 and session.metadata["checkpoint_epoch"] == "3"
    assert "x / W * 2 - 1" in session.metadata["pose2d_normalisation"]
    assert session.fit2d_prior is None and session.metadata["fit2d"] == ""  # trained without the 2D fit


def test_the_2d_fit_of_hybriks_input_travels_in_the_metadata(exported, tmp_path: Path) -> None:
    """A checkpoint trained with ``fit2d_prior`` exports it (the graph does not hold the fit), and the ONNX
    refiner of the inference pipeline runs the fit before the graph as the checkpoint did."""
    from lib.deploy.onnx_runner import METADATA_FIT2D
    from lib.deploy.pipeline import refiner_from_onnx

    metadata = ex.export_metadata(clip_len=16, sample_stride=2, maxlen=243, flip=True, in_channels=3, signature={},
                                  fit2d_prior=0.01, fit2d_steps=30, fit2d_robust=0.2)
    proto = onnx.load(str(exported.path))
    del proto.metadata_props[:]
    onnx.helper.set_model_props(proto, metadata)
    path = tmp_path / "fit.onnx"
    onnx.save(proto, str(path))
    assert metadata[METADATA_FIT2D] == '{"prior_weight": 0.01, "steps": 30, "robust": 0.2}'
    refiner = refiner_from_onnx(path)
    assert (refiner.fit2d_prior, refiner.fit2d_steps, refiner.fit2d_robust) == (0.01, 30, 0.2)
    # a file exported before the robust option (no "robust" in its JSON) fits with the squared error
    onnx.helper.set_model_props(proto, {**metadata, METADATA_FIT2D: '{"prior_weight": 0.01, "steps": 30}'})
    onnx.save(proto, str(path))
    assert refiner_from_onnx(path).fit2d_robust is None


def test_onnxruntime_matches_pytorch_at_two_shapes(exported, tiny_setup) -> None:
    report = ex.verify_onnx(tiny_setup.model, exported.path, [(1, 16), (3, 27)], seed=11)
    assert report.ok
    for check in report.parity:
        assert check.max_abs["vertices"] < 1e-2 and check.max_abs["keypoint_3d"] < 1e-2  # mm
        assert check.max_abs["rot_mat"] < 1e-4 and check.max_abs["shape"] < 1e-4
    # the graph's outputs are the model's, not a shortcut: the refiner moves HybrIK's rotations
    inputs = ex.realistic_inputs(1, 16, seed=5)
    got = RefinerSession(exported.path).run(**inputs)
    from lib.geometry.rotation import axis_angle_to_matrix
    import torch

    hybrik = axis_angle_to_matrix(torch.from_numpy(inputs["hybrik_theta"]).reshape(1, 16, 24, 3)).numpy()
    assert np.abs(got["rot_mat"] - hybrik).max() > 1e-3


def _tamper(src: Path, dst: Path) -> Path:
    """Move the first 100 template vertices by 1 mm in x (the graph's own SMPL data)."""
    proto = onnx.load(str(src))
    target = next(t for t in proto.graph.initializer if tuple(t.dims) == V_TEMPLATE_SHAPE)
    values = onnx.numpy_helper.to_array(target).copy()
    values[:100] += 0.001
    target.CopyFrom(onnx.numpy_helper.from_array(values, target.name))
    onnx.save(proto, str(dst))
    return dst


def test_a_tampered_graph_fails_verification(exported, tiny_setup, tmp_path: Path) -> None:
    bad = _tamper(exported.path, tmp_path / "tampered.onnx")
    report = ex.verify_onnx(tiny_setup.model, bad, [(1, 16)])
    assert report.checker_ok and not report.ok
    assert report.parity[0].max_abs["vertices"] > 0.5  # mm


def test_cli_exits_1_and_keeps_the_file_when_verification_fails(exported, tiny_setup, tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    out = tmp_path / "refine.onnx"
    def export_then_tamper(model, path, metadata, **kwargs):  # skip the slow export: reuse the session's file
        shutil.copy(exported.path, path)
        _tamper(Path(path), Path(path))
        return ex.ExportInfo(path=Path(path), seconds=0.0, size_bytes=Path(path).stat().st_size, opset=20,
                             inputs=[], outputs=[])

    monkeypatch.setattr(ex, "export_onnx", export_then_tamper)
    code = main(["--config", str(tiny_setup.task_yaml), "--hyper_cfg", str(_hyper()), "--hyper_relation_bias",
                 "uniform", "--version", "2", "--evaluate", str(tiny_setup.checkpoint), "--deployment", str(out),
                 "--latency_repeats", "0"])
    captured = capsys.readouterr()
    assert code == 1 and out.is_file()
    assert "verification FAILED" in captured.err and str(out) in captured.err
    assert "FAILED  max |onnx - torch|: rot_mat" in captured.out


def _hyper() -> Path:
    return Path(__file__).resolve().parents[2] / "hyper_config" / "method2" / "manual_joint_label1.yaml"


def test_cli_user_errors_are_one_line_exit_2(tiny_setup, tmp_path: Path, capsys) -> None:
    base = ["--config", str(tiny_setup.task_yaml), "--hyper_cfg", str(_hyper()), "--evaluate",
            str(tiny_setup.checkpoint), "--deployment", str(tmp_path / "x.onnx")]
    # a model other than the checkpoint's (relation bias none instead of uniform)
    assert main(base + ["--hyper_relation_bias", "none", "--version", "2"]) == 2
    err = capsys.readouterr().err
    assert "written for a different model" in err and "option.hyper_relation_bias" in err and err.count("\n") == 1
    assert main(base[:-1] + [str(tmp_path / "x.bin"), "--hyper_relation_bias", "uniform"]) == 2
    assert "expected a file name ending in .onnx" in capsys.readouterr().err
    base[base.index("--evaluate") + 1] = str(tmp_path / "missing.bin")
    assert main(base + ["--hyper_relation_bias", "uniform"]) == 2
    assert "checkpoint not found" in capsys.readouterr().err
    assert not list(tmp_path.iterdir())


def test_refiner_session_refuses_other_models(hybrik_standin: Path) -> None:
    with pytest.raises(CheckpointError, match="is this the HybrIK model"):
        RefinerSession(hybrik_standin)


def test_check_shapes_picks_a_second_t() -> None:
    assert check_shapes(16, 243) == [(1, 16), (3, 27)]
    assert check_shapes(27, 243) == [(1, 27), (3, 26)]
    assert check_shapes(16, 20) == [(1, 16), (3, 20)]


def test_export_onnx_accepts_a_str_path(tiny_setup, tmp_path: Path) -> None:
    from lib.deploy.export import export_onnx

    target = tmp_path / "as_str.onnx"
    info = export_onnx(tiny_setup.model, str(target), {"note": "str path"}, clip_len=8)
    assert info.path == target and target.stat().st_size == info.size_bytes > 0
    assert [p.name for p in tmp_path.iterdir()] == ["as_str.onnx"]


def test_input_hybrik_model_exports_with_parity(tiny_setup, tmp_path: Path) -> None:
    """The backbone's extra input (HybrIK's joints by SMPL, the 2D's disagreement) is part of the graph."""
    import torch

    from lib.model.build import build_model
    from lib.model.evidence import EVIDENCE_CHANNELS

    torch.manual_seed(1)
    model = build_model(tiny_setup.task_cfg.replace(input_hybrik=True), tiny_setup.hyper_cfg, tiny_setup.options)
    with torch.no_grad():
        model.head.head_pose.weight.normal_(0.0, 1e-2)  # zero-initialised residual: make the graph move HybrIK
    model.eval()
    assert model.backbone.joint_embed.in_features == 3 + EVIDENCE_CHANNELS
    target = ex.export_onnx(model, tmp_path / "evidence.onnx", {"note": "input_hybrik"}, clip_len=8).path
    report = ex.verify_onnx(model, target, [(1, 8), (2, 11)], seed=3)
    assert report.ok
    for check in report.parity:
        assert check.max_abs["vertices"] < 1e-2 and check.max_abs["rot_mat"] < 1e-4


def test_adaptive_smoother_exports_with_parity_down_to_one_frame(tiny_setup, tmp_path: Path) -> None:
    """Each clip's filter width is computed inside the graph; T = 1 and 2 have no second difference."""
    import torch

    from lib.model.build import build_model
    from lib.model.head import AdaptivePriorSmoother

    torch.manual_seed(2)
    model = build_model(tiny_setup.task_cfg.replace(smooth_adaptive=True), tiny_setup.hyper_cfg, tiny_setup.options)
    with torch.no_grad():
        model.head.head_pose.weight.normal_(0.0, 1e-2)
    model.eval()
    assert isinstance(model.head.smoother, AdaptivePriorSmoother)
    target = ex.export_onnx(model, tmp_path / "adaptive.onnx", {"note": "smooth_adaptive"}, clip_len=8).path
    report = ex.verify_onnx(model, target, [(1, 1), (2, 2), (2, 11)], seed=4)
    assert report.ok
    for check in report.parity:
        assert check.max_abs["vertices"] < 1e-2 and check.max_abs["rot_mat"] < 1e-4

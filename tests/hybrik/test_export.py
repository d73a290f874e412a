"""The HybrIK ONNX export: the seed's I/O names and shapes, N dynamic, onnxruntime == PyTorch at N = 1 and 3."""

from __future__ import annotations

import logging
from pathlib import Path

import onnx
import torch

from lib.deploy.hybrik_onnx import check_hybrik_io
from lib.hybrik.preprocess import INPUT_NAMES
from lib.deploy.hybrik_export import DEFAULT_TOLERANCES, EXPORT_OUTPUT_NAMES, verify_hybrik_onnx
from lib.hybrik.model import HybrIKCam

# The seed's documented outputs (doc/mesh.md "Deployment for HybrIK"), written out independently.
SEED_OUTPUT_DIMS = {"pred_shape": [10], "pred_theta_mats": [216], "pred_uvd_jts": [87], "pred_xyz_jts_29": [87],
                    "pred_xyz_jts_24": [72], "pred_xyz_jts_24_struct": [72], "pred_xyz_jts_17": [51],
                    "pred_vertices": [6890, 3], "cam_scale": [1], "cam_root": [3], "transl": [3], "pred_camera": [1]}


def _dims(value: onnx.ValueInfoProto) -> list[object]:
    return [d.dim_param or d.dim_value for d in value.type.tensor_type.shape.dim]


def test_io_names_and_shapes(hybrik18_onnx: Path) -> None:
    graph = onnx.load(str(hybrik18_onnx), load_external_data=False).graph
    inputs = {v.name: _dims(v) for v in graph.input}
    outputs = {v.name: _dims(v) for v in graph.output}
    assert list(inputs) == list(INPUT_NAMES) and list(outputs) == list(EXPORT_OUTPUT_NAMES)
    batch = inputs["input_image"][0]
    assert isinstance(batch, str)  # symbolic N
    assert inputs == {"input_image": [batch, 64, 64, 3], "bbox": [batch, 4], "image_center": [batch, 2]}
    for name, dims in outputs.items():
        assert isinstance(dims[0], str) and dims[1:] == SEED_OUTPUT_DIMS[name], (name, dims)
    # what the deployment engineer's runner checks on a user's HybrIK file (the crop size aside)
    check_hybrik_io([(k, [v[0], 256, 256, 3] if k == "input_image" else v) for k, v in inputs.items()],
                    list(outputs), hybrik18_onnx)


def test_onnxruntime_matches_pytorch(hybrik18: HybrIKCam, hybrik18_onnx: Path, caplog) -> None:
    with caplog.at_level(logging.INFO, logger="lib.deploy.hybrik_export"):
        checks = verify_hybrik_onnx(hybrik18, hybrik18_onnx, flip_test=True, batches=(1, 3), input_size=64)
    assert [c.n for c in checks] == [1, 3]
    for check in checks:
        assert check.ok, {k: v for k, v in check.max_abs.items() if v > check.tolerances[k]}
        assert check.tolerances == DEFAULT_TOLERANCES  # human-sized skeletons: no widened rotation bound


def test_cli_refuses_bad_arguments(smpl_root: Path, tmp_path: Path, capsys) -> None:
    from lib.deploy.hybrik_export_cli import main

    out = tmp_path / "hybrik.onnx"
    assert main(["--data_root", str(smpl_root), "--deployment", str(out)]) == 2
    assert "exactly one of --checkpoint" in capsys.readouterr().err
    assert main(["--data_root", str(smpl_root), "--random_init", "--deployment", str(tmp_path / "x.txt")]) == 2
    assert "ending in .onnx" in capsys.readouterr().err
    bogus = tmp_path / "other.pth"
    torch.save({"backbone.weight": torch.zeros(2)}, bogus)
    assert main(["--data_root", str(smpl_root), "--checkpoint", str(bogus), "--width", "18",
                 "--deployment", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "no tensor matches" in err and err.count("\n") == 1
    assert not out.exists()

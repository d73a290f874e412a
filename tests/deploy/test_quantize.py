"""int8 dynamic quantisation of the export (``export_onnx(quantize="int8")``, measured by bench_speed):
the backbone's and head's linear layers in int8, SMPL untouched, said so in the metadata; bad values are
one-line errors."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import pytest

from lib.deploy import export as ex
from lib.deploy.onnx_runner import METADATA_QUANTIZATION, RefinerSession
from lib.deploy.quantize import QUANTIZED_TOLERANCES, check_quantize
from lib.errors import ConfigError

SMPL_VERTICES = 6890  # SMPL's blend-shape, skinning and regressor arrays have a 6890 (or 3 x 6890) axis
# Max vertex deviation of the perturbed tiny model (tests/deploy/conftest.py) in int8 from float32: ~8 mm
# measured with 7-bit weights; ~90 mm when onnxruntime's AVX2 kernel saturates (8-bit weights).
TINY_INT8_MAX_MM = 30.0


@pytest.fixture(scope="module")
def quantized(tiny_setup, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("int8") / "refine_int8.onnx"
    cfg = tiny_setup.task_cfg
    metadata = ex.export_metadata(clip_len=cfg.clip_len, sample_stride=cfg.sample_stride, maxlen=cfg.maxlen,
                                  flip=cfg.flip, in_channels=tiny_setup.model.in_channels, signature={})
    ex.export_onnx(tiny_setup.model, path, metadata, clip_len=cfg.clip_len, quantize="int8")
    return path


def test_int8_quantizes_the_network_and_leaves_smpl_float(quantized: Path, exported) -> None:
    described = json.loads(RefinerSession(quantized).metadata[METADATA_QUANTIZATION])
    assert described["scheme"] == "int8 dynamic" and described["tolerances"] == QUANTIZED_TOLERANCES
    assert RefinerSession(exported.path).metadata[METADATA_QUANTIZATION] == "none"
    proto = onnx.load(str(quantized))
    ops = [n.op_type for n in proto.graph.node]
    assert ops.count("MatMulInteger") == described["layers"] >= 4  # at least qkv, proj, fc1, fc2 of one block
    assert "DynamicQuantizeLinear" in ops and "Attention" in ops  # the attention rewrite still applies
    int8 = [t for t in proto.graph.initializer if t.data_type == onnx.TensorProto.INT8 and len(t.dims) == 2]  # weights
    assert len(int8) == described["layers"] and all(SMPL_VERTICES not in t.dims for t in int8)

    def smpl_float(model: onnx.ModelProto) -> set[tuple[int, ...]]:
        return {tuple(t.dims) for t in model.graph.initializer
                if any(d % SMPL_VERTICES == 0 for d in t.dims) and t.data_type == onnx.TensorProto.FLOAT}

    assert smpl_float(proto) and smpl_float(proto) == smpl_float(onnx.load(str(exported.path)))
    assert quantized.stat().st_size < exported.path.stat().st_size


def test_int8_outputs_differ_from_float_by_a_bounded_amount(quantized: Path, exported) -> None:
    inputs = ex.realistic_inputs(2, 16, seed=13)
    int8, fp32 = RefinerSession(quantized).run(**inputs), RefinerSession(exported.path).run(**inputs)
    deviation = np.abs(int8["vertices"] - fp32["vertices"]).max()
    assert 1e-2 < deviation < TINY_INT8_MAX_MM  # really quantised; not saturated
    assert np.abs(int8["shape"] - fp32["shape"]).max() < QUANTIZED_TOLERANCES["shape"]


def test_verify_onnx_measures_int8_against_the_stated_bound(quantized: Path, tiny_setup) -> None:
    report = ex.verify_onnx(tiny_setup.model, quantized, [(1, 16)], QUANTIZED_TOLERANCES)
    check = report.parity[0]
    assert report.checker_ok and check.tolerances["vertices"] == 1.0
    assert check.ok == all(check.max_abs[k] <= QUANTIZED_TOLERANCES[k] for k in check.max_abs)
    assert 1e-2 < check.max_abs["vertices"] < TINY_INT8_MAX_MM


def test_bad_quantize_values_are_one_line_errors(tiny_setup, tmp_path: Path) -> None:
    assert check_quantize("int8") == "int8" and check_quantize("none") == "none"
    with pytest.raises(ConfigError, match=r"^quantize='int4': expected one of none, int8$"):
        check_quantize("int4")
    with pytest.raises(ConfigError, match="quantize='fp16'"):
        ex.export_onnx(tiny_setup.model, tmp_path / "x.onnx", {}, clip_len=8, quantize="fp16")
    assert not list(tmp_path.iterdir())

"""write_onnx: the destination is replaced only by a complete file; a failed export leaves nothing behind."""

from __future__ import annotations

from pathlib import Path

import onnx
import pytest
from onnx import TensorProto, helper

from lib.deploy.onnx_file import opset_of, write_onnx


def _identity_model(opset: int) -> onnx.ModelProto:
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])
    graph = helper.make_graph([helper.make_node("Identity", ["x"], ["y"])], "g", [x], [y])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])


def test_writes_edits_and_reports_the_opset(tmp_path: Path) -> None:
    target = tmp_path / "sub" / "model.onnx"

    def mark(proto: onnx.ModelProto) -> None:
        entry = proto.metadata_props.add()
        entry.key, entry.value = "note", "edited"

    proto, seconds = write_onnx(target, lambda tmp: onnx.save(_identity_model(17), tmp), mark)
    assert seconds >= 0 and opset_of(proto) == 17
    saved = onnx.load(target)
    assert {p.key: p.value for p in saved.metadata_props} == {"note": "edited"}
    assert [p.name for p in target.parent.iterdir()] == ["model.onnx"]  # no temp file left


def test_a_failed_export_keeps_the_old_file_and_leaves_no_temp(tmp_path: Path) -> None:
    target = tmp_path / "model.onnx"
    onnx.save(_identity_model(13), target)
    before = target.read_bytes()

    def broken(tmp: str) -> None:
        Path(tmp).write_bytes(b"half a graph")
        raise RuntimeError("exporter crashed")

    with pytest.raises(RuntimeError, match="exporter crashed"):
        write_onnx(target, broken)
    assert target.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["model.onnx"]

"""The CPU rewrites of the exported graph keep its arithmetic (onnxruntime vs eager PyTorch) and remove
what they promise: linear layers on 4D tensors become Gemm, attention loses its head transposes, a fused
q/k/v projection becomes three products without the Split."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import onnx_ir as ir
import pytest
import torch
from torch import nn

from lib.deploy.graph_rewrite import HEAD_TRANSPOSE, rewrite_for_cpu
from lib.model.attention import SelfAttention, SkeletonAttention
from lib.model.graph import normalized_adjacency

DIM, HEADS, JOINTS = 32, 4, 17


class TwoAttentions(nn.Module):
    """A masked attention over joints, then an unmasked one over frames: (N, T, J, C) -> (N, T, J, C).
    The temporal q/k/v bias is zero (as in an untrained hypergraph block: the exporter drops it)."""

    def __init__(self) -> None:
        super().__init__()
        self.spatial = SkeletonAttention(DIM, HEADS, normalized_adjacency())
        self.temporal = SelfAttention(DIM, HEADS)
        with torch.no_grad():
            self.spatial.skeleton_bias.normal_()
            self.temporal.qkv.bias.zero_()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.spatial(x)
        return self.temporal(x.transpose(1, 2)).transpose(1, 2)


@pytest.fixture(scope="module")
def exported() -> tuple[nn.Module, ir.Model, ir.Model, dict[str, int]]:
    for name in ("onnx_ir", "onnxscript", "torch.onnx"):
        logging.getLogger(name).setLevel(logging.ERROR)
    torch.manual_seed(0)
    model = TwoAttentions().eval()
    dims = {0: torch.export.Dim("N", min=1), 1: torch.export.Dim("T", min=1, max=64)}
    with torch.no_grad():
        plain = torch.onnx.export(model, (torch.randn(2, 8, JOINTS, DIM),), dynamo=True, opset_version=23,
                                  dynamic_shapes={"x": dims}, verbose=False).model
        rewritten = torch.onnx.export(model, (torch.randn(2, 8, JOINTS, DIM),), dynamo=True, opset_version=23,
                                      dynamic_shapes={"x": dims}, verbose=False).model
    counts = rewrite_for_cpu(rewritten)
    return model, plain, rewritten, counts


def _ops(model: ir.Model) -> list[str]:
    return [node.op_type for node in model.graph]


def test_rewrites_fire_where_promised(exported) -> None:
    _, plain, rewritten, counts = exported
    # qkv + proj twice; both attentions; each qkv product split in three (with and without its bias)
    assert counts == {"linear_to_gemm": 4, "attention_to_3d": 2, "split_gemm": 4}
    assert _ops(plain).count("MatMul") == 4 and "Gemm" not in _ops(plain) and _ops(plain).count("Split") == 2
    assert _ops(rewritten).count("Gemm") == 8 and "MatMul" not in _ops(rewritten) and "Split" not in _ops(rewritten)
    assert sorted(len(n.inputs) for n in rewritten.graph if n.op_type == "Gemm") == [2, 2, 2, 3, 3, 3, 3, 3]
    # Left: the model's own (N, T, J, C) <-> (N, J, T, C) swaps; gone: 4 head transposes per attention.
    assert _ops(plain).count("Transpose") == 2 + 2 * 4 and _ops(rewritten).count("Transpose") == 2
    assert all(tuple(n.attributes["perm"].as_ints()) == HEAD_TRANSPOSE for n in plain.graph if n.op_type == "Transpose")
    attentions = [n for n in rewritten.graph if n.op_type == "Attention"]
    assert [n.attributes["q_num_heads"].as_int() for n in attentions] == [HEADS, HEADS]
    assert [len(n.inputs) for n in attentions] == [4, 3]  # the skeleton bias is kept, the temporal has none


@pytest.mark.parametrize("shape", [(1, 16), (3, 5)])
def test_rewritten_graph_matches_pytorch(exported, tmp_path: Path, shape: tuple[int, int]) -> None:
    onnxruntime = pytest.importorskip("onnxruntime")
    model, plain, rewritten, _ = exported
    x = torch.randn(*shape, JOINTS, DIM)
    with torch.no_grad():
        expected = model(x).numpy()
    for name, graph in (("plain", plain), ("rewritten", rewritten)):
        path = tmp_path / f"{name}.onnx"
        ir.save(graph, path)
        session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        got = session.run(None, {session.get_inputs()[0].name: x.numpy()})[0]
        np.testing.assert_allclose(got, expected, atol=1e-5, rtol=0, err_msg=name)
    assert np.abs(expected).max() > 0.1  # not a vacuous comparison

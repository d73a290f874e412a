"""int8 dynamic quantisation of the exported refiner's linear layers: measured, not offered as a default.

``lib.deploy.export.export_onnx(..., quantize="int8")`` writes it; ``python -m benchmarks.bench_speed
--parts latency`` times it beside float32, ``--parts int8 --checkpoint CKPT`` reports its deviation from
PyTorch and its accuracy. Issue 18 allowed it "only if parity on vertices stays within 1 mm"; on this
project's CPU (AVX2, no AVX-512 / VNNI) it neither meets that bound on a trained model (1.9 mm, the demo
checkpoint) nor runs faster, so ``deployment_mesh.py`` has no flag for it (README, "Inference speed").

What is quantised: the ``MatMul`` of every linear layer of the backbone and the head (the exporter
records each node's module path in ``pkg.torch.onnx.name_scopes``; a node is taken when that path is
inside ``QUANTIZED_SCOPES``) whose weight is a constant (K, N) matrix with K >= ``MIN_IN_FEATURES``.
Never quantised: SMPL (blend shapes, skinning, regressors), the attention products (both operands are
activations), the head's convolutions, and the 3-channel joint embedding. onnxruntime's
``quantize_dynamic`` writes, per layer, standard ONNX ``DynamicQuantizeLinear`` (activations to uint8,
scale from each call's range) -> ``MatMulInteger`` (int8 weights, symmetric, one scale per layer) ->
float scale and bias; onnxruntime fuses each chain into one kernel at session time.

``reduce_range``: weights in 7 bits. Without it, onnxruntime's AVX2 uint8 x int8 kernel (``vpmaddubsw``)
saturates its 16-bit pair sums, and a perturbed tiny model's vertices moved ~90 mm instead of ~8 mm.
"""

from __future__ import annotations

import json
import logging
import tempfile
from pathlib import Path
from typing import Any

QUANTIZE_CHOICES = ("none", "int8")
QUANTIZED_SCOPES = ("model.backbone", "model.head")  # module paths of MeshRefinerForExport
MIN_IN_FEATURES = 16
NAME_SCOPES = "pkg.torch.onnx.name_scopes"
# The bound for a quantised export: vertices and keypoints within 1 mm of eager PyTorch; rotation
# entries within 1e-3 (1 mm at 1 m) and betas within 1e-2 (a beta of 0.01 moves a vertex well under 1 mm).
QUANTIZED_TOLERANCES: dict[str, float] = {"rot_mat": 1e-3, "shape": 1e-2, "vertices": 1.0, "keypoint_3d": 1.0}


def check_quantize(value: str) -> str:
    """``value`` if it is one of ``QUANTIZE_CHOICES``, else a one-line ``ConfigError``."""
    from lib.errors import ConfigError

    if value not in QUANTIZE_CHOICES:
        raise ConfigError(f"quantize={value!r}: expected one of {', '.join(QUANTIZE_CHOICES)}")
    return value


def _scope(node: Any) -> str:
    return next((p.value for p in node.metadata_props if p.key == NAME_SCOPES), "")


def quantizable_nodes(proto: Any) -> list[str]:
    """Names of the ``MatMul`` nodes of ``proto`` (an ``onnx.ModelProto`` of the exporter's graph) that
    ``quantize_int8`` quantises (see the module docstring)."""
    weights = {t.name: tuple(t.dims) for t in proto.graph.initializer}
    names = []
    for node in proto.graph.node:
        dims = weights.get(node.input[1]) if node.op_type == "MatMul" else None
        if dims is None or len(dims) != 2 or dims[0] < MIN_IN_FEATURES:
            continue
        scope = _scope(node)
        if any(f"'{s}'" in scope or f'"{s}"' in scope for s in QUANTIZED_SCOPES):
            names.append(node.name)
    return names


def quantize_int8(proto: Any) -> tuple[Any, str]:
    """int8 dynamic quantisation of the linear layers of ``proto`` (``quantizable_nodes``).

    Args:
        proto: the exporter's ``onnx.ModelProto`` (before ``lib.deploy.graph_rewrite``: the linear
            layers must still be ``MatMul``).
    Returns:
        (the quantised ``onnx.ModelProto``, its description as JSON for ``metadata_props``).
    Raises:
        RuntimeError: no layer matched (the graph is not the refiner's export).
    """
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    names = quantizable_nodes(proto)
    if not names:
        raise RuntimeError("int8 quantisation: no linear layer of the backbone or head found in the graph")
    with tempfile.TemporaryDirectory() as tmp:
        src, dst = Path(tmp) / "float.onnx", Path(tmp) / "int8.onnx"
        onnx.save(proto, str(src))
        root = logging.getLogger()  # quantize_dynamic logs one root INFO line per tensor and a pre-processing hint
        level = root.level
        root.setLevel(logging.ERROR)
        try:
            quantize_dynamic(src, dst, nodes_to_quantize=names, weight_type=QuantType.QInt8, reduce_range=True)
        finally:
            root.setLevel(level)
        quantized = onnx.load(str(dst))
    description = {"scheme": "int8 dynamic", "weights": "int8 symmetric, 7-bit range, one scale per layer",
                   "activations": "uint8, scale and zero point from each call's range", "layers": len(names),
                   "scopes": list(QUANTIZED_SCOPES), "float32": "SMPL, attention products, convolutions, joint embed",
                   "tolerances": QUANTIZED_TOLERANCES}
    return quantized, json.dumps(description, sort_keys=True)

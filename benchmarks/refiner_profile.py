"""Where the refiner's inference time goes: FLOPs per part, this CPU's sgemm rate, onnxruntime's profile.

Used by ``python -m benchmarks.bench_speed --parts latency``. Nothing here runs in the test suite.

Parts (``PARTS``): the input conversion (HybrIK's axis-angle to matrices, the 2D normalisation), the
backbone's skeleton-attention, hypergraph and temporal blocks, the rest of the backbone (embedding,
shared norms), the refine head, its 6D decoding, and SMPL (blend shapes, kinematic chain, skinning,
the H36M regressor, centring).

* FLOPs: ``torch.utils.flop_counter.FlopCounterMode`` (it counts matrix products and convolutions,
  2 FLOPs per multiply-add; elementwise work counts 0) per module; SMPL is counted on its own call
  of ``posed_mesh_mm``, the input conversion is the remainder.
* onnxruntime's time: its profiler (``enable_profiling``), per node type and per part. A node of the
  optimised graph belongs to the part of the exported node that wrote its output tensor; the
  exporter records each node's module path (``pkg.torch.onnx.name_scopes``), and a node without one
  (written by a graph rewrite) takes the part of the node before it.
* The FLOP floor of a call: its FLOPs / the sgemm rate of a plain 1024 x 1024 float32 product on the
  same threads (``sgemm_gflops``: PyTorch's, timed once before the latencies; ``write_sgemm_onnx``: the
  same product as a one-node ONNX file, timed by onnxruntime in turn with the refiner, so that a host
  whose speed drifts during the run moves the floor and the refiner alike).
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from collections import defaultdict
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import torch

INPUT, SKELETON, HYPER, TEMPORAL, BACKBONE_OTHER = ("input (axis-angle, 2D norm)", "backbone: skeleton attention",
                                                    "backbone: hypergraph", "backbone: temporal", "backbone: other")
HEAD, DECODE_6D, SMPL = "head", "head: 6D decoding", "SMPL LBS + regressors"
PARTS = (INPUT, SKELETON, HYPER, TEMPORAL, BACKBONE_OTHER, HEAD, DECODE_6D, SMPL)
SGEMM_SIZE = 1024
SGEMM_FLOP = 2 * SGEMM_SIZE ** 3  # one product of sgemm_gflops / write_sgemm_onnx


def sgemm_gflops(threads: int, size: int = SGEMM_SIZE, repeats: int = 20) -> float:
    """GFLOP/s of a (size x size) @ (size x size) float32 product in torch on ``threads`` threads (median)."""
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        a, b = torch.rand(size, size), torch.rand(size, size)
        for _ in range(3):
            a @ b
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            a @ b
            times.append(time.perf_counter() - start)
    finally:
        torch.set_num_threads(previous)
    return 2.0 * size ** 3 / float(np.median(times)) / 1e9


def write_sgemm_onnx(path: Path, size: int = SGEMM_SIZE) -> tuple[Path, dict[str, np.ndarray]]:
    """A one-node ONNX file ``y = x @ w`` of (size x size) float32 matrices (``w`` a constant, as a layer's
    weights are) and its feeds: onnxruntime's own sgemm, to time in turn with the refiner (2 size^3 FLOPs)."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    weight = numpy_helper.from_array(rng.random((size, size), dtype=np.float32), "w")
    graph = helper.make_graph([helper.make_node("MatMul", ["x", "w"], ["y"])], "sgemm",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [size, size])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [size, size])], initializer=[weight])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    return path, {"x": rng.random((size, size), dtype=np.float32)}


def _module_part(name: str) -> str | None:
    """The part of a module path of ``MeshRefinerForExport`` (None: not a part of its own)."""
    if ".spatial_layers." in name:
        return SKELETON if name.endswith(".common") else HYPER if name.endswith(".hyper") else None
    if ".temporal_layers." in name:
        return TEMPORAL if name.count(".") == 4 else None  # the block itself, not its children
    return HEAD if name.endswith("model.head") else None


@torch.no_grad()
def flops_per_part(model: torch.nn.Module, inputs: Mapping[str, np.ndarray]) -> dict[str, float]:
    """FLOPs of one forward of ``MeshRefinerForExport(model)`` on ``inputs``, per part (``PARTS``)."""
    from torch.utils.flop_counter import FlopCounterMode

    from lib.body.smpl import posed_mesh_mm
    from lib.model.refiner import EXPORT_INPUT_NAMES, MeshRefinerForExport

    wrapper = MeshRefinerForExport(model.eval())
    args = [torch.from_numpy(inputs[k]) for k in EXPORT_INPUT_NAMES]
    counter = FlopCounterMode(display=False, depth=None)
    with counter:
        rot_mat, shape, _, _ = wrapper(*args)
    counts = {name: float(sum(ops.values())) for name, ops in counter.get_flop_counts().items()}
    smpl = FlopCounterMode(display=False)
    with smpl:
        posed_mesh_mm(model.body_model, rot_mat, shape)
    parts = dict.fromkeys(PARTS, 0.0)
    for name, flops in counts.items():
        part = _module_part(name)
        if part is not None:
            parts[part] += flops
    backbone = next(v for k, v in counts.items() if k.endswith("model.backbone"))
    parts[BACKBONE_OTHER] = backbone - parts[SKELETON] - parts[HYPER] - parts[TEMPORAL]
    parts[SMPL] = float(smpl.get_total_flops())
    parts[INPUT] = counter.get_total_flops() - backbone - parts[HEAD] - parts[SMPL]
    return parts  # 6D decoding is elementwise: 0 counted FLOPs


def _exported_part(metadata: Mapping[str, str], after_head: bool) -> str | None:
    """The part of an exported node from its metadata (None: no module path recorded)."""
    scopes = metadata.get("pkg.torch.onnx.name_scopes")
    if scopes is None:
        return None
    if "rot6d_to_matrix" in metadata.get("pkg.torch.onnx.stack_trace", ""):
        return DECODE_6D
    for marker, part in ((".common", SKELETON), (".hyper", HYPER), ("temporal_layers", TEMPORAL),
                         ("model.backbone", BACKBONE_OTHER), ("model.head", HEAD)):
        if marker in scopes:
            return part
    return SMPL if after_head else INPUT


def tensor_parts(path: str | Path) -> dict[str, str]:
    """{tensor name: part} of every node output of an exported refiner (see the module docstring)."""
    import onnx

    parts: dict[str, str] = {}
    part, after_head = INPUT, False
    for node in onnx.load(str(path), load_external_data=False).graph.node:
        found = _exported_part({p.key: p.value for p in node.metadata_props}, after_head)
        part = found or part
        after_head = after_head or part in (HEAD, DECODE_6D)
        for name in node.output:
            parts[name] = part
    return parts


def ort_profile(path: str | Path, inputs: Mapping[str, np.ndarray], threads: int, runs: int) -> dict[str, Any]:
    """onnxruntime's profiler over ``runs`` calls after one warm-up: ms per call by node type and by part."""
    import onnx
    import onnxruntime as ort

    parts = tensor_parts(path)
    with tempfile.TemporaryDirectory() as tmp:
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.log_severity_level = 3
        options.optimized_model_filepath = os.path.join(tmp, "optimised.onnx")
        options.enable_profiling = True
        options.profile_file_prefix = os.path.join(tmp, "profile")
        session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        optimised = onnx.load(options.optimized_model_filepath, load_external_data=False)
        node_part = {}
        for node in optimised.graph.node:  # a fused node keeps an output (or input) name of the nodes it replaced
            names = [*node.output, *node.input]
            node_part[node.name] = next((parts[n] for n in names if n in parts), INPUT)
        for _ in range(runs + 1):
            session.run(None, dict(inputs))
        events = json.loads(Path(session.end_profiling()).read_text())
    by_op: dict[str, float] = defaultdict(float)
    by_part: dict[str, float] = defaultdict(float)
    runs_us = [e["dur"] for e in events if e.get("name") == "model_run"][1:]
    node_events = [e for e in events if e.get("cat") == "Node" and e["name"].endswith("_kernel_time")]
    for event in node_events[len(node_events) // (runs + 1):]:  # after the warm-up call's events
        name = event["name"][:-len("_kernel_time")]
        by_op[event["args"]["op_name"]] += event["dur"] / 1e3 / runs
        by_part[node_part.get(name, INPUT)] += event["dur"] / 1e3 / runs
    return {"nodes": len(optimised.graph.node), "run_ms": float(np.median(runs_us)) / 1e3 if runs_us else None,
            "kernel_ms": sum(by_op.values()), "by_op_ms": dict(sorted(by_op.items(), key=lambda kv: -kv[1])),
            "by_part_ms": {p: by_part.get(p, 0.0) for p in PARTS}}

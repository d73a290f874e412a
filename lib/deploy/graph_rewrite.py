"""Rewrites of the exported refiner graph that onnxruntime's CPU provider runs faster, same arithmetic.

torch's exporter writes what PyTorch computes; three of its patterns cost onnxruntime copies that the
model does not need (measured by ``python -m benchmarks.bench_speed --parts latency``, which prints
onnxruntime's profile per node type):

* **A linear layer on a 3D or 4D tensor** becomes ``MatMul`` then ``Add`` (a second pass over the
  output for the bias); onnxruntime fuses MatMul + Add into one ``Gemm`` only for 2D inputs.
  ``LinearToGemm`` flattens the leading axes around one ``Gemm`` (the ``Reshape``\\ s are free).
* **Attention** is written with heads split (``lib.model.attention.multi_head_attention``:
  ``Reshape`` (B, L, H, d), ``Transpose`` -> (B, H, L, d), ``Attention``, ``Transpose``, ``Reshape``):
  four transposes per block, each a copy. ONNX ``Attention`` (opset 23) also takes (B, L, C) with
  ``q_num_heads`` / ``kv_num_heads``; ``AttentionTo3D`` gives it that form and drops the transposes.
* **A fused projection split in pieces** (q, k, v from one ``qkv`` layer; k, v in the hypergraph block) is
  ``Gemm``, ``Reshape``, ``Split``: the Split copies every output once more. ``SplitGemm`` gives each
  piece its own ``Gemm`` on the column slice of the weights (same products, same file size).

``rewrite_for_cpu(model)`` applies them to an ``onnx_ir`` model in place and returns how many of each
it rewrote. The graph stays standard ONNX (no onnxruntime-only operators). The parity check of the
export (``lib.deploy.export.verify_onnx``) runs on the rewritten file.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import onnx_ir as ir
from onnxscript.optimizer import optimize
from onnxscript.rewriter import pattern, rewrite

HEAD_TRANSPOSE = (0, 2, 1, 3)  # (B, L, H, d) <-> (B, H, L, d)


def _constant(value: ir.Value | None) -> np.ndarray | None:
    """The value of an initializer or Constant output, else None."""
    if value is None:
        return None
    tensor = value.const_value
    if tensor is None and value.producer() is not None and value.producer().op_type == "Constant":
        tensor = value.producer().attributes["value"].as_tensor()
    return None if tensor is None else tensor.numpy()


def _ints(attr: Any) -> tuple[int, ...] | None:
    return None if attr is None else tuple(attr.as_ints())


class LinearToGemm(pattern.RewriteRuleClassBase):
    """``Add(MatMul(x, W), b)``, x of rank >= 3, W (K, N) and b (N,) constants ->
    ``Reshape(Gemm(Reshape(x, (-1, K)), W, b), shape(x)[:-1] + (N,))``."""

    def pattern(self, op, x, weight, bias):
        return op.Add(op.MatMul(x, weight), bias)

    def check(self, context, x, weight, bias, **_) -> pattern.MatchResult:
        result = pattern.MatchResult()
        w, b = _constant(weight), _constant(bias)
        if w is None or b is None or w.ndim != 2 or b.shape != (w.shape[1],):
            return result.fail("not a linear layer: W (K, N) and b (N,) must be constants")
        if x.shape is None or len(x.shape) < 3:
            return result.fail("input of rank < 3 (onnxruntime fuses 2D itself)")
        return result

    def rewrite(self, op, x, weight, bias, **_):
        k, n = _constant(weight).shape
        flat = op.Reshape(x, op.Constant(value=ir.tensor(np.array([-1, k], dtype=np.int64))))
        lead = op.Shape(x, end=-1)
        shape = op.Concat(lead, op.Constant(value=ir.tensor(np.array([n], dtype=np.int64))), axis=0)
        return op.Reshape(op.Gemm(flat, weight, bias), shape)


class AttentionTo3D(pattern.RewriteRuleClassBase):
    """``Reshape(Transpose(Attention(head(q), head(k), head(v), mask)))`` with
    ``head(x) = Transpose(Reshape(x, (B, L, H, d)), perm=(0, 2, 1, 3))`` -> ``Reshape(Attention(q3, k3,
    v3, mask, q_num_heads=H, kv_num_heads=H))``, x3 = x reshaped to (B, L, H * d)."""

    def __init__(self, masked: bool) -> None:
        super().__init__(f"attention_to_3d_{'masked' if masked else 'plain'}")
        self.masked = masked

    def pattern(self, op, q, k, v, q_shape, k_shape, v_shape, out_shape, mask=None):
        heads = [op.Transpose(op.Reshape(x, s, _allow_other_attributes=True), _outputs=[f"{name}_heads"])
                 for x, s, name in ((q, q_shape, "q"), (k, k_shape, "k"), (v, v_shape, "v"))]
        attention = op.Attention(*heads, *([mask] if self.masked else []), _outputs=["attention"])
        return op.Reshape(op.Transpose(attention, _outputs=["merged"]), out_shape, _allow_other_attributes=True)

    def check(self, context, attention, merged, q_heads, k_heads, v_heads, **_) -> pattern.MatchResult:
        result = pattern.MatchResult()
        for value in (q_heads, k_heads, v_heads, merged):
            if _ints(value.producer().attributes.get("perm")) != HEAD_TRANSPOSE:
                return result.fail("not the head split / merge transpose")
        node = attention.producer()
        if len(node.outputs) > 1 and any(o.uses() for o in node.outputs[1:]):
            return result.fail("Attention's cache outputs are used")
        dims = [h.shape for h in (q_heads, k_heads, v_heads)]
        if any(d is None or len(d) != 4 or not isinstance(d[1], int) or not isinstance(d[3], int) for d in dims):
            return result.fail("heads and head width must be static")
        if len({(d[1], d[3]) for d in dims}) != 1:
            return result.fail("q, k and v differ in heads or width")
        return result

    def rewrite(self, op, q, k, v, q_shape, k_shape, v_shape, out_shape, attention, q_heads, mask=None, **_):
        heads, width = q_heads.shape[1], q_heads.shape[3]
        channels = op.Constant(value=ir.tensor(np.array([heads * width], dtype=np.int64)))
        starts = op.Constant(value=ir.tensor(np.array([0], dtype=np.int64)))
        ends = op.Constant(value=ir.tensor(np.array([2], dtype=np.int64)))
        flat = [op.Reshape(x, op.Concat(op.Slice(s, starts, ends), channels, axis=0))  # (B, L, C)
                for x, s in ((q, q_shape), (k, k_shape), (v, v_shape))]
        attributes = {name: attr for name, attr in attention.producer().attributes.items()}
        out = op.Attention(*flat, *([mask] if self.masked else []), q_num_heads=heads, kv_num_heads=heads,
                           **attributes)
        return op.Reshape(out, out_shape)


class SplitGemm(pattern.RewriteRuleClassBase):
    """``Split(Reshape(Gemm(x, W[, b]), shape), axis=last)`` into ``parts`` equal pieces, W (K, N) and b (N,)
    constants -> one ``Reshape(Gemm(x, W_i[, b_i]), shape[:-1] + (N / parts,))`` per piece: the fused
    q/k/v (and k/v) projections as separate products, without the Split's copy of every output. (A
    bias of zeros, as in an untrained model, is dropped by the exporter: hence the bias-free form.)"""

    def __init__(self, parts: int, biased: bool) -> None:
        super().__init__(f"split_gemm_{parts}_{'biased' if biased else 'unbiased'}")
        self.parts = parts
        self.biased = biased

    def pattern(self, op, x, weight, shape, bias=None):
        product = op.Gemm(x, weight, *([bias] if self.biased else []), _outputs=["product"])
        return op.Split(op.Reshape(product, shape, _outputs=["full"]), _outputs=self.parts, _allow_other_attributes=True)

    def check(self, context, x, weight, shape, product, full, bias=None, **_) -> pattern.MatchResult:
        result = pattern.MatchResult()
        w = _constant(weight)
        b = _constant(bias) if self.biased else np.zeros(w.shape[1:] if w is not None else (0,), np.float32)
        if w is None or b is None or w.ndim != 2 or b.shape != (w.shape[1],) or w.shape[1] % self.parts:
            return result.fail("not a linear layer with constant W (K, N), b (N,), N divisible into the parts")
        gemm = product.producer()
        defaults = {"transA": 0, "transB": 0, "alpha": 1.0, "beta": 1.0}
        if any(gemm.attributes[k].value != v for k, v in defaults.items() if k in gemm.attributes):
            return result.fail("Gemm with transposes or scaling")
        split = full.uses()[0].node if len(full.uses()) == 1 else None
        if split is None or len(product.uses()) != 1:
            return result.fail("the product or its reshape is used elsewhere")
        axis = split.attributes["axis"].value if "axis" in split.attributes else 0
        if full.shape is None or axis not in (-1, len(full.shape) - 1):
            return result.fail("not a split of the last (channel) axis")
        return result

    def rewrite(self, op, x, weight, shape, bias=None, **_):
        w = _constant(weight)
        size = w.shape[1] // self.parts
        lead = op.Slice(shape, op.Constant(value=ir.tensor(np.array([0], dtype=np.int64))),
                        op.Constant(value=ir.tensor(np.array([-1], dtype=np.int64))))
        piece_shape = op.Concat(lead, op.Constant(value=ir.tensor(np.array([size], dtype=np.int64))), axis=0)
        outputs = []
        for i in range(self.parts):
            columns = slice(i * size, (i + 1) * size)
            w_i = op.initializer(ir.tensor(np.ascontiguousarray(w[:, columns])), name=f"{weight.name}_part{i}")
            b_i = ([op.initializer(ir.tensor(np.ascontiguousarray(_constant(bias)[columns])), name=f"{bias.name}_part{i}")]
                   if self.biased else [])
            outputs.append(op.Reshape(op.Gemm(x, w_i, *b_i), piece_shape))
        return tuple(outputs)


def _gemms(model: ir.Model) -> int:
    return sum(node.op_type == "Gemm" for node in model.graph)


def _attention_3d(model: ir.Model) -> int:
    return sum(node.op_type == "Attention" and "q_num_heads" in node.attributes for node in model.graph)


# name -> (rule, counter of the nodes it writes)
RULES = {"linear_to_gemm": ([LinearToGemm.rule()], _gemms),
         "attention_to_3d": ([AttentionTo3D.rule(masked=True), AttentionTo3D.rule(masked=False)], _attention_3d),
         # after linear_to_gemm (it splits the Gemms that rule writes)
         "split_gemm": ([SplitGemm.rule(parts=p, biased=b) for p in (3, 2) for b in (True, False)], _gemms)}


def rewrite_for_cpu(model: ir.Model) -> dict[str, int]:
    """Apply ``RULES`` to ``model`` in place; returns {rule name: number of rewrites}."""
    counts = {}
    for name, (rules, written) in RULES.items():
        before = written(model)
        rewrite(model, pattern.RewriteRuleSet(rules))
        counts[name] = written(model) - before
    # The rewrites add small shape computations; fold the constant ones and merge repeats.
    optimize(model)
    return counts

"""Transformer pieces shared by the backbone: MLP, DropPath, multi-head self-attention, and the
skeleton-biased spatial block and the temporal block.

Tensors keep all their leading axes: attention runs over the second-to-last axis (tokens) of
``(..., L, C)``, so the spatial blocks take ``(N, T, J, C)`` and the temporal blocks ``(N, J, T, C)``
without flattening batch axes. Attention is written by hand (no ``nn.MultiheadAttention``, which
bakes the sequence length into an exported graph), with only the channel axis ever reshaped.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

# LayerNorm epsilon of every block and of the backbone's shared norms (the original's value).
LAYER_NORM_EPS = 1e-6
# Number of trailing axes (tokens, channels) that DropPath keeps together; it drops whole
# residual branches per remaining leading index (a frame in spatial blocks, a joint track in temporal ones).
_TOKEN_AND_CHANNEL_AXES = 2


class Mlp(nn.Module):
    """Linear(dim -> hidden) -> GELU -> Linear(hidden -> dim), on the last axis."""

    def __init__(self, dim: int, hidden_dim: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden_dim)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden_dim, dim)

    def forward(self, x: Tensor) -> Tensor:
        """(..., dim) -> (..., dim)."""
        return self.fc2(self.act(self.fc1(x)))


class DropPath(nn.Module):
    """Stochastic depth: zero a residual branch for a random subset of samples while training.

    A "sample" is one index of the leading axes of ``(..., L, C)``; kept branches are scaled by
    1 / keep_prob so the expectation is unchanged. Identity in eval mode or with ``drop_prob`` 0.
    """

    def __init__(self, drop_prob: float) -> None:
        super().__init__()
        if not 0.0 <= drop_prob < 1.0:
            raise ValueError(f"DropPath drop_prob = {drop_prob}; expected a probability in [0, 1)")
        self.drop_prob = drop_prob

    def forward(self, x: Tensor) -> Tensor:
        """(..., L, C) -> (..., L, C)."""
        if self.drop_prob == 0.0 or not self.training:
            return x
        keep = 1.0 - self.drop_prob
        mask_shape = x.shape[:-_TOKEN_AND_CHANNEL_AXES] + (1,) * _TOKEN_AND_CHANNEL_AXES
        mask = torch.empty(mask_shape, dtype=x.dtype, device=x.device).bernoulli_(keep)
        return x * mask / keep

    def extra_repr(self) -> str:
        return f"drop_prob={self.drop_prob:.3f}"


def split_heads(x: Tensor, num_heads: int) -> Tensor:
    """Split channels into heads: (..., L, C) -> (..., H, L, C / H)."""
    return x.unflatten(-1, (num_heads, -1)).transpose(-3, -2)  # (..., L, H, d) -> (..., H, L, d)


def merge_heads(x: Tensor) -> Tensor:
    """Inverse of ``split_heads``: (..., H, L, d) -> (..., L, H * d)."""
    return x.transpose(-3, -2).flatten(-2)  # (..., L, H, d) -> (..., L, C)


def multi_head_attention(q: Tensor, k: Tensor, v: Tensor, num_heads: int, scale: float,
                         logit_bias: Tensor | None = None) -> Tensor:
    """``softmax((q k^T + logit_bias) * scale) v`` per head, heads split over channels.

    One call of ``F.scaled_dot_product_attention`` on the leading axes flattened into one batch axis:
    eager PyTorch runs its fused CPU kernel, and the exporter writes one ONNX ``Attention`` node
    (opset 23) instead of two batched products, a softmax and their reshapes.

    Args:
        q, k, v: (..., L, C) queries, keys, values (same leading axes).
        num_heads: H; C must be divisible by it.
        scale: multiplies the logits (1 / sqrt(C / H) for the usual attention).
        logit_bias: additive logit bias before the scaling, broadcastable to (B, H, L, L) with B the
            product of the leading axes: (H, L, L) for all, or (B, H, 1, L) per key (expanded over the
            queries here, after the scaling).
    Returns:
        (..., L, C), heads merged back.
    """
    lead = q.shape[:-2]
    # (B, L, C) -> (B, H, L, d): the layout of ONNX Attention's 3D form, which
    # lib.deploy.graph_rewrite restores in the exported graph (no head transposes there).
    heads = [split_heads(t.flatten(0, -3), num_heads) for t in (q, k, v)]  # 3 x (B, H, L, d)
    mask = None if logit_bias is None else logit_bias * scale  # sdpa adds the mask after its scaling
    if mask is not None and mask.shape[-2] == 1:  # per key only: the query axis written out after the
        mask = mask.expand(*mask.shape[:-2], q.shape[-2], mask.shape[-1])  # scaling (onnxruntime's Attention does not broadcast it)
    out = F.scaled_dot_product_attention(*heads, attn_mask=mask, scale=scale)  # (B, H, L, d)
    return merge_heads(out).unflatten(0, lead)  # (B, L, C) -> (..., L, C)


class SelfAttention(nn.Module):
    """Multi-head self-attention over the tokens of ``(..., L, C)``, heads split over channels.

    ``logits = (q k^T + logit_bias) / sqrt(d)``; an optional additive ``logit_bias`` broadcastable to
    ``(..., H, L, L)`` is added before the scaling (the original's order).
    """

    def __init__(self, dim: int, num_heads: int, qkv_bias: bool = True) -> None:
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"attention dim {dim} is not divisible by num_heads {num_heads}")
        self.num_heads = num_heads
        self.scale = 1.0 / math.sqrt(dim // num_heads)
        self.qkv = nn.Linear(dim, 3 * dim, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: Tensor, logit_bias: Tensor | None = None) -> Tensor:
        """(..., L, C) -> (..., L, C)."""
        q, k, v = self.qkv(x).chunk(3, dim=-1)  # 3 x (..., L, C)
        return self.proj(multi_head_attention(q, k, v, self.num_heads, self.scale, logit_bias))


class SkeletonAttention(SelfAttention):
    """Spatial self-attention over joints with a learnable per-head joint-to-joint bias.

    ``logits = (q k^T + alpha * B) / sqrt(d)`` with ``B`` (H, J, J) initialised, in every head, to
    ``bias_init`` (the normalised skeleton adjacency, or the identity) and ``alpha`` a learnable
    scalar initialised to 1. Without ``use_bias`` (``--no-j2j_adjacency``: alpha frozen at 0) neither
    parameter exists and this is plain self-attention.
    """

    def __init__(self, dim: int, num_heads: int, bias_init: Tensor, use_bias: bool = True) -> None:
        super().__init__(dim, num_heads)
        self.use_bias = use_bias
        if use_bias:
            self.skeleton_bias = nn.Parameter(bias_init.detach().clone().expand(num_heads, -1, -1).contiguous())
            self.alpha = nn.Parameter(torch.ones(()))

    def forward(self, x: Tensor, logit_bias: Tensor | None = None) -> Tensor:
        """(..., J, C) -> (..., J, C)."""
        if self.use_bias:
            return super().forward(x, self.alpha * self.skeleton_bias)
        return super().forward(x)


class PreNormBlock(nn.Module):
    """Pre-norm transformer block around any attention over the token axis of ``(..., L, C)``.

    ``x = x + DropPath(Attn(LN1 x)); x = x + DropPath(MLP(LN2 x))``; no dropout (the original's
    reuse of the drop-path rate as dropout is not copied).
    """

    def __init__(self, dim: int, attn: nn.Module, mlp_ratio: float, drop_path: float) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=LAYER_NORM_EPS)
        self.attn = attn
        self.norm2 = nn.LayerNorm(dim, eps=LAYER_NORM_EPS)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))
        self.drop_path = DropPath(drop_path)

    def forward(self, x: Tensor) -> Tensor:
        """(..., L, C) -> (..., L, C)."""
        x = x + self.drop_path(self.attn(self.norm1(x)))
        return x + self.drop_path(self.mlp(self.norm2(x)))


class SkeletonBlock(PreNormBlock):
    """Block over the joints of each frame, (N, T, J, C), with the skeleton-biased attention."""

    def __init__(self, dim: int, num_heads: int, mlp_ratio: float, drop_path: float,
                 bias_init: Tensor, use_bias: bool = True) -> None:
        super().__init__(dim, SkeletonAttention(dim, num_heads, bias_init, use_bias), mlp_ratio, drop_path)


class TemporalBlock(PreNormBlock):
    """Block over the frames of each joint track, (N, J, T, C) (full, non-causal attention)."""

    def __init__(self, dim: int, num_heads: int, mlp_ratio: float, drop_path: float) -> None:
        super().__init__(dim, SelfAttention(dim, num_heads), mlp_ratio, drop_path)

"""The hypergraph block: hyperedge features from a hard joint partition and hypergraph attention.

A partition assigns each of the J joints to one of E hyperedges. A hyperedge's feature is the mean
of its member joints' features, projected by a bias-free Linear, and every joint receives its own
hyperedge's feature. Hypergraph attention then runs over the J joint tokens (heads split over
channels, one token per joint: the original's channel/joint reshape mix-up, reference section 10.8,
is not copied) with logits combining three terms::

    logits[i, u] = ( q_i . k_u                 joint-to-joint, always
                   + q_i . e_u                 joint-to-hyperedge, if j2e_main
                   + w1 . e_u ) / sqrt(d)      hyperedge bias, if j2e_bias

where e_u is the feature of joint u's hyperedge; values come from a key/value projection of each
joint. Several partitions each get their own hyperedges and attention; their outputs are merged by
mean, max or a learnable softmax-weighted mean.

Everything is matmuls with the fixed (J, E) membership matrix: no boolean masks or data-dependent
control flow, so the block exports to ONNX with dynamic batch and clip length.
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from lib.errors import CheckpointError
from lib.model.attention import LAYER_NORM_EPS, DropPath, Mlp, multi_head_attention

MERGE_MODES = ("none", "mean", "max", "weight_mean")
# Standard deviation of the truncated-normal init of the hypergraph attention's Linear weights (original).
_ATTN_INIT_STD = 0.02


def membership_matrix(joint_label: tuple[int, ...]) -> Tensor:
    """One-hot hyperedge membership of each joint.

    Args:
        joint_label: (J,) hyperedge id 0..E-1 of each joint.
    Returns:
        (J, E) float32 with ``H[v, e] = 1`` iff joint v belongs to hyperedge e; E = max(label) + 1.
    """
    labels = torch.tensor(joint_label, dtype=torch.long)
    return F.one_hot(labels, num_classes=int(labels.max()) + 1).float()


class HyperEdge(nn.Module):
    """Hyperedge features of one partition: member mean -> Linear (no bias) -> back to each joint.

    The membership matrix is a persistent buffer (not a parameter), so a checkpoint records its
    partition; loading a state dict with another partition raises ``CheckpointError``.
    """

    def __init__(self, dim: int, joint_label: tuple[int, ...]) -> None:
        super().__init__()
        self.joint_label = tuple(joint_label)
        self.register_buffer("membership", membership_matrix(self.joint_label))  # (J, E)
        # Each joint's hyperedge id, to gather its hyperedge's feature (not saved: the membership is).
        self.register_buffer("edge_of_joint", torch.tensor(self.joint_label, dtype=torch.long), persistent=False)  # (J,)
        self.proj = nn.Linear(dim, dim, bias=False)

    @property
    def num_edges(self) -> int:
        return self.membership.shape[1]

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """Hyperedge features.

        Args:
            x: (..., J, C) joint features.
        Returns:
            edge: (..., E, C) projected mean of each hyperedge's member joints.
            joint: (..., J, C) the feature of each joint's hyperedge.
        """
        mean_weights = self.membership / self.membership.sum(dim=0, keepdim=True)  # (J, E), columns sum to 1
        edge = self.proj(mean_weights.transpose(0, 1) @ x)  # (E, J) @ (..., J, C) -> (..., E, C)
        return edge, edge.index_select(-2, self.edge_of_joint)  # (..., J, C): = membership @ edge, without a product

    def _load_from_state_dict(self, state_dict: dict[str, Any], prefix: str, *args: Any, **kwargs: Any) -> None:
        key = prefix + "membership"
        saved = state_dict.get(key)
        if saved is not None and (saved.shape != self.membership.shape
                                  or not torch.equal(saved.to(self.membership), self.membership)):
            saved_labels = saved.argmax(dim=-1).tolist() if saved.dim() == 2 else list(saved.shape)
            raise CheckpointError(f"checkpoint key '{key}': hyperedge partition {saved_labels} differs from the "
                                  f"model's {list(self.joint_label)}; use the hyper config the checkpoint was "
                                  "trained with (--hyper_cfg)")
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def extra_repr(self) -> str:
        return f"joint_label={list(self.joint_label)}, num_edges={self.num_edges}"


class HyperAttention(nn.Module):
    """Multi-head attention over joint tokens with joint-to-hyperedge terms (see the module docstring)."""

    def __init__(self, dim: int, num_heads: int, j2e_main: bool = True, j2e_bias: bool = True) -> None:
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"attention dim {dim} is not divisible by num_heads {num_heads}")
        self.num_heads = num_heads
        head_dim = dim // num_heads
        self.scale = 1.0 / math.sqrt(head_dim)
        self.j2e_main = j2e_main
        self.j2e_bias = j2e_bias
        self.q = nn.Linear(dim, dim)
        self.kv = nn.Linear(dim, 2 * dim)
        self.proj = nn.Linear(dim, dim)
        for layer in (self.q, self.kv, self.proj):
            nn.init.trunc_normal_(layer.weight, std=_ATTN_INIT_STD)
            nn.init.zeros_(layer.bias)
        if j2e_bias:
            self.w1 = nn.Parameter(torch.zeros(num_heads, head_dim))

    def forward(self, x: Tensor, edge: Tensor) -> Tensor:
        """Attention of normalised joint features ``x`` given each joint's hyperedge feature ``edge``.

        Args:
            x: (..., J, C).
            edge: (..., J, C) hyperedge feature of each joint (``HyperEdge(...)[1]``).
        Returns:
            (..., J, C).
        """
        k, v = self.kv(x).chunk(2, dim=-1)  # 2 x (..., J, C)
        # q . k_u + q . e_u = q . (k_u + e_u): the joint-to-hyperedge term is the same attention with
        # the hyperedge features added to the keys (one product instead of two).
        keys = k + edge if self.j2e_main else k
        key_bias = None
        if self.j2e_bias:  # w1 . e_u: one logit per key joint and head, the same for every query
            # One product with the block-diagonal (C, H) matrix of w1 (column h holds w1[h] in head h's
            # channels) instead of splitting the edge features into heads.
            eye = torch.eye(self.num_heads, dtype=self.w1.dtype, device=self.w1.device)
            w_block = (self.w1.unsqueeze(-1) * eye.unsqueeze(1)).flatten(0, 1)  # (H, d, H) -> (C, H)
            key_bias = (edge @ w_block).transpose(-2, -1).unsqueeze(-2).flatten(0, -4)  # (..., J, H) -> (B, H, 1, J)
        return self.proj(multi_head_attention(self.q(x), keys, v, self.num_heads, self.scale, key_bias))

    def extra_repr(self) -> str:
        return f"num_heads={self.num_heads}, j2e_main={self.j2e_main}, j2e_bias={self.j2e_bias}"


class HyperBlock(nn.Module):
    """Pre-norm residual hypergraph block over the joints of each frame.

    ``x = x + DropPath(merge_p HyperAttn_p(LN1 x, HyperEdge_p(x)))``, then
    ``x = x + DropPath(MLP(LN2 x))``. As in the original, hyperedge features are taken from the block
    input before the LayerNorm.
    """

    def __init__(self, dim: int, num_heads: int, mlp_ratio: float, drop_path: float,
                 partitions: tuple[tuple[int, ...], ...], merge_mode: str,
                 j2e_main: bool = True, j2e_bias: bool = True) -> None:
        super().__init__()
        if not partitions:
            raise ValueError("HyperBlock needs at least one joint partition")
        if merge_mode not in MERGE_MODES:
            raise ValueError(f"merge_mode {merge_mode!r}; allowed: {list(MERGE_MODES)}")
        if merge_mode == "none" and len(partitions) > 1:
            raise ValueError(f"merge_mode 'none' with {len(partitions)} partitions; use mean, max or weight_mean")
        self.merge_mode = merge_mode
        self.hyper_edges = nn.ModuleList(HyperEdge(dim, labels) for labels in partitions)
        self.norm1 = nn.LayerNorm(dim, eps=LAYER_NORM_EPS)
        self.attns = nn.ModuleList(HyperAttention(dim, num_heads, j2e_main, j2e_bias) for _ in partitions)
        if merge_mode == "weight_mean" and len(partitions) > 1:  # one partition needs no merge weights
            self.merge_weight = nn.Parameter(torch.zeros(len(partitions)))  # softmax -> uniform at init
        self.norm2 = nn.LayerNorm(dim, eps=LAYER_NORM_EPS)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))
        self.drop_path = DropPath(drop_path)

    def _merge(self, outs: list[Tensor]) -> Tensor:
        """Merge per-partition outputs, each (..., J, C), into one (..., J, C)."""
        if len(outs) == 1:
            return outs[0]
        stacked = torch.stack(outs, dim=0)  # (P, ..., J, C)
        if self.merge_mode == "mean":
            return stacked.mean(dim=0)
        if self.merge_mode == "max":
            return stacked.amax(dim=0)
        weights = self.merge_weight.softmax(dim=0).reshape((-1,) + (1,) * outs[0].dim())  # (P, 1, ..., 1)
        return (weights * stacked).sum(dim=0)

    def forward(self, x: Tensor) -> Tensor:
        """(N, T, J, C) -> (N, T, J, C)."""
        normed = self.norm1(x)
        outs = [attn(normed, edge(x)[1]) for edge, attn in zip(self.hyper_edges, self.attns)]
        x = x + self.drop_path(self._merge(outs))
        return x + self.drop_path(self.mlp(self.norm2(x)))

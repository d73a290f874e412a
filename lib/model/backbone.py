"""The spatio-temporal backbone: H36M-17 2D keypoints over a clip -> per-joint, per-frame features.

Per layer i (of ``depth``)::

    spatial:  [skeleton-biased joint attention]  ->  [hypergraph block]  ->  shared spatial LayerNorm
    temporal: (+ temporal position embedding, layer 0 only) -> frame attention per joint -> shared temporal LayerNorm

``version 2`` with ``spatial_mode`` ``hyper_dependent_common`` uses both spatial blocks (the
original EHGFormer layer, with the fixes of reference section 10); ``common`` (and ``version 1``,
the ablation baseline) only the skeleton-biased attention; ``hyper`` only the hypergraph block.
Drop-path rates grow linearly from 0 to ``drop_path_max`` over the layers; there is no other dropout.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from lib.body.joint_names import H36M_NUM_JOINTS
from lib.config.options import RELATION_BIASES
from lib.model.attention import LAYER_NORM_EPS, SkeletonBlock, TemporalBlock
from lib.model.graph import normalized_adjacency
from lib.model.hypergraph import HyperBlock

# Stochastic depth of the last layer (the original's drop_path_rate); layer i gets linspace(0, max, depth)[i].
DROP_PATH_MAX = 0.1
INPUT_NORMS = ("canvas", "clip")
# Floors of the clip normalisation's weight sum and scale (normalised-canvas units, a person spans ~0.1-1).
_CLIP_WEIGHT_EPS = 1e-6
_CLIP_SCALE_EPS = 1e-3


def clip_centered_2d(x: Tensor) -> Tensor:
    """Re-express 2D keypoints in the clip's own frame: (N, T, J, C) -> (N, T, J, C).

    x, y lose the clip's confidence-weighted centroid and are divided by the clip's confidence-weighted
    RMS distance to it (one translation and one scale per clip, over all its frames and joints, so the
    motion inside the clip is kept); a confidence channel (C = 3) passes unchanged and weights both
    statistics (C = 2: all joints weigh 1). The result no longer depends on where the person stands in
    the image, on the canvas the pixels were normalised with (a 1080 x 1920 portrait frame on a
    1920 x 1920 canvas, a COCO image of any size) or on the distance to the camera. A joint of
    confidence 0 (not detected) is put at the centroid: its coordinates carry nothing (C = 3 only).
    """
    xy = x[..., :2]  # (N, T, J, 2)
    weight = x[..., 2:3].clamp_min(0.0) if x.shape[-1] > 2 else torch.ones_like(x[..., :1])  # (N, T, J, 1)
    total = weight.sum(dim=(1, 2), keepdim=True).clamp_min(_CLIP_WEIGHT_EPS)  # (N, 1, 1, 1)
    centre = (weight * xy).sum(dim=(1, 2), keepdim=True) / total  # (N, 1, 1, 2)
    offset = (xy - centre) * (weight > 0)  # a joint without a detection (confidence 0) sits at the centre
    spread = ((weight * offset.square()).sum(dim=(1, 2, 3), keepdim=True) / total).sqrt()  # (N, 1, 1, 1)
    return torch.cat([offset / spread.clamp_min(_CLIP_SCALE_EPS), x[..., 2:]], dim=-1)


def relation_bias_init(kind: str, num_joints: int = H36M_NUM_JOINTS) -> Tensor:
    """Initial joint-to-joint attention bias: the normalised skeleton adjacency, or the identity.

    Returns:
        (J, J) float32.
    """
    if kind == "uniform":
        return normalized_adjacency(num_joints)
    if kind == "none":
        return torch.eye(num_joints)
    raise ValueError(f"relation bias {kind!r}; allowed: {list(RELATION_BIASES)}")


class SpatialLayer(nn.Module):
    """The spatial part of one backbone layer: ``hyper(common(x))``; an absent block is an Identity."""

    def __init__(self, common: nn.Module | None, hyper: nn.Module | None) -> None:
        super().__init__()
        self.common = common if common is not None else nn.Identity()
        self.hyper = hyper if hyper is not None else nn.Identity()

    def forward(self, x: Tensor) -> Tensor:
        """(N, T, J, C) -> (N, T, J, C)."""
        return self.hyper(self.common(x))


class Backbone(nn.Module):
    """Spatio-temporal transformer with optional hypergraph blocks.

    Args:
        in_channels: input channels per joint: 3 for (x, y, confidence), 2 for (x, y) with ``no_conf``.
        dim: feature width C (``dim_rep``).
        depth: number of (spatial, temporal) layers.
        num_heads: attention heads of every block.
        mlp_ratio: MLP hidden width / C.
        maxlen: longest clip; length of the temporal position embedding.
        num_joints: J (17, H36M).
        use_common: include the skeleton-biased spatial attention block in every layer.
        relation_bias: ``uniform`` (normalised skeleton adjacency) or ``none`` (identity) initial bias.
        j2j_adjacency: learn the joint-to-joint bias and its scale alpha (else there is no bias).
        partitions: joint partitions of the hypergraph block; empty = no hypergraph block.
        merge_mode: how several partitions are merged (``none``, ``mean``, ``max``, ``weight_mean``).
        j2e_main: joint-to-hyperedge logits in the hypergraph attention.
        j2e_bias: hyperedge bias logits in the hypergraph attention.
        drop_path_max: drop-path rate of the last layer.
        input_norm: ``canvas`` (the 2D as given, normalised on the image canvas, the original) or
            ``clip`` (first re-expressed by ``clip_centered_2d``).
        extra_channels: channels per joint appended after the 2D (``lib.model.evidence``), used as given.
    """

    def __init__(self, *, in_channels: int, dim: int, depth: int, num_heads: int, mlp_ratio: float, maxlen: int,
                 num_joints: int = H36M_NUM_JOINTS, use_common: bool = True, relation_bias: str = "uniform",
                 j2j_adjacency: bool = True, partitions: tuple[tuple[int, ...], ...] = (),
                 merge_mode: str = "none", j2e_main: bool = True, j2e_bias: bool = True,
                 drop_path_max: float = DROP_PATH_MAX, input_norm: str = "canvas", extra_channels: int = 0) -> None:
        super().__init__()
        if input_norm not in INPUT_NORMS:
            raise ValueError(f"input_norm must be one of {INPUT_NORMS}, got {input_norm!r}")
        self.input_norm = input_norm
        if not use_common and not partitions:
            raise ValueError("the backbone needs a spatial block: use_common or at least one hypergraph partition")
        self.in_channels = in_channels
        self.extra_channels = extra_channels
        self.num_joints = num_joints
        self.maxlen = maxlen
        bias_init = relation_bias_init(relation_bias, num_joints)
        drop_paths = torch.linspace(0.0, drop_path_max, depth).tolist()

        self.joint_embed = nn.Linear(in_channels + extra_channels, dim)
        self.spatial_pos = nn.Parameter(torch.zeros(num_joints, dim))
        self.temporal_pos = nn.Parameter(torch.zeros(maxlen, dim))
        self.spatial_layers = nn.ModuleList(
            SpatialLayer(
                SkeletonBlock(dim, num_heads, mlp_ratio, dp, bias_init, j2j_adjacency) if use_common else None,
                HyperBlock(dim, num_heads, mlp_ratio, dp, partitions, merge_mode, j2e_main, j2e_bias)
                if partitions else None,
            )
            for dp in drop_paths
        )
        self.temporal_layers = nn.ModuleList(TemporalBlock(dim, num_heads, mlp_ratio, dp) for dp in drop_paths)
        self.spatial_norm = nn.LayerNorm(dim, eps=LAYER_NORM_EPS)
        self.temporal_norm = nn.LayerNorm(dim, eps=LAYER_NORM_EPS)

    def forward(self, x: Tensor) -> Tensor:
        """Features of a batch of clips.

        Args:
            x: (N, T, J, in_channels + extra_channels) normalised 2D keypoints (x, y[, confidence]),
                then the extra channels; T <= maxlen.
        Returns:
            (N, T, J, dim).
        Raises:
            ValueError: wrong joint or channel count, or T > maxlen.
        """
        if x.shape[-2] != self.num_joints or x.shape[-1] != self.in_channels + self.extra_channels:
            raise ValueError(f"backbone input has shape {tuple(x.shape)}; expected (N, T, {self.num_joints}, "
                             f"{self.in_channels + self.extra_channels}) (3 channels x, y, confidence; 2 with "
                             f"no_conf; then {self.extra_channels} extra)")
        num_frames = x.shape[1]
        if num_frames > self.maxlen:
            raise ValueError(f"clip of {num_frames} frames exceeds maxlen = {self.maxlen}; "
                             "shorten the clip or raise maxlen in the task config")
        if self.input_norm == "clip":
            x = torch.cat([clip_centered_2d(x[..., :self.in_channels]), x[..., self.in_channels:]], dim=-1)
        h = self.joint_embed(x) + self.spatial_pos  # (N, T, J, C)
        for i, (spatial, temporal) in enumerate(zip(self.spatial_layers, self.temporal_layers)):
            h = self.spatial_norm(spatial(h))
            h = h.transpose(1, 2)  # (N, J, T, C): attention over frames
            if i == 0:
                h = h + self.temporal_pos[:num_frames]
            h = self.temporal_norm(temporal(h)).transpose(1, 2)  # (N, T, J, C)
        return h

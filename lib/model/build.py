"""The one model builder used by training, evaluation and export.

``build_model(task_cfg, hyper_cfg, options)`` maps the task config (sizes), the hypergraph config
(partitions, spatial mode, merge mode) and the command-line model switches (``ModelOptions``; the
entry scripts map ``--version``, ``--hyper_relation_bias``, ``--j2e`` ... onto it) to a
``MeshRefiner``. Nothing here parses the command line.
"""

from __future__ import annotations

import dataclasses
import logging
from typing import Any

from torch import nn

from lib.body.smpl import BodyModel
from lib.config.hyper import HyperConfig
from lib.config.options import ModelOptions
from lib.config.task import TaskConfig
from lib.errors import ConfigError
from lib.model.backbone import Backbone
from lib.model.evidence import EVIDENCE_CHANNELS
from lib.model.head import RefineHead
from lib.model.refiner import MeshRefiner

log = logging.getLogger(__name__)

INPUT_CHANNELS_WITH_CONF = 3  # x, y, confidence
INPUT_CHANNELS_NO_CONF = 2  # x, y




def input_channels(task_cfg: TaskConfig) -> int:
    """Channels of the 2D input: (x, y, confidence), or (x, y) with ``no_conf``."""
    return INPUT_CHANNELS_NO_CONF if task_cfg.no_conf else INPUT_CHANNELS_WITH_CONF


def build_backbone(task_cfg: TaskConfig, hyper_cfg: HyperConfig | None, options: ModelOptions) -> Backbone:
    """The backbone described by the configs (see ``build_model``)."""
    use_common, partitions, merge_mode = True, (), "none"
    if options.version == 1:
        if hyper_cfg is not None:
            log.info("%s: hyper config read and validated but unused with --version 1 (no hypergraph blocks)",
                     hyper_cfg.source)
    else:
        if hyper_cfg is None:
            raise ConfigError("--version 2 needs a hypergraph config: pass --hyper_cfg "
                              "hyper_config/method2/manual_joint_label1.yaml (or use --version 1)")
        use_common = hyper_cfg.spatial_mode in ("common", "hyper_dependent_common")
        use_hyper = hyper_cfg.spatial_mode in ("hyper", "hyper_dependent_common") and options.j2e
        if hyper_cfg.spatial_mode == "hyper" and not options.j2e:
            raise ConfigError(f"{hyper_cfg.source}: key 'spatial_mode' = 'hyper' with --no-j2e leaves no spatial "
                              "block; use --j2e or spatial_mode hyper_dependent_common / common")
        if use_hyper:
            partitions, merge_mode = hyper_cfg.joint_label, hyper_cfg.hyper_multi_merge_mode
    return Backbone(
        in_channels=input_channels(task_cfg), dim=task_cfg.dim_rep, depth=task_cfg.depth,
        num_heads=task_cfg.num_heads, mlp_ratio=task_cfg.mlp_ratio, maxlen=task_cfg.maxlen,
        num_joints=task_cfg.num_joints, use_common=use_common, relation_bias=options.hyper_relation_bias,
        j2j_adjacency=options.j2j_adjacency, partitions=partitions, merge_mode=merge_mode,
        j2e_main=options.j2e_main, j2e_bias=options.j2e_bias, input_norm=task_cfg.input_norm,
        extra_channels=EVIDENCE_CHANNELS if task_cfg.input_hybrik else 0,
    )


def build_model(task_cfg: TaskConfig, hyper_cfg: HyperConfig | None, options: ModelOptions) -> MeshRefiner:
    """Build the refiner: backbone (``model.backbone.*``), head (``model.head.*``), SMPL (no parameters).

    Args:
        task_cfg: sizes (dim_rep, depth, num_heads, mlp_ratio, maxlen, hidden_dim, dropout, no_conf,
            refine_shape, smooth_kernel, smooth_adaptive, clip_shape, head_norm, input_norm) and ``data_root``
            (SMPL model and regressors).
        hyper_cfg: the hypergraph config; required with version 2, ignored (reported) with version 1.
        options: the command-line model switches.
    Raises:
        ConfigError: inconsistent options (version 2 without a hyper config, spatial_mode hyper without j2e).
        AssetError: SMPL files missing under ``data_root`` (from ``BodyModel``).
    """
    backbone = build_backbone(task_cfg, hyper_cfg, options)
    head = RefineHead(num_joints=task_cfg.num_joints, dim_rep=task_cfg.dim_rep, hidden_dim=task_cfg.hidden_dim,
                      dropout=task_cfg.dropout, refine_shape=task_cfg.refine_shape,
                      smooth_kernel=task_cfg.smooth_kernel, clip_shape=task_cfg.clip_shape,
                      norm=task_cfg.head_norm, smooth_adaptive=task_cfg.smooth_adaptive)
    model = MeshRefiner(backbone, head, BodyModel(task_cfg.data_root))
    log.info("Trainable parameter count: %d (%.6f Million; backbone %d, head %d)",
             count_trainable_parameters(model), count_trainable_parameters(model) / 1e6,
             count_trainable_parameters(backbone), count_trainable_parameters(head))
    return model


def count_trainable_parameters(model: nn.Module) -> int:
    """Number of scalar parameters with ``requires_grad``."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)

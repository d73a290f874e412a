"""Command-line flags shared by the entry scripts (train_mesh_refine.py, deployment/*.py).

Only builds parsers and maps parsed flags to typed objects; nothing here runs at import time.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from lib.config.options import (DEFAULT_RELATION_BIAS, DEFAULT_VERSION, RELATION_BIASES, VERSIONS,
                                ModelOptions)
from lib.errors import ConfigError


def add_model_arguments(parser: argparse.ArgumentParser) -> None:
    """Flags that define the model: task config, hyper config, version, relation bias, ablations."""
    parser.add_argument("--config", type=Path, required=True,
                        help="task YAML, e.g. configs/mesh/train_pw3d.yaml (data, schedule, model sizes, loss weights)")
    parser.add_argument("--hyper_cfg", type=Path, default=None,
                        help="hypergraph YAML, e.g. hyper_config/method2/manual_joint_label1.yaml "
                             "(required with --version 2; read, validated and reported unused with --version 1)")
    parser.add_argument("--hyper_relation_bias", choices=RELATION_BIASES, default=DEFAULT_RELATION_BIAS,
                        help="initial joint-to-joint attention bias: 'uniform' = normalised H36M adjacency, "
                             f"'none' = identity (default: {DEFAULT_RELATION_BIAS}, as the original)")
    parser.add_argument("--version", type=int, choices=VERSIONS, default=DEFAULT_VERSION,
                        help="backbone: 2 = spatial + hypergraph + temporal attention, "
                             "1 = the same without the hypergraph block (ablation baseline). Default 2")
    ablations = parser.add_argument_group("ablation switches (version 2; --no-X turns one off)")
    ablations.add_argument("--j2e", action=argparse.BooleanOptionalAction, default=True,
                           help="include the hypergraph (joint-to-hyperedge) block")
    ablations.add_argument("--j2e_main", action=argparse.BooleanOptionalAction, default=True,
                           help="use the query . hyperedge-key attention term")
    ablations.add_argument("--j2e_bias", action=argparse.BooleanOptionalAction, default=True,
                           help="use the learned hyperedge bias term")
    ablations.add_argument("--j2j_adjacency", action=argparse.BooleanOptionalAction, default=True,
                           help="learnable weight of the skeleton bias (off: the bias weight is fixed at 0)")


def model_options_from_args(args: argparse.Namespace) -> ModelOptions:
    """``ModelOptions`` from parsed flags (the only place flags become model options)."""
    return ModelOptions(version=args.version, hyper_relation_bias=args.hyper_relation_bias, j2e=args.j2e,
                        j2e_main=args.j2e_main, j2e_bias=args.j2e_bias, j2j_adjacency=args.j2j_adjacency)


def load_configs(args: argparse.Namespace):
    """(task config, hyper config or None, model options) from parsed flags, validated together.

    Raises:
        ConfigError: any invalid file or key, or --version 2 without --hyper_cfg.
    """
    from lib.config.hyper import load_hyper_config
    from lib.config.task import load_task_config

    task_cfg = load_task_config(args.config)
    hyper_cfg = load_hyper_config(args.hyper_cfg) if args.hyper_cfg is not None else None
    if args.version == 2 and hyper_cfg is None:
        raise ConfigError("--version 2 needs --hyper_cfg (e.g. hyper_config/method2/manual_joint_label1.yaml); "
                          "use --version 1 for the backbone without the hypergraph block")
    return task_cfg, hyper_cfg, model_options_from_args(args)

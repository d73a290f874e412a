"""Rebuilding the refiner from a checkpoint for deployment (export, infer_mesh).

Two ways in:
* ``load_refiner(path, task_cfg, hyper_cfg, options)``: the seed's way (``--config --hyper_cfg
  --version ... --evaluate CKPT``): the model comes from the flags and the checkpoint must fit it
  (its signature is checked, then a strict load);
* ``configs_from_checkpoint(ckpt, path)``: the checkpoint is self-describing (task config, hyper
  config and model options are stored in it), so ``infer_mesh.py`` needs only the file.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Mapping

import torch

from lib.config.hyper import HyperConfig, parse_hyper_config
from lib.config.options import ModelOptions
from lib.config.task import TaskConfig, parse_task_config
from lib.errors import CheckpointError, ConfigError
from lib.model.build import build_model
from lib.model.checkpoint import check_compatible, load_model_state, model_signature, read_checkpoint
from lib.model.refiner import MeshRefiner

log = logging.getLogger(__name__)


def configs_from_checkpoint(ckpt: Mapping[str, Any], path: str | Path, data_root: str | Path | None = None
                            ) -> tuple[TaskConfig, HyperConfig | None, ModelOptions]:
    """The configs stored in a checkpoint written by this project.

    Args:
        ckpt: a dict from ``read_checkpoint``.
        path: its file (named in errors).
        data_root: replaces the stored ``data_root`` (where the SMPL model and regressors are).
    Raises:
        CheckpointError: a checkpoint without stored configs (not written by this project) or invalid ones.
    """
    missing = [k for k in ("task_config", "model_options") if not ckpt.get(k)]
    if missing:
        raise CheckpointError(f"{path}: lacks {missing}; it was not written by train_mesh_refine.py. Export it with "
                              "deployment/deployment_mesh.py --config ... --evaluate CKPT and use --onnx instead")
    raw_task = dict(ckpt["task_config"])
    if data_root is not None:
        raw_task["data_root"] = str(data_root)
    try:
        task_cfg = parse_task_config(raw_task, source=f"{path} (task_config)")
        hyper_raw = ckpt.get("hyper_config")
        hyper_cfg = parse_hyper_config(dict(hyper_raw), source=f"{path} (hyper_config)") if hyper_raw else None
        options = ModelOptions(**dict(ckpt["model_options"]))
    except (ConfigError, TypeError) as exc:
        raise CheckpointError(f"{path}: stored configs are invalid ({exc})") from None
    return task_cfg, hyper_cfg, options


def load_refiner(path: str | Path, task_cfg: TaskConfig, hyper_cfg: HyperConfig | None, options: ModelOptions,
                 device: torch.device | str = "cpu", ckpt: Mapping[str, Any] | None = None
                 ) -> tuple[MeshRefiner, dict[str, Any]]:
    """Build the model the configs describe, check the checkpoint fits it, load it strictly, eval mode.

    Args:
        ckpt: the already-read checkpoint (else it is read from ``path``).
    Returns:
        the model on ``device`` in eval mode, and the checkpoint dict.
    Raises:
        CheckpointError: missing / unreadable file, different signature, state dict mismatch.
        AssetError: SMPL files missing under ``task_cfg.data_root``.
    """
    ckpt = dict(ckpt) if ckpt is not None else read_checkpoint(path)
    check_compatible(ckpt, path, model_signature(task_cfg, hyper_cfg, options))
    model = build_model(task_cfg, hyper_cfg, options)
    load_model_state(model, ckpt, path)
    log.info("%s: loaded (trained %s epochs)", path, ckpt.get("epoch", "?"))
    return model.to(device).eval(), ckpt


def load_refiner_from_checkpoint(path: str | Path, data_root: str | Path | None = None,
                                 device: torch.device | str = "cpu"
                                 ) -> tuple[MeshRefiner, TaskConfig, dict[str, Any]]:
    """``load_refiner`` with the configs stored in the checkpoint (``configs_from_checkpoint``)."""
    ckpt = read_checkpoint(path)
    task_cfg, hyper_cfg, options = configs_from_checkpoint(ckpt, path, data_root)
    model, ckpt = load_refiner(path, task_cfg, hyper_cfg, options, device, ckpt=ckpt)
    return model, task_cfg, ckpt

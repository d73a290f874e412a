"""Checkpoints: self-describing, atomic, unwrapped, loadable on CPU whatever device saved them.
Writing them, RNG state and backbone loading live here; reading one and checking it against a model is
``lib.model.checkpoint`` (what evaluation, export and inference use).

File names under ``--checkpoint`` (shared/CONTRACT.md): ``latest_epoch.bin`` after every epoch,
``best_epoch.bin`` when the selection metric improves, ``epoch_{k}.bin`` every
``checkpoint_frequency`` epochs with k = completed epochs (1-based).

A checkpoint is a dict of plain types and tensors, loadable with ``torch.load(weights_only=True)``:
``format``, ``model`` (state dict, no ``module.`` prefix, no SMPL arrays), ``optimizer``, ``scheduler``,
``scaler`` (or None), ``epoch`` (completed epochs), ``best_metric`` (mm) and ``best_epoch``, ``rng``
(python / numpy / torch / cuda states), ``task_config``, ``hyper_config``, ``model_options`` and
``signature`` (the settings that fix the meaning and shape of the weights; see ``model_signature``).
"""

from __future__ import annotations

import dataclasses
import logging
import random
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import torch
from torch import nn

from lib.atomic_write import atomic_open
from lib.config.hyper import HyperConfig
from lib.config.options import ModelOptions
from lib.config.task import TaskConfig
from lib.errors import CheckpointError
from lib.model.checkpoint import config_as_dict, model_signature, strip_wrapper_prefixes, unwrap

log = logging.getLogger(__name__)

FORMAT = "ehg-mesh-refine/1"
LATEST = "latest_epoch.bin"
BEST = "best_epoch.bin"

def epoch_file(completed_epochs: int) -> str:
    """Name of the periodic checkpoint after ``completed_epochs`` epochs (1-based)."""
    return f"epoch_{completed_epochs}.bin"


def capture_rng() -> dict[str, Any]:
    """RNG states of python, numpy, torch (CPU) and CUDA, in weights_only-loadable types."""
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    state: dict[str, Any] = {
        "python": random.getstate(),
        "numpy": {"kind": kind, "keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos),
                  "has_gauss": int(has_gauss), "cached_gaussian": float(cached)},
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
    }
    return state


def restore_rng(state: Mapping[str, Any]) -> None:
    """Inverse of ``capture_rng``; CUDA states are restored only when the device count matches."""
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    np_state = state["numpy"]
    np.random.set_state((np_state["kind"], np_state["keys"].numpy().astype(np.uint32), np_state["pos"],
                         np_state["has_gauss"], np_state["cached_gaussian"]))
    torch.set_rng_state(state["torch"].cpu())
    cuda = state.get("cuda") or []
    if cuda and torch.cuda.is_available() and len(cuda) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all([s.cpu() for s in cuda])


def atomic_save(obj: Any, path: str | Path) -> Path:
    """``torch.save`` through ``lib.atomic_write``: a temp file in the same folder, fsync, ``os.replace``.

    A process killed at any moment leaves either the previous file or the new one, never a torn file.

    Raises:
        WriteError: the file cannot be written (no space, file too large, no permission); one line
            naming it, the temp file removed, the previous file unchanged.
    """
    with atomic_open(path, "wb") as handle:
        torch.save(obj, handle)
    return Path(path)


def build_checkpoint(*, model: nn.Module, optimizer: torch.optim.Optimizer | None, scheduler: Any,
                     scaler: Any, epoch: int, best_metric: float, best_epoch: int, task_cfg: TaskConfig,
                     hyper_cfg: HyperConfig | None, options: ModelOptions) -> dict[str, Any]:
    """Everything needed to resume exactly, or to rebuild the model for evaluation / export."""
    return {
        "format": FORMAT,
        "model": strip_wrapper_prefixes(unwrap(model).state_dict()),
        "optimizer": optimizer.state_dict() if optimizer is not None else None,
        "scheduler": scheduler.state_dict() if scheduler is not None else None,
        "scaler": scaler.state_dict() if scaler is not None else None,
        "epoch": int(epoch),
        "best_metric": float(best_metric),
        "best_epoch": int(best_epoch),
        "rng": capture_rng(),
        "task_config": task_cfg.to_dict(),
        "hyper_config": config_as_dict(hyper_cfg),
        "model_options": config_as_dict(options),
        "signature": model_signature(task_cfg, hyper_cfg, options),
    }


@dataclasses.dataclass(frozen=True)
class BackboneLoadReport:
    loaded: int
    missing: tuple[str, ...]        # backbone tensors of the model the file did not provide
    mismatched: tuple[str, ...]     # same name, different shape (not loaded)

    def summary(self) -> str:
        return (f"loaded {self.loaded} backbone tensors; {len(self.missing)} missing"
                f"{' (' + ', '.join(self.missing[:5]) + ')' if self.missing else ''}; "
                f"{len(self.mismatched)} shape-mismatched"
                f"{' (' + ', '.join(self.mismatched[:5]) + ')' if self.mismatched else ''}")


def load_backbone_weights(model: nn.Module, path: str | Path, prefix: str = "backbone.") -> BackboneLoadReport:
    """Load the backbone tensors of a checkpoint this project wrote, matched by name and shape.

    The head is never taken from a pretrained file. Accepts a full-model checkpoint (``model``) or a
    pose checkpoint (``model_pos``), with or without ``module.`` prefixes.

    Raises:
        CheckpointError: the file matches no backbone tensor (e.g. MotionBERT's DSTformer weights).
    """
    path = Path(path)
    ckpt = read_checkpoint_any(path)
    state = strip_wrapper_prefixes(ckpt)
    target = unwrap(model).state_dict()
    own = {k: v for k, v in target.items() if k.startswith(prefix)}
    matched, mismatched = {}, []
    for key, value in own.items():
        if key in state:
            if tuple(state[key].shape) == tuple(value.shape):
                matched[key] = state[key]
            else:
                mismatched.append(key)
    missing = tuple(k for k in own if k not in state)
    if not matched:
        sample = ", ".join(sorted(state)[:3])
        raise CheckpointError(f"{path}: no tensor matches the backbone by name and shape "
                              f"(file keys start like: {sample or '<none>'}); --pretrained/backbone_ckpt must point "
                              "to a checkpoint written by this project (MotionBERT/DSTformer weights do not fit)")
    unwrap(model).load_state_dict(matched, strict=False)
    report = BackboneLoadReport(len(matched), missing, tuple(mismatched))
    log.info("%s: %s", path, report.summary())
    return report


def read_checkpoint_any(path: Path) -> dict[str, torch.Tensor]:
    """The state dict of a full-model (``model``) or pose (``model_pos``) checkpoint, or a bare one."""
    if not path.is_file():
        raise CheckpointError(f"{path}: pretrained checkpoint not found (resolved to {path.resolve()}); "
                              "pass --pretrained DIR --selection FILE or set backbone_ckpt to an existing file")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001
        raise CheckpointError(f"{path}: not a readable checkpoint ({type(exc).__name__})") from None
    if isinstance(ckpt, dict):
        for key in ("model", "model_pos", "state_dict"):
            if isinstance(ckpt.get(key), dict):
                return ckpt[key]
        if all(isinstance(v, torch.Tensor) for v in ckpt.values()):
            return ckpt
    raise CheckpointError(f"{path}: expected a checkpoint dict with 'model' or 'model_pos', "
                          f"found {type(ckpt).__name__}")

"""Checkpoints: self-describing, atomic, unwrapped, loadable on CPU whatever device saved them.

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
from lib.errors import CheckpointError

log = logging.getLogger(__name__)

FORMAT = "ehg-mesh-refine/1"
LATEST = "latest_epoch.bin"
BEST = "best_epoch.bin"

# Task-config keys that change the meaning or shape of the weights (CONTRACT.md). Training keys
# (learning rates, epochs, batch sizes, data files) may differ between runs of one checkpoint.
WEIGHT_KEYS = ("dim_rep", "depth", "num_heads", "mlp_ratio", "hidden_dim", "maxlen", "num_joints",
               "no_conf", "refine_shape", "smooth_kernel", "head_norm", "input_norm")
# Weight keys added after the first checkpoints were written: a signature without one was written
# with its default. (``clip_shape`` is not a weight key: it picks the betas the head starts from.)
ADDED_WEIGHT_KEYS = {"smooth_kernel": 0, "head_norm": "batch", "input_norm": "canvas"}
# Prefixes added by wrappers (DDP / DataParallel, torch.compile), stripped by one helper.
WRAPPER_PREFIXES = ("module.", "_orig_mod.")


def epoch_file(completed_epochs: int) -> str:
    """Name of the periodic checkpoint after ``completed_epochs`` epochs (1-based)."""
    return f"epoch_{completed_epochs}.bin"


def _plain(value: Any) -> Any:
    """Tuples to lists, recursively (so configs compare equal after a save / load round trip)."""
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def _as_dict(obj: Any) -> dict[str, Any] | None:
    """A config dataclass (or mapping) as a dict of plain values; None stays None."""
    if obj is None:
        return None
    if dataclasses.is_dataclass(obj):
        return {f.name: _plain(getattr(obj, f.name)) for f in dataclasses.fields(obj) if f.name != "source"}
    return {k: _plain(v) for k, v in dict(obj).items()}


def model_signature(task_cfg: Any, hyper_cfg: Any, options: Any) -> dict[str, Any]:
    """The settings that must agree between a checkpoint and the model it is loaded into.

    Args:
        task_cfg: ``TaskConfig``; only ``WEIGHT_KEYS`` are taken.
        hyper_cfg: ``HyperConfig`` or None; ignored with ``version == 1`` (no hypergraph weights).
        options: ``ModelOptions`` (version, relation bias, ablation switches).
    """
    opts = _as_dict(options) or {}
    sig: dict[str, Any] = {key: getattr(task_cfg, key) for key in WEIGHT_KEYS}
    sig.update({f"option.{k}": v for k, v in sorted(opts.items())})
    hyper = _as_dict(hyper_cfg) if opts.get("version", 2) != 1 else None
    if hyper is not None:
        hyper.pop("dataset", None)
        sig.update({f"hyper.{k}": v for k, v in sorted(hyper.items())})
    return sig


def signature_differences(saved: Mapping[str, Any], current: Mapping[str, Any]) -> list[str]:
    """Human-readable ``key: checkpoint X, now Y`` entries for every differing setting."""
    saved = {**ADDED_WEIGHT_KEYS, **saved}
    keys = sorted(set(saved) | set(current))
    return [f"{k}: checkpoint {saved.get(k, '<absent>')!r}, now {current.get(k, '<absent>')!r}"
            for k in keys if saved.get(k) != current.get(k)]


def strip_wrapper_prefixes(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Remove ``module.`` (DDP / DataParallel) and ``_orig_mod.`` (torch.compile) from every key."""
    out = {}
    for key, value in state.items():
        changed = True
        while changed:
            changed = False
            for prefix in WRAPPER_PREFIXES:
                if key.startswith(prefix):
                    key, changed = key[len(prefix):], True
        out[key] = value
    return out


def unwrap(model: nn.Module) -> nn.Module:
    """The bare model inside DDP / torch.compile wrappers."""
    while hasattr(model, "module") or hasattr(model, "_orig_mod"):
        model = getattr(model, "module", None) or getattr(model, "_orig_mod")
    return model


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
                     scaler: Any, epoch: int, best_metric: float, best_epoch: int, task_cfg: Any,
                     hyper_cfg: Any, options: Any) -> dict[str, Any]:
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
        "hyper_config": _as_dict(hyper_cfg),
        "model_options": _as_dict(options),
        "signature": model_signature(task_cfg, hyper_cfg, options),
    }


def read_checkpoint(path: str | Path) -> dict[str, Any]:
    """Load a checkpoint on the CPU with ``weights_only=True``.

    Raises:
        CheckpointError: missing file, unreadable file, or not a dict with a ``model`` entry.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: checkpoint not found (resolved to {path.resolve()}); "
                              "check the path given to -r/--resume, --evaluate or --pretrained/--selection")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any unpickling failure is the same user error
        reason = " ".join(str(exc).split())[:300]
        raise CheckpointError(f"{path}: not a readable checkpoint ({type(exc).__name__}: {reason}); "
                              "it may be truncated or not a PyTorch file") from None
    if not isinstance(ckpt, dict) or "model" not in ckpt:
        keys = sorted(ckpt)[:8] if isinstance(ckpt, dict) else type(ckpt).__name__
        raise CheckpointError(f"{path}: expected a dict with a 'model' state dict, found {keys}")
    return ckpt


def check_compatible(ckpt: Mapping[str, Any], path: str | Path, signature: Mapping[str, Any]) -> None:
    """Refuse a checkpoint whose weight-defining settings differ from the current model's."""
    saved = ckpt.get("signature")
    if saved is None:
        return  # written by another tool: the strict state-dict load below names what differs
    diffs = signature_differences(saved, signature)
    if diffs:
        raise CheckpointError(f"{path}: written for a different model ({'; '.join(diffs)}); "
                              "use the config, --hyper_cfg and flags the checkpoint was trained with")


def load_model_state(model: nn.Module, ckpt: Mapping[str, Any], path: str | Path) -> None:
    """Strict load of a full-model checkpoint, after stripping wrapper prefixes."""
    state = strip_wrapper_prefixes(ckpt["model"])
    result = unwrap(model).load_state_dict(state, strict=False)
    if result.missing_keys or result.unexpected_keys:
        missing = ", ".join(result.missing_keys[:5])
        unexpected = ", ".join(result.unexpected_keys[:5])
        raise CheckpointError(f"{path}: state dict does not match the model "
                              f"({len(result.missing_keys)} missing: {missing or '-'}; "
                              f"{len(result.unexpected_keys)} unexpected: {unexpected or '-'})")


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

"""Reading a refiner checkpoint and checking it against the model it is loaded into: the part of
``lib.train.checkpoint`` that evaluation, export and inference need (none of them imports training).

``model_signature`` lists the settings that fix the meaning and shape of the weights; ``read_checkpoint``
loads with ``weights_only=True`` (no pickled code runs); ``check_compatible`` refuses a checkpoint
written for another model in one line; ``load_model_state`` is a strict load after stripping the
``module.`` / ``_orig_mod.`` prefixes of DDP and ``torch.compile``.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, Mapping

import torch
from torch import nn

from lib.config.hyper import HyperConfig
from lib.config.task import TaskConfig
from lib.errors import CheckpointError

# Task-config keys that change the meaning or shape of the weights (CONTRACT.md). Training keys
# (learning rates, epochs, batch sizes, data files) may differ between runs of one checkpoint.
# ``clip_shape`` shapes no weight but changes the output (which betas the head starts from): a model
# trained with one value and run with the other gives other meshes, so it is part of the signature too.
WEIGHT_KEYS = ("dim_rep", "depth", "num_heads", "mlp_ratio", "hidden_dim", "maxlen", "num_joints",
               "no_conf", "refine_shape", "smooth_kernel", "head_norm", "input_norm", "clip_shape",
               "input_hybrik", "smooth_adaptive")
# Keys that joined the signature after the first checkpoints were written. A signature without one
# takes the value from the checkpoint's stored task config when it has it, else the value every
# checkpoint had before the key existed (the original behaviour).
ADDED_WEIGHT_KEYS = {"smooth_kernel": 0, "head_norm": "batch", "input_norm": "canvas", "clip_shape": False,
                     "input_hybrik": False, "smooth_adaptive": False}
# Prefixes added by wrappers (DDP / DataParallel, torch.compile), stripped by one helper.
WRAPPER_PREFIXES = ("module.", "_orig_mod.")


def _plain(value: Any) -> Any:
    """Tuples to lists, recursively (so configs compare equal after a save / load round trip)."""
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def config_as_dict(obj: Any) -> dict[str, Any] | None:
    """A config dataclass (or mapping) as a dict of plain values; None stays None."""
    if obj is None:
        return None
    if dataclasses.is_dataclass(obj):
        return {f.name: _plain(getattr(obj, f.name)) for f in dataclasses.fields(obj) if f.name != "source"}
    return {k: _plain(v) for k, v in dict(obj).items()}


def model_signature(task_cfg: TaskConfig, hyper_cfg: HyperConfig | None, options: Any) -> dict[str, Any]:
    """The settings that must agree between a checkpoint and the model it is loaded into.

    Args:
        task_cfg: ``TaskConfig``; only ``WEIGHT_KEYS`` are taken.
        hyper_cfg: ``HyperConfig`` or None; ignored with ``version == 1`` (no hypergraph weights).
        options: ``ModelOptions`` (version, relation bias, ablation switches).
    """
    opts = config_as_dict(options) or {}
    sig: dict[str, Any] = {key: getattr(task_cfg, key) for key in WEIGHT_KEYS}
    sig.update({f"option.{k}": v for k, v in sorted(opts.items())})
    hyper = config_as_dict(hyper_cfg) if opts.get("version", 2) != 1 else None
    if hyper is not None:
        hyper.pop("dataset", None)
        sig.update({f"hyper.{k}": v for k, v in sorted(hyper.items())})
    return sig


def signature_differences(saved: Mapping[str, Any], current: Mapping[str, Any],
                          stored_config: Mapping[str, Any] | None = None) -> list[str]:
    """Human-readable ``key: checkpoint X, now Y`` entries for every differing setting.

    ``stored_config`` (the checkpoint's ``task_config``) fills the ``ADDED_WEIGHT_KEYS`` an older
    signature lacks; without it they take their ``ADDED_WEIGHT_KEYS`` value.
    """
    stored = stored_config or {}
    added = {key: stored.get(key, default) for key, default in ADDED_WEIGHT_KEYS.items()}
    saved = {**added, **saved}
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
    diffs = signature_differences(saved, signature, ckpt.get("task_config"))
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

"""Strict loading of HybrIK's released checkpoints (``hybrik_hrnet.pth``) into ``HybrIKCam``.

HybrIK saves either the bare ``state_dict`` or ``{"model": state_dict}``, sometimes from a
``DataParallel`` wrapper (``module.`` prefix). "Strict" means (CONTRACT, "The HybrIK stage"): every key
of the file other than ``smpl.*`` must match the model by name and shape and no model key may be
missing. The file's ``smpl.*`` buffers (HybrIK's copy of the SMPL arrays) are accepted and not used:
our SMPL layer comes from ``data_root``; the load report lists them. ``init_shape`` (HybrIK's mean
betas) is taken from the file.
"""

from __future__ import annotations

import logging
import os
import pickle
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor, nn

from lib.errors import CheckpointError

logger = logging.getLogger(__name__)

PARALLEL_PREFIX = "module."
SMPL_PREFIX = "smpl."
WRAPPER_KEYS = ("model", "state_dict")  # HybrIK's demo accepts {"model": state_dict}
MAX_NAMES_IN_ERROR = 5
CHECKPOINT_SOURCE = "HybrIK's released HRNet-W48 weights (pretrained_models/hybrik_hrnet.pth, see its README)"


@dataclass(frozen=True)
class LoadReport:
    """What ``load_hybrik_checkpoint`` did.

    Attributes:
        path: the file.
        loaded: number of tensors copied into the model.
        ignored_smpl: the file's ``smpl.*`` keys, accepted and not used.
    """

    path: Path
    loaded: int
    ignored_smpl: tuple[str, ...]


def _names(keys: list[str]) -> str:
    shown = ", ".join(keys[:MAX_NAMES_IN_ERROR])
    return shown + (f" (+{len(keys) - MAX_NAMES_IN_ERROR} more)" if len(keys) > MAX_NAMES_IN_ERROR else "")


def strip_parallel_prefix(state: dict[str, Tensor]) -> dict[str, Tensor]:
    """Remove a ``module.`` prefix (DataParallel / DDP) from every key that has it."""
    return {k[len(PARALLEL_PREFIX):] if k.startswith(PARALLEL_PREFIX) else k: v for k, v in state.items()}


def read_hybrik_state(path: str | os.PathLike) -> dict[str, Tensor]:
    """The tensors of a HybrIK checkpoint file, unwrapped and without ``module.`` prefixes.

    Raises:
        CheckpointError: missing or unreadable file, or one that holds no dict of tensors.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path.resolve()}: HybrIK checkpoint not found; expected {CHECKPOINT_SOURCE}")
    try:
        content = torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, OSError, ValueError, AttributeError) as exc:
        reason = " ".join(str(exc).split())[:160]
        raise CheckpointError(f"{path.resolve()}: not a loadable PyTorch checkpoint ({type(exc).__name__}: "
                              f"{reason}); expected {CHECKPOINT_SOURCE}") from None
    if isinstance(content, dict):
        for key in WRAPPER_KEYS:
            if isinstance(content.get(key), dict):
                content = content[key]
                break
    if not isinstance(content, dict) or not all(isinstance(v, Tensor) for v in content.values()):
        raise CheckpointError(f"{path.resolve()}: holds a {type(content).__name__}, expected a state_dict "
                              f"(a dict of tensors, or {{'model': state_dict}}); expected {CHECKPOINT_SOURCE}")
    return strip_parallel_prefix(dict(content))


def load_hybrik_checkpoint(model: nn.Module, path: str | os.PathLike) -> LoadReport:
    """Copy HybrIK's released weights into ``model`` (a ``HybrIKCam``), strictly.

    Raises:
        CheckpointError: one line naming the file and the offending keys when nothing matches, when a
            key of the file (other than ``smpl.*``) is unknown to the model or has another shape, or
            when a model key is missing from the file.
    """
    path = Path(path)
    state = read_hybrik_state(path)
    ignored = tuple(sorted(k for k in state if k.startswith(SMPL_PREFIX)))
    weights = {k: v for k, v in state.items() if not k.startswith(SMPL_PREFIX)}
    expected = model.state_dict()
    matched = [k for k, v in weights.items() if k in expected and tuple(v.shape) == tuple(expected[k].shape)]
    if not matched:
        raise CheckpointError(f"{path.resolve()}: no tensor matches the HybrIK HRNet model by name and shape "
                              f"(file keys: {_names(sorted(weights))}); expected {CHECKPOINT_SOURCE}")
    unexpected = sorted(k for k in weights if k not in expected)
    if unexpected:
        raise CheckpointError(f"{path.resolve()}: {len(unexpected)} key(s) unknown to the HybrIK HRNet model: "
                              f"{_names(unexpected)}; is it another HybrIK variant (ResNet-34, HRNet-W32, SMPL-X)?")
    wrong = sorted(k for k in weights if tuple(weights[k].shape) != tuple(expected[k].shape))
    if wrong:
        detail = ", ".join(f"{k} file {tuple(weights[k].shape)} vs model {tuple(expected[k].shape)}"
                           for k in wrong[:MAX_NAMES_IN_ERROR])
        raise CheckpointError(f"{path.resolve()}: {len(wrong)} tensor(s) with another shape: {detail}; "
                              "check the HRNet width (--width, or --hybrik_width in infer_mesh.py) of the checkpoint")
    missing = sorted(k for k in expected if k not in weights)
    if missing:
        raise CheckpointError(f"{path.resolve()}: {len(missing)} model key(s) missing from the file: "
                              f"{_names(missing)}; expected {CHECKPOINT_SOURCE}")
    model.load_state_dict(weights, strict=True)
    logger.info("HybrIK weights: %d tensors from %s; %d smpl.* buffers in the file ignored "
                "(SMPL comes from data_root)", len(weights), path, len(ignored))
    return LoadReport(path=path, loaded=len(weights), ignored_smpl=ignored)

"""Devices come from one place: ``resolve_device``."""

from __future__ import annotations

import torch

from lib.errors import ConfigError


def resolve_device(name: str | None = None) -> torch.device:
    """``None`` or ``"auto"``: CUDA when available, else CPU. Otherwise the named device, checked.

    Raises:
        ConfigError: CUDA requested on a machine without it, or an unknown device string.
    """
    if name in (None, "", "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise ConfigError(f"--device {name!r} is not a device; use cpu, cuda or cuda:N") from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ConfigError(f"--device {name} requested but CUDA is not available here; use --device cpu")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise ConfigError(f"--device {name}: only {torch.cuda.device_count()} CUDA device(s) visible")
    return device

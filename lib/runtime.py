"""Where the code runs: the one device choice (``resolve_device``) and multi-process runs with
``torchrun`` (DistributedDataParallel), detected from the environment. Used by training and evaluation.

``torchrun --nproc_per_node K train_mesh_refine.py ...`` sets ``RANK``, ``LOCAL_RANK`` and
``WORLD_SIZE``; the same command without torchrun is the single-process path. The backend is chosen
automatically: ``nccl`` when the processes run on CUDA, ``gloo`` on the CPU.

Batch sizes in the task config are **per process**: K processes with ``batch_size`` B train on
K x B clips per optimizer step (printed at start-up).
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

from lib.errors import ConfigError

log = logging.getLogger(__name__)


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


@dataclass(frozen=True)
class DistInfo:
    """Where this process stands: ``rank`` of ``world_size`` processes (1 = not distributed)."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def setup(device_arg: str | None) -> tuple[DistInfo, torch.device]:
    """Initialise the process group when launched by torchrun; return (info, this process's device).

    Raises:
        ConfigError: CUDA requested but fewer GPUs than local processes.
    """
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size <= 1:
        return DistInfo(), resolve_device(device_arg)
    rank, local_rank = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    device = resolve_device(device_arg)
    if device.type == "cuda":
        if local_rank >= torch.cuda.device_count():
            raise ConfigError(f"LOCAL_RANK {local_rank} but only {torch.cuda.device_count()} CUDA device(s); "
                              "lower --nproc_per_node or pass --device cpu")
        device = torch.device("cuda", local_rank)
        torch.cuda.set_device(device)
    backend = "nccl" if device.type == "cuda" else "gloo"
    if not dist.is_initialized():
        dist.init_process_group(backend=backend, device_id=device if device.type == "cuda" else None)
    return DistInfo(rank, world_size, local_rank), device


def teardown(info: DistInfo) -> None:
    if info.enabled and dist.is_initialized():
        dist.destroy_process_group()


def barrier(info: DistInfo) -> None:
    if info.enabled:
        dist.barrier()


def all_reduce_sum(tensor: torch.Tensor, info: DistInfo) -> torch.Tensor:
    """Sum of ``tensor`` over all processes (identity when not distributed)."""
    if info.enabled:
        dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
    return tensor


def any_true(flag: bool, info: DistInfo, device: torch.device) -> bool:
    """True on every process when ``flag`` is true on any (e.g. one rank saw a NaN loss)."""
    if not info.enabled:
        return flag
    value = torch.tensor([1.0 if flag else 0.0], device=device)
    return bool(all_reduce_sum(value, info).item() > 0)

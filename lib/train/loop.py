"""One training pass, read top to bottom: forward, targets, losses, finite check, backward, step, log."""

from __future__ import annotations

import logging
import time
from collections import defaultdict
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping

import torch
from torch import nn
from tqdm import tqdm

from lib.errors import RefineError
from lib.runtime import DistInfo, all_reduce_sum, any_true
from lib.train.losses import compute_losses
from lib.train.targets import smpl_targets

log = logging.getLogger(__name__)


class NonFiniteLossError(RefineError):
    """A loss became NaN or inf: training stops instead of learning from garbage."""


@dataclass
class PassStats:
    """Running means of the loss terms over one pass (weighted by clips)."""

    sums: dict[str, float] = field(default_factory=lambda: defaultdict(float))
    clips: int = 0
    seconds: float = 0.0
    data_seconds: float = 0.0

    def add(self, losses: Mapping[str, torch.Tensor], n: int) -> None:
        for name, value in losses.items():
            self.sums[name] += float(value) * n
        self.clips += n

    def means(self) -> dict[str, float]:
        return {k: v / max(self.clips, 1) for k, v in self.sums.items()}


def optimizer_steps(optimizer: torch.optim.Optimizer) -> int:
    """Steps the optimizer has taken (Adam's per-parameter ``step`` of its first trained parameter;
    saved and restored with the optimizer's state, so a resumed run continues the count)."""
    for group in optimizer.param_groups:
        for param in group["params"]:
            state = optimizer.state.get(param)
            if state and "step" in state:
                return int(state["step"])
    return 0


@contextmanager
def warmup_lr(optimizer: torch.optim.Optimizer, warmup_steps: int):
    """Linear learning-rate warm-up: step k (0-based) of the first ``warmup_steps`` runs at
    (k + 1) / warmup_steps of each group's scheduled rate; the scheduled rates are restored after.

    Why: Adam's first updates have size ~lr whatever the gradient, and the refine head's last layer is
    zero-initialised with a fan-in of 2 x hidden_dim x 5 non-negative (ReLU) inputs, so a full-rate
    first step moves its output (the 6D pose residual) by ~lr x fan-in x mean activation at once.
    """
    step = optimizer_steps(optimizer)
    if warmup_steps <= 0 or step >= warmup_steps:
        yield
        return
    scheduled = [group["lr"] for group in optimizer.param_groups]
    factor = (step + 1) / warmup_steps
    for group in optimizer.param_groups:
        group["lr"] = group["lr"] * factor
    try:
        yield
    finally:
        for group, lr in zip(optimizer.param_groups, scheduled):
            group["lr"] = lr


def move(batch: Mapping[str, Any], device: torch.device) -> dict[str, Any]:
    """Tensors of a batch onto ``device`` (non-tensor entries unchanged)."""
    return {k: v.to(device, non_blocking=True) if torch.is_tensor(v) else v for k, v in batch.items()}


def train_one_epoch(model: nn.Module, loader: Iterable[Mapping[str, Any]], optimizer: torch.optim.Optimizer,
                    body: nn.Module, loss_cfg: Any, device: torch.device, *, epoch: int, pass_name: str,
                    describe_batch=None, scaler: torch.amp.GradScaler | None = None,
                    autocast_dtype: torch.dtype | None = None, dist_info: DistInfo = DistInfo()) -> PassStats:
    """Train ``model`` for one pass over ``loader``.

    Args:
        model: the refiner (or its DDP wrapper) returning the dict of ``MeshRefiner.forward``.
        loader: batches of ``pose2d (N,T,17,C)``, ``gt_pose``/``hybrik_pose (N,T,72)`` rad,
            ``gt_shape``/``hybrik_shape (N,T,10)``, ``frame_index (N,T)``.
        body: ``BodyModel`` on ``device`` for the ground-truth meshes (computed batched, in the step).
        loss_cfg: a ``TaskConfig`` (its ``lambda_*`` weights, ``loss_type``, ``clip_grad``, ``warmup_steps``).
        describe_batch: optional ``f(batch) -> str`` naming the sequences of a batch for error messages.
        scaler, autocast_dtype: mixed precision on CUDA (both None on CPU; bf16 needs no scaler).
        dist_info: under torchrun, the loss check is agreed by all processes and the returned stats are
            summed over them (rank 0 draws the progress bar).

    Raises:
        NonFiniteLossError: a NaN/inf loss, naming the epoch, pass, batch and sequences.
    """
    model.train()
    stats = PassStats()
    start = tick = time.perf_counter()
    bar = tqdm(loader, desc=f"epoch {epoch + 1} {pass_name}", leave=False, dynamic_ncols=True, unit="batch",
               disable=not dist_info.is_main)
    for step, batch in enumerate(bar):
        batch = move(batch, device)
        stats.data_seconds += time.perf_counter() - tick
        with torch.autocast(device.type, dtype=autocast_dtype, enabled=autocast_dtype is not None):
            pred = model(batch["pose2d"], batch["hybrik_pose"], batch["hybrik_shape"])
        pred = {k: v.float() for k, v in pred.items()}
        with torch.no_grad():
            gt = smpl_targets(body, batch["gt_pose"], batch["gt_shape"])
        losses = compute_losses(pred, gt, loss_cfg, loss_cfg.loss_type)
        total = losses["total"]
        if any_true(not bool(torch.isfinite(total)), dist_info, device):
            bad = [k for k, v in losses.items() if not torch.isfinite(v)]
            where = describe_batch(batch) if describe_batch else "?"
            if bool(torch.isfinite(total)):  # under torchrun another process holds the bad batch
                where = f"of another process (this one had {where})"
            raise NonFiniteLossError(f"non-finite loss ({', '.join(bad)}) at epoch {epoch + 1}, pass {pass_name}, "
                                     f"batch {step}, sequences {where}; check these inputs or lower the learning rate")
        optimizer.zero_grad(set_to_none=True)
        clip = loss_cfg.clip_grad
        with warmup_lr(optimizer, loss_cfg.warmup_steps):
            if scaler is not None:
                scaler.scale(total).backward()
                if clip > 0:
                    scaler.unscale_(optimizer)
                    torch.nn.utils.clip_grad_norm_(model.parameters(), clip)
                scaler.step(optimizer)
                scaler.update()
            else:
                total.backward()
                if clip > 0:
                    torch.nn.utils.clip_grad_norm_(model.parameters(), clip)
                optimizer.step()
        n = batch["pose2d"].shape[0]
        stats.add({k: v.detach() for k, v in losses.items()}, n)
        elapsed = time.perf_counter() - start
        bar.set_postfix(loss=f"{stats.sums['total'] / stats.clips:.2f}", clips_s=f"{stats.clips / elapsed:.1f}")
        tick = time.perf_counter()
    stats.seconds = time.perf_counter() - start
    if dist_info.enabled:  # sum the per-process sums so every rank logs the global means
        keys = sorted(stats.sums)
        packed = torch.tensor([stats.sums[k] for k in keys] + [float(stats.clips)], dtype=torch.float64,
                              device=device)
        packed = all_reduce_sum(packed, dist_info).tolist()
        stats.sums = defaultdict(float, zip(keys, packed[:-1]))
        stats.clips = int(packed[-1])
    return stats

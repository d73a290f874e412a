"""Wall-clock timing of a callable: the one ``median_ms`` of export reports, the HybrIK export CLI and
the benchmarks."""

from __future__ import annotations

import time
from typing import Any, Callable

import numpy as np
import torch


def sync(device: torch.device) -> None:
    """Wait for queued GPU work, so a timer around it measures it (no-op on the CPU)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def median_ms(fn: Callable[[], Any], repeats: int, warmup: int = 1, device: torch.device | None = None) -> float:
    """Median wall time of ``fn()`` over ``repeats`` calls after ``warmup`` calls, in milliseconds
    (GPU work on ``device`` is waited for before each clock reading)."""
    device = device or torch.device("cpu")
    for _ in range(warmup):
        fn()
    sync(device)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        sync(device)
        times.append((time.perf_counter() - start) * 1e3)
    return float(np.median(times))

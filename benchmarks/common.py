"""What the benchmark scripts share: paths, the synthetic data_root, configs, machine info, timers, tables.

Nothing here measures anything by itself; every number comes from the library functions the
scripts call. Run the scripts from the repository root: ``python -m benchmarks.bench_accuracy``.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results"
QUICK_DIR = "quick"  # --quick writes under results/quick/, never over the real results
RUNS_DIR = "runs"    # training runs, checkpoints, exported files: not committed (results/.gitignore)
DEMO_CONFIG = REPO / "configs" / "mesh" / "demo.yaml"
HYPER_CONFIG = REPO / "hyper_config" / "method2" / "manual_joint_label1.yaml"
# The model flags of the seed commands (README): version 2, hypergraph partition 1, uniform bias.
MODEL_FLAGS = ("--hyper_cfg", str(HYPER_CONFIG), "--hyper_relation_bias", "uniform", "--version", "2")
DEFAULT_THREADS = 2
# --quick: model, batch and schedule sizes swapped into a copy of the demo config (as the tests do).
QUICK_SIZES = dict(dim_rep=16, depth=1, num_heads=2, hidden_dim=32, batch_size=8, batch_size_img=16,
                   clip_len=8, data_stride=8, num_workers=0, epochs=1, warmup_h36m=1, warmup_coco=1,
                   checkpoint_frequency=1)
# TaskConfig's defaults (the original configs' model size), for "default size" measurements.
DEFAULT_SIZE_KEYS = ("dim_rep", "depth", "num_heads", "mlp_ratio", "hidden_dim", "batch_size")

log = logging.getLogger("benchmarks")


def benchmark_parser(name: str, description: str, *, config_help: str, quick_help: str,
                     threads_help: str = "torch CPU threads (default 2)") -> argparse.ArgumentParser:
    """The flags every benchmark shares: --config, --out, --device, --threads, --seed, --quick.

    ``name`` is the benchmark's result name (``accuracy`` -> ``python -m benchmarks.bench_accuracy``,
    writing ``accuracy.json`` / ``accuracy.md``); each script adds its own flags to the returned parser.
    """
    parser = argparse.ArgumentParser(prog=f"python -m benchmarks.bench_{name}", description=description)
    parser.add_argument("--config", type=Path, default=DEMO_CONFIG, help=config_help)
    parser.add_argument("--out", type=Path, default=RESULTS,
                        help=f"folder of {name}.json / {name}.md (default: benchmarks/results)")
    parser.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N (default cpu)")
    parser.add_argument("--threads", type=int, default=DEFAULT_THREADS, help=threads_help)
    parser.add_argument("--seed", type=int, default=0, help="seed of the data generator, weights and batches")
    parser.add_argument("--quick", action=argparse.BooleanOptionalAction, default=False, help=quick_help)
    return parser


def setup(threads: int = DEFAULT_THREADS) -> None:
    """Console logging through the project's handler and a fixed number of torch threads."""
    from lib.train.log_setup import setup_logging

    setup_logging(None)
    torch.set_num_threads(threads)


def run_cli(run: Callable[[Any], Any], args: Any) -> int:
    """``run(args)``; a user error (``RefineError``: config, data, checkpoint) becomes one line and exit 2."""
    from lib.errors import RefineError

    try:
        run(args)
    except RefineError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


def results_dir(out: Path, quick: bool) -> Path:
    """``out`` or ``out/quick`` (created)."""
    path = out / QUICK_DIR if quick else out
    path.mkdir(parents=True, exist_ok=True)
    return path


def ensure_data_root(data_root: Path, preset: str, seed: int = 0, style: str = "a") -> Path:
    """The synthetic ``data_root`` (``lib.data.synthetic.ensure_data_root``: reused when its manifest
    matches the seed, preset, style and generator version, generated otherwise)."""
    from lib.data.synthetic import ensure_data_root as ensure

    start = time.perf_counter()
    summary, generated = ensure(data_root, seed=seed, preset=preset, style=style)
    if not generated:
        log.info("reusing the data_root %s", data_root)
        return Path(data_root)
    log.info("generated the synthetic data_root %s (preset %s, style %s, seed %d) in %.1fs: %s", data_root, preset,
             style, seed, time.perf_counter() - start,
             ", ".join(f"{k} test {v['test']['frames']} frames" for k, v in summary["datasets"].items()))
    return Path(data_root)


def write_config(path: Path, base: Path = DEMO_CONFIG, **changes: Any) -> Path:
    """A copy of the task YAML ``base`` with ``changes`` applied (validated by the caller's loader)."""
    raw = yaml.safe_load(base.read_text(encoding="utf-8"))
    raw.update(changes)
    return write_text(path, yaml.safe_dump(raw, sort_keys=False))


def default_size_changes() -> dict[str, Any]:
    """The model (and batch) sizes of ``TaskConfig``'s defaults: dim_rep 128, depth 6, 8 heads, ..."""
    from lib.config.task import TaskConfig

    defaults = TaskConfig()
    return {key: getattr(defaults, key) for key in DEFAULT_SIZE_KEYS}


def model_options():
    """The seed commands' model switches (``MODEL_FLAGS``) as ``ModelOptions`` and the hyper config."""
    from lib.config.hyper import load_hyper_config
    from lib.config.options import ModelOptions

    return load_hyper_config(HYPER_CONFIG), ModelOptions(version=2, hyper_relation_bias="uniform")


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8").splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _git_commit() -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True,
                             timeout=10, check=False)
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=REPO,
                               capture_output=True, text=True, timeout=10, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    if out.returncode:
        return None
    return out.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "")


def load_average() -> list[float] | None:
    """The 1, 5 and 15 minute load averages, rounded (None where the OS has none)."""
    return [round(x, 2) for x in os.getloadavg()] if hasattr(os, "getloadavg") else None


def machine_info() -> dict[str, Any]:
    """CPU model, cores, load, library versions and threads: what the timings depend on."""
    info: dict[str, Any] = {
        "cpu_model": _cpu_model(),
        "logical_cores": os.cpu_count(),
        "usable_cores": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "load_average_1_5_15min": load_average(),
        "platform": platform.platform(),
        "python": sys.version.split()[0],
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "numpy": np.__version__,
        "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "git_commit": _git_commit(),
        "date": time.strftime("%Y-%m-%d %H:%M:%S %z"),
    }
    try:
        import onnxruntime

        info["onnxruntime"] = onnxruntime.__version__
    except ImportError:
        info["onnxruntime"] = None
    return info


def machine_line(info: dict[str, Any]) -> str:
    """One line for tables: CPU, cores, threads, torch, load."""
    return (f"{info['cpu_model']}, {info['usable_cores']} cores, torch {info['torch']} "
            f"({info['torch_threads']} threads), load average {info['load_average_1_5_15min']}")


def write_json(path: Path, payload: dict[str, Any]) -> Path:
    from lib.atomic_write import write_text_atomic

    write_text_atomic(path, json.dumps(payload, indent=2, default=str) + "\n")
    return path


def write_text(path: Path, text: str) -> Path:
    from lib.atomic_write import write_text_atomic

    write_text_atomic(path, text)
    return path


def publish(out: Path, name: str, result: dict[str, Any], text: str, md: str) -> None:
    """Write ``<out>/<name>.json`` and ``<out>/<name>.md``, print the table and where they went."""
    write_json(out / f"{name}.json", result)
    write_text(out / f"{name}.md", md)
    print(text)
    print(f"\nwrote {out / f'{name}.json'} and {out / f'{name}.md'}")


def _cell(value: Any, fmt: str) -> str:
    if isinstance(value, float):
        return format(value, fmt)
    return str(value)


def text_table(headers: Sequence[str], rows: Sequence[Sequence[Any]], fmt: str = ".2f") -> str:
    """A fixed-width table (first column left-aligned, the others right-aligned)."""
    cells = [[_cell(v, fmt) for v in row] for row in rows]
    widths = [max(len(h), *(len(r[i]) for r in cells)) for i, h in enumerate(headers)]

    def line(row: Sequence[str]) -> str:
        return "  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths)))

    return "\n".join([line(list(headers)), line(["-" * w for w in widths]), *(line(r) for r in cells)])


def markdown_table(headers: Sequence[str], rows: Sequence[Sequence[Any]], fmt: str = ".2f") -> str:
    """A GitHub markdown table (numbers right-aligned)."""
    cells = [[_cell(v, fmt) for v in row] for row in rows]
    out = ["| " + " | ".join(headers) + " |", "|" + "|".join([":---"] + ["---:"] * (len(headers) - 1)) + "|"]
    out += ["| " + " | ".join(r) + " |" for r in cells]
    return "\n".join(out)

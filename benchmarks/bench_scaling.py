"""Scaling: step time vs clip length T and vs batch N at the default model size; where attention's T^2 shows.

    python -m benchmarks.bench_scaling            # full: default size, T in 16 27 81 243, N in 1 4 16
    python -m benchmarks.bench_scaling --quick    # a check that it runs: tiny model, two points each

For each (N, T), on random realistic inputs (``lib.deploy.export.realistic_inputs``) and a model in
training mode: the forward pass (``MeshRefiner.forward``: network + SMPL), and the training step without
the optimizer (forward, ``compute_losses`` against ground-truth targets computed beforehand, backward).
Forward hooks time, inside the same forward, the network (backbone + head) and the temporal attention
modules; their ``qkv`` and ``proj`` linear layers are timed too, so that "attention core" =
``q k^T``, softmax and ``attn v``: the only part whose cost grows with T^2. The T sweep compares the
measured growth with linear growth (T / T_0) and reports the core's share of the network forward.

Writes ``scaling.json`` and ``scaling.md`` under ``--out`` (``--quick``: ``--out``/quick).
"""

from __future__ import annotations

import argparse
import logging
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from benchmarks import common
from lib.timing import sync

log = logging.getLogger("benchmarks.scaling")

T_VALUES = (16, 27, 81, 243)
N_VALUES = (1, 4, 16)
T_SWEEP_BATCH = 4     # N of the T sweep
N_SWEEP_FRAMES = 16   # T of the N sweep (the training clip length)
GT_NOISE_SEED = 11    # the ground-truth pose differs from the input one


class ModuleTimer:
    """Wall time spent inside groups of modules, from forward pre-hooks and hooks (seconds, summed).

    Args:
        groups: {name: modules}; a module's time counts towards its group each time it runs.
        device: synchronised at both ends of each module on CUDA.
    """

    def __init__(self, groups: dict[str, list[nn.Module]], device: torch.device) -> None:
        self.device = device
        self.seconds: dict[str, float] = defaultdict(float)
        self._start: dict[int, float] = {}
        self._handles = []
        for name, modules in groups.items():
            for module in modules:
                self._handles.append(module.register_forward_pre_hook(self._enter))
                self._handles.append(module.register_forward_hook(self._exit(name)))

    def _enter(self, module: nn.Module, _inputs: Any) -> None:
        sync(self.device)
        self._start[id(module)] = time.perf_counter()

    def _exit(self, name: str):
        def hook(module: nn.Module, _inputs: Any, _output: Any) -> None:
            sync(self.device)
            self.seconds[name] += time.perf_counter() - self._start.pop(id(module))
        return hook

    def reset(self) -> None:
        self.seconds.clear()

    def remove(self) -> None:
        for handle in self._handles:
            handle.remove()


def timer_groups(model: nn.Module) -> dict[str, list[nn.Module]]:
    """The modules the hooks time: the network, the temporal attention and its linear layers."""
    from lib.model.attention import TemporalBlock

    temporal = [m.attn for m in model.modules() if isinstance(m, TemporalBlock)]
    return {"network": [model.backbone, model.head], "temporal_attention": temporal,
            "temporal_attention_linear": [layer for attn in temporal for layer in (attn.qkv, attn.proj)]}


def measure(model: nn.Module, body: nn.Module, task_cfg: Any, n: int, t: int, repeats: int, warmup: int,
            device: torch.device, timer: ModuleTimer) -> dict[str, Any]:
    """Median ms of the forward, of the step (forward + loss + backward) and of the hooked parts at (N, T)."""
    from lib.deploy.export import realistic_inputs
    from lib.train.losses import compute_losses
    from lib.train.targets import smpl_targets

    inputs = realistic_inputs(n, t, model.in_channels, seed=n * 1000 + t)
    x = {k: torch.from_numpy(v).to(device) for k, v in inputs.items()}
    gt_inputs = realistic_inputs(n, t, model.in_channels, seed=GT_NOISE_SEED)
    with torch.no_grad():
        gt = smpl_targets(body, torch.from_numpy(gt_inputs["hybrik_theta"]).to(device),
                          torch.from_numpy(gt_inputs["hybrik_shape"]).to(device))
    model.train()
    samples: dict[str, list[float]] = defaultdict(list)
    for index in range(warmup + repeats):
        timer.reset()
        model.zero_grad(set_to_none=True)
        sync(device)
        start = time.perf_counter()
        pred = model(x["pose2d"], x["hybrik_theta"], x["hybrik_shape"])
        sync(device)
        forward = time.perf_counter() - start
        compute_losses(pred, gt, task_cfg, task_cfg.loss_type)["total"].backward()
        sync(device)
        step = time.perf_counter() - start
        if index < warmup:
            continue
        samples["forward_ms"].append(1e3 * forward)
        samples["step_ms"].append(1e3 * step)
        samples["network_forward_ms"].append(1e3 * timer.seconds["network"])
        core = timer.seconds["temporal_attention"] - timer.seconds["temporal_attention_linear"]
        samples["temporal_attention_ms"].append(1e3 * timer.seconds["temporal_attention"])
        samples["attention_core_ms"].append(1e3 * core)
    row = {"n": n, "t": t, "frames": n * t, **{k: float(np.median(v)) for k, v in samples.items()}}
    row["smpl_and_rest_forward_ms"] = row["forward_ms"] - row["network_forward_ms"]
    row["backward_and_loss_ms"] = row["step_ms"] - row["forward_ms"]
    row["step_ms_per_frame"] = row["step_ms"] / (n * t)
    row["attention_core_share_of_network"] = row["attention_core_ms"] / max(row["network_forward_ms"], 1e-9)
    log.info("(N, T) = (%d, %d): forward %.1f ms (network %.1f, attention core %.1f), step %.1f ms", n, t,
             row["forward_ms"], row["network_forward_ms"], row["attention_core_ms"], row["step_ms"])
    return row


def growth(rows: list[dict[str, Any]], key: str) -> list[dict[str, float]]:
    """Measured growth of ``rows[i][key]`` over the first row vs the growth of the frame count."""
    base, frames0 = rows[0][key], rows[0]["frames"]
    return [{"measured": r[key] / max(base, 1e-9), "linear": r["frames"] / frames0} for r in rows]


def quadratic_fit(ts: list[int], ms: list[float]) -> dict[str, Any] | None:
    """Least squares ``ms = a + b T + c T^2`` with a, b, c >= 0, and the T^2 term's share at each T.

    Non-negative, so each term is a time and the shares stay in [0, 1] (an unconstrained fit to four
    noisy points can return a negative linear term and a T^2 "share" above 100 %). With three
    coefficients the non-negative optimum is found exactly by trying every subset of free terms.
    """
    if len(ts) < 3:
        return None
    t = np.asarray(ts, dtype=np.float64)
    y = np.asarray(ms, dtype=np.float64)
    design = np.stack([np.ones_like(t), t, t * t], axis=1)  # (len(ts), 3)
    best, best_residual = np.zeros(3), float(np.sum(y * y))
    for mask in range(1, 8):
        cols = [k for k in range(3) if mask >> k & 1]
        coef = np.linalg.lstsq(design[:, cols], y, rcond=None)[0]
        if np.any(coef < 0):
            continue
        full = np.zeros(3)
        full[cols] = coef
        residual = float(np.sum((design @ full - y) ** 2))
        if residual < best_residual:
            best, best_residual = full, residual
    a, b, c = best
    fitted = design @ best
    return {"a_ms": float(a), "b_ms_per_frame": float(b), "c_ms_per_frame2": float(c),
            "t2_share": [float(c * x * x / f) if f > 0 else None for x, f in zip(t, fitted)]}


def build_parser() -> argparse.ArgumentParser:
    parser = common.benchmark_parser(
        "scaling", __doc__.splitlines()[0],
        config_help="task YAML for data_root and loss weights; the model takes TaskConfig's default size",
        quick_help="tiny model, two points per sweep: checks that the script runs")
    parser.add_argument("--ts", type=int, nargs="+", default=list(T_VALUES), help="clip lengths of the T sweep")
    parser.add_argument("--t-batch", type=int, default=T_SWEEP_BATCH, help="N of the T sweep (default 4)")
    parser.add_argument("--batches", type=int, nargs="+", default=list(N_VALUES), help="batch sizes of the N sweep")
    parser.add_argument("--n-frames", type=int, default=N_SWEEP_FRAMES, help="T of the N sweep (default 16)")
    parser.add_argument("--repeats", type=int, default=None, help="timed repeats per point (default 5; quick 1)")
    return parser


def tables(result: dict[str, Any]) -> tuple[str, str]:
    text, md = [], []
    t_rows, n_rows = result["t_sweep"]["rows"], result["n_sweep"]["rows"]
    t_growth, n_growth = result["t_sweep"]["growth_step"], result["n_sweep"]["growth_step"]
    headers = ["T", "forward ms", "network ms", "attn core ms", "core / network", "step ms", "step ms/frame",
               "step growth", "linear growth"]
    rows = [[r["t"], r["forward_ms"], r["network_forward_ms"], r["attention_core_ms"],
             f"{100 * r['attention_core_share_of_network']:.0f} %", r["step_ms"], r["step_ms_per_frame"],
             f"{g['measured']:.2f}x", f"{g['linear']:.2f}x"] for r, g in zip(t_rows, t_growth)]
    size = result["model"]
    title_t = (f"Step time vs T (N = {result['t_sweep']['n']}, model {size['dim_rep']}x{size['depth']}, "
               f"{size['num_heads']} heads; 'attn core' = q k^T, softmax, attn v of the temporal attention)")
    fit = result["t_sweep"]["network_quadratic_fit"]
    fit_line = ("" if fit is None else "network forward fitted as a + b T + c T^2: T^2 share "
                + ", ".join(f"{s * 100:.0f} % at T={t}" for s, t in zip(fit["t2_share"], result["t_sweep"]["ts"])))
    headers_n = ["N", "forward ms", "network ms", "step ms", "step ms/clip", "step growth", "linear growth"]
    rows_n = [[r["n"], r["forward_ms"], r["network_forward_ms"], r["step_ms"], r["step_ms"] / r["n"],
               f"{g['measured']:.2f}x", f"{g['linear']:.2f}x"] for r, g in zip(n_rows, n_growth)]
    title_n = f"Step time vs batch N (T = {result['n_sweep']['t']})"
    for title, h, r in ((title_t, headers, rows), (title_n, headers_n, rows_n)):
        text += [title, common.text_table(h, r, ".1f"), ""]
        md += [f"**{title}**", "", common.markdown_table(h, r, ".1f"), ""]
    if fit_line:
        text.insert(2, fit_line)
        md.insert(4, fit_line + ".\n")
    machine = common.machine_line(result["machine"])
    return "\n".join(text + [f"machine: {machine}"]), "\n".join(md + [f"Machine: {machine}.", ""])


def run(args: argparse.Namespace) -> dict[str, Any]:
    from lib.body.smpl import BodyModel
    from lib.config.task import load_task_config
    from lib.model.build import build_model, count_trainable_parameters
    from lib.runtime import resolve_device

    common.setup(args.threads)
    out = common.results_dir(args.out, args.quick)
    device = resolve_device(args.device)
    base = load_task_config(args.config)
    if args.quick:
        data_root = common.ensure_data_root(out / common.RUNS_DIR / "data_tiny", preset="tiny", seed=args.seed)
        task_cfg = base.replace(data_root=str(data_root), dim_rep=16, depth=1, num_heads=2, hidden_dim=32)
        ts, batches = args.ts[:2], args.batches[:2]
    else:
        common.ensure_data_root(Path(base.data_root), preset="demo", seed=args.seed)
        task_cfg = base.replace(**common.default_size_changes())
        ts, batches = args.ts, args.batches
    repeats = args.repeats or (1 if args.quick else 5)
    warmup = 1
    if max(ts) > task_cfg.maxlen:
        raise SystemExit(f"--ts up to {max(ts)} exceeds the model's maxlen {task_cfg.maxlen}")
    hyper_cfg, options = common.model_options()
    torch.manual_seed(args.seed)
    model = build_model(task_cfg, hyper_cfg, options).to(device)
    body = BodyModel(task_cfg.data_root).to(device)
    timer = ModuleTimer(timer_groups(model), device)
    t_rows = [measure(model, body, task_cfg, args.t_batch, t, repeats, warmup, device, timer) for t in ts]
    n_rows = [measure(model, body, task_cfg, n, args.n_frames, repeats, warmup, device, timer) for n in batches]
    timer.remove()
    result = {
        "benchmark": "scaling", "quick": args.quick, "repeats": repeats, "warmup": warmup,
        "model": {"dim_rep": task_cfg.dim_rep, "depth": task_cfg.depth, "num_heads": task_cfg.num_heads,
                  "hidden_dim": task_cfg.hidden_dim, "parameters": count_trainable_parameters(model)},
        "t_sweep": {"n": args.t_batch, "ts": list(ts), "rows": t_rows, "growth_step": growth(t_rows, "step_ms"),
                    "growth_network": growth(t_rows, "network_forward_ms"),
                    "network_quadratic_fit": quadratic_fit(list(ts), [r["network_forward_ms"] for r in t_rows])},
        "n_sweep": {"t": args.n_frames, "batches": list(batches), "rows": n_rows,
                    "growth_step": growth(n_rows, "step_ms")},
        "machine": common.machine_info(),
    }
    text, md = tables(result)
    common.publish(out, "scaling", result, text, md)
    return result


def main(argv: list[str] | None = None) -> int:
    return common.run_cli(run, build_parser().parse_args(argv))


if __name__ == "__main__":
    raise SystemExit(main())

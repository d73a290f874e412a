"""Speed: training throughput and where a step goes, evaluation throughput and memory, inference latency.

    python -m benchmarks.bench_speed            # full: demo data_root, demo and default model sizes
    python -m benchmarks.bench_speed --quick    # a check that it runs: tiny data and model, few steps

1. **Training** at the demo config's size and at the default size (``TaskConfig``: dim_rep 128, depth 6,
   8 heads, hidden 1024, batch 32), on the 3DPW training clips, with the run's own DataLoader
   (``lib.train.runner.make_loader``, ``num_workers`` from the config): clips/s of ``train_one_epoch``
   itself (and the time it waited for data), then the same step split by manual timers around the
   functions the loop calls: data (next batch + move), network (``refine_rotations``), SMPL of the
   prediction (``posed_mesh_mm`` + axis-angle), SMPL of the ground truth (``smpl_targets``), loss
   (``compute_losses``), backward, optimizer (zero_grad + step).
2. **Evaluation** (``evaluate_split``, flip test as configured) of a default-size model on the test
   split repeated 1x, 2x, 4x (sequences copied under new names), each in a fresh subprocess:
   frames/s and peak resident memory, total and above the resident size before the evaluation.
3. **Inference latency** of a default-size model (random weights) per call at (N, T) = (1, 16), (8, 16),
   (1, 243): PyTorch eager and onnxruntime, 2 intra-op threads each, in this one process
   (``lib.deploy.export.measure_latency``: median of ``--repeats`` after a warm-up); the ratio eager /
   onnxruntime is the figure. Next to it, where the time goes (``benchmarks.refiner_profile``): FLOPs
   per part and the FLOP floor (FLOPs / this CPU's 1024 x 1024 sgemm rate on the same threads), and
   onnxruntime's own profiler by node type and by part at (1, 16) and (8, 16). The load average is
   printed before and after: compare ratios, and rerun when it is above 1.5.

Writes ``speed.json`` and ``speed.md`` under ``--out`` (``--quick``: ``--out``/quick). Run on a quiet
machine: every number is wall time.
"""

from __future__ import annotations

import argparse
import itertools
import json
import logging
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np
import torch

from benchmarks import common
from lib.timing import sync

log = logging.getLogger("benchmarks.speed")

DATASET = "pw3d"
STAGES = ("data", "network", "smpl_pred", "smpl_gt", "loss", "backward", "optimizer")
LATENCY_SHAPES = ((1, 16), (8, 16), (1, 243))
PROFILE_SHAPES = ((1, 16), (8, 16))  # onnxruntime's profiler
TOP_NODE_TYPES = 8  # per profiled shape
EVAL_FACTORS = (1, 2, 4)
PARTS = ("train", "eval", "latency", "int8")
INT8_SHAPES = ((2, 16), (3, 27))  # (N, T) of the int8 parity check (fresh realistic inputs, seed 1 and 2)
METRICS_SHOWN = ("mpjpe", "pa_mpjpe", "mpve", "accel_err")
RESULT_MARKER = "BENCH_RESULT "  # the eval worker's last stdout line: marker + JSON
KIB_PER_MIB = 1024.0


def build_parser() -> argparse.ArgumentParser:
    parser = common.benchmark_parser(
        "speed", __doc__.splitlines()[0],
        config_help="task YAML: data_root and the 'demo' size (default: configs/mesh/demo.yaml)",
        quick_help="tiny data and model, few steps: checks that the script runs",
        threads_help="torch intra-op threads and onnxruntime intra_op_num_threads (default 2)")
    parser.add_argument("--steps", type=int, default=None, help="timed training steps per size (default 20; quick 3)")
    parser.add_argument("--repeats", type=int, default=None, help="latency repeats per shape (default 20; quick 2)")
    parser.add_argument("--parts", nargs="+", choices=PARTS, default=list(PARTS),
                        help="which measurements to run (default: all)")
    parser.add_argument("--checkpoint", type=Path, default=None,
                        help="--parts int8: a trained best_epoch.bin (e.g. demo_out/checkpoint/best_epoch.bin from "
                             "make demo) whose float32 and int8 exports are compared")
    parser.add_argument("--eval-worker", type=int, default=None, metavar="FACTOR", help=argparse.SUPPRESS)
    parser.add_argument("--worker-config", type=Path, default=None, help=argparse.SUPPRESS)
    return parser


# --------------------------------------------------------------------------------------------- sizes

def size_configs(args: argparse.Namespace, out: Path) -> dict[str, Path]:
    """{size name: task YAML}: 'demo' (the config as is) and 'default' (TaskConfig's model and batch sizes);
    with --quick a tiny copy and a small 'default' stand-in on the tiny data_root."""
    runs = out / common.RUNS_DIR
    if args.quick:
        data_root = common.ensure_data_root(runs / "data_tiny", preset="tiny", seed=args.seed)
        tiny = common.write_config(runs / "quick_demo.yaml", base=args.config, data_root=str(data_root),
                                   **common.QUICK_SIZES)
        small = common.write_config(runs / "quick_default.yaml", base=args.config, data_root=str(data_root),
                                    **{**common.QUICK_SIZES, "dim_rep": 32, "depth": 2, "num_heads": 4})
        return {"demo": tiny, "default": small}
    default = common.write_config(runs / "speed_default.yaml", base=args.config, **common.default_size_changes())
    return {"demo": args.config, "default": default}


def load_size(config: Path, device: torch.device, seed: int):
    """(task config, model on device, BodyModel on device) of one size; random weights."""
    from lib.body.smpl import BodyModel
    from lib.config.task import load_task_config
    from lib.model.build import build_model, count_trainable_parameters

    task_cfg = load_task_config(config)
    common.ensure_data_root(Path(task_cfg.data_root), preset="demo", seed=seed)
    hyper_cfg, options = common.model_options()
    torch.manual_seed(seed)
    model = build_model(task_cfg, hyper_cfg, options).to(device)
    log.info("%s: dim_rep %d, depth %d, heads %d, hidden %d, %.3f M parameters", config.name, task_cfg.dim_rep,
             task_cfg.depth, task_cfg.num_heads, task_cfg.hidden_dim, count_trainable_parameters(model) / 1e6)
    return task_cfg, model, BodyModel(task_cfg.data_root).to(device)


# ------------------------------------------------------------------------------------------ training

def step_breakdown(model, body, batches, optimizer, task_cfg, device: torch.device) -> dict[str, float]:
    """Seconds per stage summed over ``batches``: the loop's step (``train_one_epoch``) cut at its calls."""
    from lib.geometry.rotation import matrix_to_axis_angle
    from lib.train.loop import move
    from lib.train.losses import compute_losses
    from lib.train.targets import smpl_targets

    spent: dict[str, float] = defaultdict(float)
    clips = 0
    model.train()
    tick = time.perf_counter()

    def lap(stage: str) -> None:
        nonlocal tick
        sync(device)
        now = time.perf_counter()
        spent[stage] += now - tick
        tick = now

    for batch in batches:
        batch = move(batch, device)
        lap("data")
        rot_mat, shape = model.refine_rotations(batch["pose2d"], batch["hybrik_pose"], batch["hybrik_shape"])
        lap("network")
        vertices, keypoints = model.posed_mesh_mm(rot_mat, shape)
        pred = {"rot_mat": rot_mat, "pose_aa": matrix_to_axis_angle(rot_mat).flatten(-2), "shape": shape,
                "vertices": vertices, "keypoint_3d": keypoints}  # MeshRefiner.forward's outputs
        lap("smpl_pred")
        with torch.no_grad():
            gt = smpl_targets(body, batch["gt_pose"], batch["gt_shape"])
        lap("smpl_gt")
        losses = compute_losses(pred, gt, task_cfg, task_cfg.loss_type)
        lap("loss")
        losses["total"].backward()
        lap("backward")
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        lap("optimizer")
        clips += batch["pose2d"].shape[0]
    return {**spent, "clips": clips}


def bench_training(name: str, config: Path, args: argparse.Namespace, device: torch.device) -> dict[str, Any]:
    """End-to-end clips/s of ``train_one_epoch`` and the per-stage breakdown, for one model size."""
    from lib.data.datasets import MeshFiles, build_train_sets
    from lib.runtime import DistInfo
    from lib.train.loop import train_one_epoch
    from lib.train.runner import make_loader, make_optimizer

    task_cfg, model, body = load_size(config, device, args.seed)
    dataset = build_train_sets(task_cfg, seed=args.seed, files=MeshFiles(task_cfg))[DATASET]
    optimizer = make_optimizer(model, task_cfg)
    steps = args.steps or (3 if args.quick else 20)
    warmup = 1 if args.quick else 3

    def batches(epoch: int, count: int):
        """``count`` batches after ``warmup`` untimed steps, from fresh epochs as needed (workers restart)."""
        def stream():
            for e in itertools.count(epoch):
                dataset.set_epoch(e)
                yield from make_loader(dataset, task_cfg.batch_size, args.seed, e, task_cfg, device, DistInfo(), False)
        it = stream()
        train_one_epoch(model, itertools.islice(it, warmup), optimizer, body, task_cfg, device, epoch=epoch,
                        pass_name=f"{name} warm-up")
        return itertools.islice(it, count)

    stats = train_one_epoch(model, batches(0, steps), optimizer, body, task_cfg, device, epoch=0, pass_name=name)
    spent = step_breakdown(model, body, batches(1, steps), optimizer, task_cfg, device)
    total = sum(spent[s] for s in STAGES)
    result = {
        "config": str(config), "dim_rep": task_cfg.dim_rep, "depth": task_cfg.depth, "num_heads": task_cfg.num_heads,
        "hidden_dim": task_cfg.hidden_dim, "batch_size": task_cfg.batch_size, "clip_len": task_cfg.clip_len,
        "num_workers": task_cfg.num_workers, "steps": steps,
        "train_one_epoch": {"clips": stats.clips, "seconds": stats.seconds,
                            "clips_per_s": stats.clips / max(stats.seconds, 1e-9),
                            "data_wait_fraction": stats.data_seconds / max(stats.seconds, 1e-9)},
        "breakdown_ms_per_step": {s: 1e3 * spent[s] / steps for s in STAGES},
        "breakdown_fraction": {s: spent[s] / max(total, 1e-9) for s in STAGES},
        "breakdown_clips_per_s": spent["clips"] / max(total, 1e-9),
    }
    log.info("training %s: %.1f clips/s (train_one_epoch), data wait %.0f %%", name,
             result["train_one_epoch"]["clips_per_s"], 100 * result["train_one_epoch"]["data_wait_fraction"])
    return result


# ---------------------------------------------------------------------------------------- evaluation

def split_rows(split, rows: np.ndarray, names: list[str]):
    """A split made of the frames ``rows`` of ``split``, their sequences renamed ``names`` (one per row)."""
    from lib.data.datasets import KEY_SOURCE, MeshSplit

    arrays: dict[str, Any] = {KEY_SOURCE: names}
    for key, value in split.arrays.items():
        if key != KEY_SOURCE:
            arrays[key] = value[rows] if isinstance(value, np.ndarray) else [value[i] for i in rows]
    return MeshSplit(arrays, split.dataset, split.split, f"{split.path} ({len(rows)} frames)", no_conf=split.no_conf)


def repeated_split(split, factor: int):
    """A test split holding every sequence ``factor`` times (copies renamed ``<source>#<k>``)."""
    rows = np.tile(np.arange(split.frames), factor)
    names = [f"{split.sequence_name(r)}#{k}" for k in range(factor) for r in range(split.frames)]
    return split_rows(split, rows, names)


def first_sequence(split):
    """A split of the first sequence only (the untimed warm-up of the evaluation)."""
    start, end = split.spans[0]
    rows = np.arange(start, end)
    return split_rows(split, rows, [split.sequence_name(r) for r in rows])


def _status_kib(field: str) -> float | None:
    """A ``VmRSS`` / ``VmHWM`` line of /proc/self/status, KiB (None off Linux)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return float(line.split()[1])
    except OSError:
        return None
    return None


def _reset_peak_rss() -> bool:
    """Reset the kernel's peak-RSS mark (VmHWM) of this process (Linux >= 4.0); False if not possible."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def eval_worker(factor: int, config: Path, args: argparse.Namespace) -> dict[str, Any]:
    """In a fresh process: evaluate a default-size model on the test split repeated ``factor`` times.

    An untimed warm-up evaluation of one sequence comes first (the first call of a process pays for
    allocator and kernel set-up); the peak-RSS mark is reset after it, so the peak and the "extra"
    memory are those of the measured evaluation.
    """
    import resource

    from lib.data.datasets import MeshFiles
    from lib.eval.evaluate import evaluate_split
    from lib.runtime import resolve_device

    device = resolve_device(args.device)
    task_cfg, model, body = load_size(config, device, args.seed)
    test = MeshFiles(task_cfg).split(DATASET, "test")
    evaluate_split(model, body, task_cfg, DATASET, device, split=first_sequence(test))  # warm-up, untimed
    split = repeated_split(test, factor)
    _ = split.pose2d  # normalised before measuring, as a loaded split would be
    before = _status_kib("VmRSS")
    reset = _reset_peak_rss()
    report = evaluate_split(model, body, task_cfg, DATASET, device, split=split)
    peak = _status_kib("VmHWM") if reset else None
    max_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux: the whole process's peak
    return {"factor": factor, "frames": report.frames, "sequences": report.sequences, "seconds": report.seconds,
            "frames_per_s": report.frames / max(report.seconds, 1e-9), "flip_test": report.protocol["flip_test"],
            "rss_before_eval_mib": before / KIB_PER_MIB if before else None,
            "peak_rss_during_eval_mib": peak / KIB_PER_MIB if peak else None,
            "eval_extra_mib": (peak - before) / KIB_PER_MIB if peak and before else None,
            "process_max_rss_mib": max_rss / KIB_PER_MIB}


def bench_evaluation(config: Path, args: argparse.Namespace) -> list[dict[str, Any]]:
    """``eval_worker`` for each factor, each in its own subprocess (a clean peak-memory mark)."""
    rows = []
    for factor in (EVAL_FACTORS[:2] if args.quick else EVAL_FACTORS):
        cmd = [sys.executable, "-m", "benchmarks.bench_speed", "--eval-worker", str(factor), "--worker-config",
               str(config), "--device", args.device, "--threads", str(args.threads), "--seed", str(args.seed)]
        proc = subprocess.run(cmd, cwd=common.REPO, capture_output=True, text=True, check=False)
        lines = [line for line in proc.stdout.splitlines() if line.startswith(RESULT_MARKER)]
        if proc.returncode or not lines:
            raise RuntimeError(f"evaluation worker x{factor} failed (exit {proc.returncode}):\n{proc.stderr[-2000:]}")
        rows.append(json.loads(lines[-1][len(RESULT_MARKER):]))
        log.info("evaluation x%d: %d frames, %.1f frames/s, peak RSS %.0f MiB (+%.0f MiB over the loaded process)",
                 factor, rows[-1]["frames"], rows[-1]["frames_per_s"], rows[-1]["peak_rss_during_eval_mib"] or -1,
                 rows[-1]["eval_extra_mib"] or -1)
    return rows


# ------------------------------------------------------------------------------------------- latency

def bench_latency(config: Path, args: argparse.Namespace, out: Path) -> dict[str, Any]:
    """Export a random-weight model with ``lib.deploy.export``, time eager PyTorch vs onnxruntime, profile."""
    from benchmarks import refiner_profile
    from lib.deploy.export import export_metadata, export_onnx, measure_latency, realistic_inputs
    from lib.model.checkpoint import model_signature

    for noisy in ("onnx_ir", "onnxscript"):  # one INFO line per rewritten node / deduplicated initializer
        logging.getLogger(noisy).setLevel(logging.WARNING)
    task_cfg, model, _ = load_size(config, torch.device("cpu"), args.seed)
    hyper_cfg, options = common.model_options()
    shapes = [(n, min(t, task_cfg.maxlen)) for n, t in LATENCY_SHAPES]
    metadata = export_metadata(clip_len=task_cfg.clip_len, sample_stride=task_cfg.sample_stride,
                               maxlen=task_cfg.maxlen, flip=task_cfg.flip, in_channels=model.in_channels,
                               signature=model_signature(task_cfg, hyper_cfg, options))
    info = export_onnx(model, out / common.RUNS_DIR / "speed_refiner.onnx", metadata, clip_len=task_cfg.clip_len)
    int8 = export_onnx(model, out / common.RUNS_DIR / "speed_refiner_int8.onnx", metadata, clip_len=task_cfg.clip_len,
                       quantize="int8")
    repeats = args.repeats or (2 if args.quick else 20)
    load_before = common.load_average()
    sgemm = refiner_profile.sgemm_gflops(args.threads)
    rows = measure_latency(model, info.path, shapes, threads=args.threads, repeats=repeats)
    inputs = {shape: realistic_inputs(*shape, model.in_channels, seed=2) for shape in shapes}
    sgemm_file = refiner_profile.write_sgemm_onnx(out / common.RUNS_DIR / "sgemm.onnx")
    int8_ms = ort_ms_alternating({"float32": info.path, "int8": int8.path}, [inputs[s] for s in shapes], args.threads,
                                 repeats, fixed={"sgemm": sgemm_file})
    load_after = common.load_average()
    flops = {shape: refiner_profile.flops_per_part(model, inputs[shape]) for shape in shapes}
    profiles = {f"({n}, {t})": refiner_profile.ort_profile(info.path, inputs[(n, t)], args.threads, repeats)
                for n, t in PROFILE_SHAPES if (n, t) in inputs}
    return {"config": str(config), "dim_rep": task_cfg.dim_rep, "depth": task_cfg.depth, "weights": "random",
            "threads": args.threads, "repeats": repeats, "export_seconds": info.seconds,
            "onnx_mb": info.size_bytes / 1e6, "opset": info.opset, "sgemm_gflops": sgemm,
            "load_average_before": load_before, "load_average_after": load_after,
            "int8_onnx_mb": int8.size_bytes / 1e6,
            "shapes": [{"n": r.n, "t": r.t, "torch_ms": r.torch_ms, "onnxruntime_ms": r.onnxruntime_ms,
                        "torch_ms_per_clip": r.torch_ms / r.n, "onnxruntime_ms_per_clip": r.onnxruntime_ms / r.n,
                        "speedup": r.torch_ms / r.onnxruntime_ms, "gflop": sum(flops[(r.n, r.t)].values()) / 1e9,
                        "alternating_ms": {name: ms[i] for name, ms in int8_ms.items() if name != "sgemm"},
                        "flop_floor_ms": sum(flops[(r.n, r.t)].values()) / 1e9 / sgemm * 1e3,
                        "alternating_sgemm_gflops": refiner_profile.SGEMM_FLOP / int8_ms["sgemm"][i] / 1e6,
                        "alternating_flop_floor_ms": (sum(flops[(r.n, r.t)].values()) / refiner_profile.SGEMM_FLOP
                                                      * int8_ms["sgemm"][i]),
                        "gflop_per_part": {k: v / 1e9 for k, v in flops[(r.n, r.t)].items()}}
                       for i, r in enumerate(rows)],
            "onnxruntime_profile": profiles}


def ort_ms_alternating(paths: dict[str, Path], inputs: list[dict[str, np.ndarray]], threads: int,
                       repeats: int, block: int = 5,
                       fixed: dict[str, tuple[Path, dict[str, np.ndarray]]] | None = None) -> dict[str, list[float]]:
    """Median ms per call of each ONNX file (onnxruntime, ``threads``) on each input, the files taken in turn
    in blocks of ``block`` calls (a changing load hits all alike), after one untimed block each.

    ``fixed``: more files, each with its own feeds (e.g. ``refiner_profile.write_sgemm_onnx``), timed in
    the same turns on every input; their medians are keyed by their names like the others'.
    """
    from lib.deploy.onnx_runner import cpu_session

    fixed = fixed or {}
    sessions = {name: cpu_session(path, threads) for name, path in paths.items()}
    sessions.update({name: cpu_session(path, threads) for name, (path, _) in fixed.items()})
    medians: dict[str, list[float]] = {name: [] for name in sessions}
    for feeds in inputs:
        times: dict[str, list[float]] = {name: [] for name in sessions}
        for turn in range(-1, -(-repeats // block)):
            for name, session in sessions.items():
                session_feeds = fixed[name][1] if name in fixed else feeds
                for _ in range(block):
                    start = time.perf_counter()
                    session.run(None, session_feeds)
                    if turn >= 0:
                        times[name].append(time.perf_counter() - start)
        for name in sessions:
            medians[name].append(1e3 * float(np.median(times[name])))
    return medians


def bench_int8(args: argparse.Namespace, out: Path) -> dict[str, Any]:
    """A trained checkpoint exported in float32 and int8: each file's max deviation from eager PyTorch at
    ``INT8_SHAPES`` (``verify_onnx``) and the scores of eager, float32 and int8 on the 3DPW test split."""
    from benchmarks.bench_online import window_predictor
    from lib.body.smpl import BodyModel
    from lib.data.datasets import MeshFiles
    from lib.deploy.export import DEFAULT_TOLERANCES, export_metadata, export_onnx, verify_onnx
    from lib.deploy.model_io import load_refiner_from_checkpoint
    from lib.deploy.onnx_runner import RefinerSession
    from lib.deploy.quantize import QUANTIZED_TOLERANCES
    from lib.errors import ConfigError
    from lib.eval.baselines import input_predictor, score_split
    from lib.windowed import torch_window_fn, with_flip

    if args.checkpoint is None:
        raise ConfigError("--parts int8 needs --checkpoint (a trained best_epoch.bin; make demo writes "
                          "demo_out/checkpoint/best_epoch.bin)")
    model, task_cfg, ckpt = load_refiner_from_checkpoint(args.checkpoint)
    metadata = export_metadata(clip_len=task_cfg.clip_len, sample_stride=task_cfg.sample_stride,
                               maxlen=task_cfg.maxlen, flip=task_cfg.flip, in_channels=model.in_channels,
                               signature={}, checkpoint=args.checkpoint, epoch=ckpt.get("epoch"))
    runs = out / common.RUNS_DIR
    files = {name: export_onnx(model, runs / f"int8_check_{name}.onnx", metadata, clip_len=task_cfg.clip_len,
                               quantize=quantize).path for name, quantize in (("float32", "none"), ("int8", "int8"))}
    parity = {}
    for name, tolerances in (("float32", DEFAULT_TOLERANCES), ("int8", QUANTIZED_TOLERANCES)):
        report = verify_onnx(model, files[name], INT8_SHAPES, tolerances, threads=args.threads)
        parity[name] = {"ok": report.ok, "tolerances": dict(tolerances),
                        "max_abs": {k: max(p.max_abs[k] for p in report.parity) for k in report.parity[0].max_abs}}
    eager = torch_window_fn(model)
    fns = {"eager": eager, **{f"onnxruntime {name}": RefinerSession(path, args.threads).window_fn()
                              for name, path in files.items()}}
    predictors = {"input": input_predictor,
                  **{name: window_predictor(with_flip(fn) if task_cfg.flip else fn, None) for name, fn in fns.items()}}
    body = BodyModel(task_cfg.data_root)
    scores = score_split(predictors, body, task_cfg, MeshFiles(task_cfg).split(DATASET, "test"), torch.device("cpu"))
    log.info("int8: max |vertices - eager| %.3f mm (float32 %.1e mm); 3DPW test MPJPE float32 %.2f, int8 %.2f mm",
             parity["int8"]["max_abs"]["vertices"], parity["float32"]["max_abs"]["vertices"],
             scores.metrics["onnxruntime float32"]["mpjpe"], scores.metrics["onnxruntime int8"]["mpjpe"])
    return {"checkpoint": str(args.checkpoint), "checkpoint_epoch": ckpt.get("epoch"), "dim_rep": task_cfg.dim_rep,
            "depth": task_cfg.depth, "flip": task_cfg.flip, "parity_shapes": [list(s) for s in INT8_SHAPES],
            "parity": parity, "dataset": DATASET, "frames": scores.frames, "sequences": scores.sequences,
            "metrics": scores.metrics}


def latency_tables(lat: dict[str, Any]) -> list[tuple[str, list[str], list[list[Any]]]]:
    """(title, headers, rows) of the latency, the parts and the node types."""
    headers = ["(N, T)", "PyTorch eager ms", "onnxruntime ms", "ORT speed-up", "GFLOP", "FLOP floor ms",
               "ORT / floor", "eager / floor"]
    rows = [[f"({r['n']}, {r['t']})", r["torch_ms"], r["onnxruntime_ms"], f"{r['speedup']:.2f}x", r["gflop"],
             r["flop_floor_ms"], f"{r['onnxruntime_ms'] / r['flop_floor_ms']:.2f}x",
             f"{r['torch_ms'] / r['flop_floor_ms']:.2f}x"] for r in lat["shapes"]]
    tables = [(f"Inference latency (model {lat['dim_rep']}x{lat['depth']}, random weights, {lat['threads']} threads, "
               f"median of {lat['repeats']}, eager and onnxruntime in one process; outputs include the SMPL mesh; "
               f"sgemm {lat['sgemm_gflops']:.0f} GFLOP/s; load average {lat['load_average_before']} before, "
               f"{lat['load_average_after']} after)", headers, rows)]
    headers = ["(N, T)", "ORT float32 ms", "ORT int8 ms", "int8 speed-up", "float32 ORT / floor",
               "int8 ORT / float32 floor", "ORT sgemm GFLOP/s (same turns)", "float32 ORT / same-turn floor"]
    rows = [[f"({r['n']}, {r['t']})", r["alternating_ms"]["float32"], r["alternating_ms"]["int8"],
             f"{r['alternating_ms']['float32'] / r['alternating_ms']['int8']:.2f}x",
             f"{r['alternating_ms']['float32'] / r['flop_floor_ms']:.2f}x",
             f"{r['alternating_ms']['int8'] / r['flop_floor_ms']:.2f}x",
             r.get("alternating_sgemm_gflops", float("nan")),
             f"{r['alternating_ms']['float32'] / r.get('alternating_flop_floor_ms', float('nan')):.2f}x"]
            for r in lat["shapes"] if "alternating_ms" in r]
    if rows:
        tables.append((f"onnxruntime float32 vs int8 dynamic quantisation of the linear layers (same random model, "
                       f"{lat['threads']} threads, median of {lat['repeats']}, the two files and a 1024 x 1024 "
                       f"onnxruntime sgemm taken in turn in blocks of 5 calls, after the table above; int8 file "
                       f"{lat['int8_onnx_mb']:.1f} MB vs {lat['onnx_mb']:.1f} MB; the int8 ratio is against the float32 "
                       f"FLOP floor; the last column's floor uses the sgemm timed in the same turns)", headers, rows))
    profiles = lat.get("onnxruntime_profile", {})
    first = lat["shapes"][0]
    flops_total = sum(first["gflop_per_part"].values())
    headers = ["part", f"GFLOP ({first['n']}, {first['t']})", "FLOP share",
               *(f"ORT time share {shape}" for shape in profiles)]
    rows = [[part, gflop, f"{100 * gflop / flops_total:.1f} %",
             *(f"{100 * p['by_part_ms'][part] / max(p['kernel_ms'], 1e-9):.1f} %" for p in profiles.values())]
            for part, gflop in first["gflop_per_part"].items()]
    tables.append(("Where the time goes: FLOPs per part (torch.utils.flop_counter: products only) and onnxruntime's "
                   "profiler per part", headers, rows))
    ops = list(dict.fromkeys(op for p in profiles.values() for op in list(p["by_op_ms"])[:TOP_NODE_TYPES]))
    headers = ["node type", *(f"{label} {shape}" for shape in profiles for label in ("ms", "share"))]
    rows = [[op, *(value for p in profiles.values() for value in
                   (p["by_op_ms"].get(op, 0.0), f"{100 * p['by_op_ms'].get(op, 0.0) / max(p['kernel_ms'], 1e-9):.1f} %"))]
            for op in ops]
    tables.append(("onnxruntime's profiler: top node types (kernel ms per call; "
                   + ", ".join(f"{shape}: {p['nodes']} nodes" for shape, p in profiles.items()) + ")", headers, rows))
    return tables


def int8_tables(q: dict[str, Any]) -> list[tuple[str, list[str], list[list[Any]]]]:
    """(title, headers, rows) of the int8 parity and accuracy."""
    headers = ["file", "vertices mm", "keypoint_3d mm", "rot_mat", "shape", "tolerance (vertices mm)", "within"]
    rows = [[name, f"{p['max_abs']['vertices']:.3g}", f"{p['max_abs']['keypoint_3d']:.3g}",
             f"{p['max_abs']['rot_mat']:.2g}", f"{p['max_abs']['shape']:.2g}", f"{p['tolerances']['vertices']:g}",
             "yes" if p["ok"] else "NO"] for name, p in q["parity"].items()]
    shapes = ", ".join(f"({n}, {t})" for n, t in q["parity_shapes"])
    tables = [(f"int8 vs float32 export of {q['checkpoint']} (model {q['dim_rep']}x{q['depth']}, epoch "
               f"{q['checkpoint_epoch']}): max abs deviation from eager PyTorch over (N, T) = {shapes}, fresh realistic "
               f"random inputs (lib.deploy.export.verify_onnx)", headers, rows)]
    headers = ["variant", *(f"{m} mm" for m in METRICS_SHOWN)]
    metrics = q["metrics"]
    rows = [[name, *(f"{m[k]:.3f}" for k in METRICS_SHOWN)] for name, m in metrics.items()]
    rows.append(["int8 - float32", *(f"{metrics['onnxruntime int8'][k] - metrics['onnxruntime float32'][k]:+.3f}"
                                     for k in METRICS_SHOWN)])
    tables.append((f"Accuracy on the synthetic {q['dataset']} test split ({q['frames']} frames, {q['sequences']} "
                   f"sequences, flip test {q['flip']}; accel_err in mm/frame^2): HybrIK's input, eager PyTorch, "
                   f"onnxruntime float32 and int8", headers, rows))
    return tables


# -------------------------------------------------------------------------------------------- report

def tables(result: dict[str, Any]) -> tuple[str, str]:
    """(console text, markdown) of the three measurements present in ``result``."""
    text, md = [], []
    if "train" in result:
        headers = ["size", "dim x depth", "batch x T", "clips/s", "data wait", *(f"{s} ms" for s in STAGES)]
        rows = [[name, f"{r['dim_rep']}x{r['depth']}", f"{r['batch_size']} x {r['clip_len']}",
                 r["train_one_epoch"]["clips_per_s"], f"{100 * r['train_one_epoch']['data_wait_fraction']:.0f} %",
                 *(f"{r['breakdown_ms_per_step'][s]:.1f} ({100 * r['breakdown_fraction'][s]:.0f}%)" for s in STAGES)]
                for name, r in result["train"].items()]
        title = ("Training (3DPW clips; clips/s of train_one_epoch with the run's DataLoader; per-stage ms per step "
                 "and share)")
        text += [title, common.text_table(headers, rows, ".1f"), ""]
        md += [f"**{title}**", "", common.markdown_table(headers, rows, ".1f"), ""]
    if "eval" in result:
        headers = ["test set", "frames", "frames/s", "peak RSS MiB", "extra over loaded MiB"]
        rows = [[f"{r['factor']}x", r["frames"], r["frames_per_s"], r["peak_rss_during_eval_mib"],
                 r["eval_extra_mib"]] for r in result["eval"]["rows"]]
        title = (f"Evaluation (evaluate_split, {result['eval']['size']} model, flip test "
                 f"{result['eval']['rows'][0]['flip_test']}; one subprocess per size)")
        text += [title, common.text_table(headers, rows, ".1f"), ""]
        md += [f"**{title}**", "", common.markdown_table(headers, rows, ".1f"), ""]
    for part, make in (("latency", latency_tables), ("int8", int8_tables)):
        if part not in result:
            continue
        for title, headers, rows in make(result[part]):
            text += [title, common.text_table(headers, rows, ".1f"), ""]
            md += [f"**{title}**", "", common.markdown_table(headers, rows, ".1f"), ""]
    machine = f"machine: {common.machine_line(result['machine'])}"
    return "\n".join(text + [machine]), "\n".join(md + [f"Machine: {common.machine_line(result['machine'])}.", ""])


def run(args: argparse.Namespace) -> dict[str, Any]:
    from lib.runtime import resolve_device

    common.setup(args.threads)
    out = common.results_dir(args.out, args.quick)
    device = resolve_device(args.device)
    configs = size_configs(args, out)
    result: dict[str, Any] = {"benchmark": "speed", "quick": args.quick, "dataset": DATASET}
    if "train" in args.parts:
        result["train"] = {name: bench_training(name, path, args, device) for name, path in configs.items()}
    measured = "demo" if args.quick else "default"  # --quick: the smallest model, to stay fast
    if "eval" in args.parts:
        result["eval"] = {"size": measured, "config": str(configs[measured]),
                          "rows": bench_evaluation(configs[measured], args)}
    if "latency" in args.parts:
        result["latency"] = bench_latency(configs[measured], args, out)
    if "int8" in args.parts:
        result["int8"] = bench_int8(args, out)
    result["machine"] = common.machine_info()
    text, md = tables(result)
    common.publish(out, "speed", result, text, md)
    return result


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.eval_worker is not None:
        common.setup(args.threads)
        print(RESULT_MARKER + json.dumps(eval_worker(args.eval_worker, args.worker_config, args)), flush=True)
        return 0
    return common.run_cli(run, args)


if __name__ == "__main__":
    raise SystemExit(main())

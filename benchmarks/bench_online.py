"""Online refinement: accuracy against the lookahead K, and the time per frame through onnxruntime.

    python -m benchmarks.bench_online --checkpoint benchmarks/results/runs/accuracy_refiner/best_epoch.bin
    python -m benchmarks.bench_online            # trains configs/mesh/demo.yaml first (as bench_accuracy)
    python -m benchmarks.bench_online --quick    # a check that it runs: tiny data, tiny model, 1 epoch

1. **Accuracy** on the synthetic 3DPW and H36M test splits (every frame once, the protocol of
   ``--evaluate``): HybrIK's input, a causal One-Euro filter tuned on the dataset's TRAINING split by
   MPJPE (``lib.eval.baselines``), and one checkpoint refined offline (``lib.windowed``) and online at
   each K (``lib.deploy.stream``: frame f leaves when f + K has arrived), flip as the checkpoint's config.
2. **Latency** per frame through onnxruntime (``--threads``, default 2) of the demo size (the trained
   weights) and the default size (``TaskConfig``'s model sizes on the demo recipe, random weights:
   the time does not depend on the values), each K, flip on and off: the wall time of
   ``StreamRefiner.push`` over ``--frames`` frames after the first ``clip_len x sample_stride``
   (shorter windows) and a warm-up; p50, p99, max. The HybrIK stage (HRNet-W48 with its flip test,
   random weights, exported with ``lib.deploy.hybrik_export``, crop included) is timed per frame alone
   and then in front of the refiner, one frame at a time (HybrIK stage included).
3. **What limits it**: FLOPs of one window forward (``torch.utils.flop_counter``) x windows per frame,
   against this CPU's measured float32 GFLOP/s (a 1024^3 matmul on the same threads).

Writes ``online.json`` and ``online.md`` under ``--out`` (``--quick``: ``--out``/quick).
"""

from __future__ import annotations

import argparse
import logging
import shutil
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from benchmarks import common

log = logging.getLogger("benchmarks.online")

DATASETS = ("pw3d", "h36m")
LOOKAHEADS = (0, 2, 4, 8)
SHOWN = ("mpjpe", "pa_mpjpe", "accel_err")
TARGET_P99_MS = 33.0          # 30 fps
TARGET_K = 4                  # ... for K <= 4, and K = 4 within 10 % of the offline MPJPE
TARGET_MPJPE_GAP = 0.10
HYBRIK_FRAMES = 20            # frames timed through HybrIK (about 0.2-1 s each on 2 cores)
FRAME_HW = (1080, 1920)       # a Full-HD frame for HybrIK's crop
QUICK_ONE_EURO = dict(min_cutoffs=(1.0,), betas=(0.0, 0.3))
MATMUL_N = 1024
ACCURACY_THREADS = 1          # scores do not depend on it; one thread runs single windows fastest on a busy CPU


def build_parser() -> argparse.ArgumentParser:
    parser = common.benchmark_parser(
        "online", __doc__.splitlines()[0],
        config_help="task YAML of the refiner (default: configs/mesh/demo.yaml); its sizes are the 'demo' size",
        quick_help="tiny data_root, tiny model, 1 epoch, few frames: checks that the script runs",
        threads_help="torch threads and onnxruntime intra_op_num_threads (default 2)")
    parser.add_argument("--checkpoint", type=Path, default=None,
                        help="reuse this best_epoch.bin (trained with --config) instead of training")
    parser.add_argument("--lookaheads", type=int, nargs="+", default=list(LOOKAHEADS), help="K values (default 0 2 4 8)")
    parser.add_argument("--frames", type=int, default=None, help="timed frames per latency row (default 200; quick 20)")
    parser.add_argument("--parts", nargs="+", choices=("accuracy", "latency"), default=["accuracy", "latency"],
                        help="which measurements to run (default: both)")
    parser.add_argument("--hybrik", action=argparse.BooleanOptionalAction, default=True,
                        help="time the HybrIK stage (HRNet-W48 export, about a minute) (default on)")
    return parser


# ------------------------------------------------------------------------------------------ accuracy


def window_predictor(window_fn, lookahead: int | None):
    """A ``lib.eval.baselines.Predictor`` refining a test sequence offline (``lookahead`` None) or online."""
    from lib.deploy.stream import refine_stream
    from lib.windowed import refine_sequence

    def predict(sequence, labels):
        arrays = [labels[k].numpy() for k in ("pose2d", "hybrik_pose", "hybrik_shape")]
        plan = dict(clip_len=sequence.clip_len, sample_stride=sequence.sample_stride, overlap=sequence.plan.overlap)
        if lookahead is None:
            rot, shape = refine_sequence(window_fn, *arrays, **plan)
        else:
            rot, shape = refine_stream(window_fn, *arrays, lookahead=lookahead, **plan)
        return torch.from_numpy(rot).float(), torch.from_numpy(shape).float()

    return predict


def bench_accuracy(args: argparse.Namespace, task_cfg, onnx_path: Path, checkpoint: Path, epoch: int | None
                   ) -> dict[str, Any]:
    """Scores of the checkpoint (through its ONNX export: the same results to ~1e-6, README) offline and online."""
    from lib.body.smpl import BodyModel
    from lib.data.datasets import MeshFiles
    from lib.deploy.onnx_runner import RefinerSession
    from lib.eval.baselines import baseline_predictor, input_predictor, one_euro_grid, score_split, tune_baseline
    from lib.eval.evaluate import DATASET_FPS
    from lib.runtime import resolve_device
    from lib.windowed import with_flip

    device = resolve_device(args.device)
    body = BodyModel(task_cfg.data_root).to(device)
    fn = RefinerSession(onnx_path, ACCURACY_THREADS).window_fn()
    fn = with_flip(fn) if task_cfg.flip else fn
    files = MeshFiles(task_cfg)
    grid = one_euro_grid(**QUICK_ONE_EURO) if args.quick else one_euro_grid()
    out: dict[str, Any] = {"checkpoint": str(checkpoint), "checkpoint_epoch": epoch, "back_end": "onnxruntime",
                           "flip": task_cfg.flip, "clip_len": task_cfg.clip_len,
                           "sample_stride": task_cfg.sample_stride, "datasets": {}}
    for dataset in DATASETS:
        fps = DATASET_FPS[dataset]
        tuned = tune_baseline(grid, body, task_cfg, files.split(dataset, "train"), device, fps, show_progress=True)
        predictors = {"input": input_predictor, "one_euro": baseline_predictor(tuned.best, fps),
                      "offline": window_predictor(fn, None),
                      **{f"K={k}": window_predictor(fn, k) for k in args.lookaheads}}
        start = time.perf_counter()
        scores = score_split(predictors, body, task_cfg, files.split(dataset, "test"), device, show_progress=True)
        metrics = scores.metrics
        out["datasets"][dataset] = {
            "fps": fps, "frames": scores.frames, "sequences": scores.sequences, "metrics": metrics,
            "ratio_to_input": {name: {k: m[k] / metrics["input"][k] for k in SHOWN} for name, m in metrics.items()},
            "mpjpe_gap_to_offline": {name: m["mpjpe"] / metrics["offline"]["mpjpe"] - 1.0
                                     for name, m in metrics.items() if name.startswith("K=")},
            "one_euro": {key: v for key, v in tuned.to_json().items() if key != "grid"}, "seconds": time.perf_counter() - start}
    return out


# ------------------------------------------------------------------------------------------- latency


def percentiles(ms: list[float]) -> dict[str, float]:
    values = np.asarray(ms)
    return {"p50": float(np.percentile(values, 50)), "p99": float(np.percentile(values, 99)),
            "max": float(values.max()), "mean": float(values.mean()), "frames": int(len(values))}


def push_times(window_fn, inputs: dict[str, np.ndarray], clip_len: int, sample_stride: int, lookahead: int,
               skip: int, before_push: Callable[[int], None] | None = None) -> list[float]:
    """Wall time (ms) of each ``StreamRefiner.push`` (plus ``before_push(frame)``, e.g. HybrIK) after ``skip``."""
    from lib.deploy.stream import StreamRefiner

    stream = StreamRefiner(window_fn, clip_len=clip_len, lookahead=lookahead, sample_stride=sample_stride)
    times = []
    for f in range(len(inputs["hybrik_theta"])):
        start = time.perf_counter()
        if before_push is not None:
            before_push(f)
        stream.push(inputs["pose2d"][f], inputs["hybrik_theta"][f], inputs["hybrik_shape"][f])
        if f >= skip:
            times.append((time.perf_counter() - start) * 1e3)
    return times


def window_gflops(model, clip_len: int) -> float:
    """GFLOPs of one window forward of the refiner (``refine_rotations``, N = 1), counted by torch."""
    from torch.utils.flop_counter import FlopCounterMode

    from lib.deploy.export import realistic_inputs

    x = {k: torch.from_numpy(v) for k, v in realistic_inputs(1, clip_len, model.in_channels).items()}
    counter = FlopCounterMode(display=False)
    with torch.no_grad(), counter:
        model.refine_rotations(x["pose2d"], x["hybrik_theta"], x["hybrik_shape"])
    return counter.get_total_flops() / 1e9


def measured_gflops_per_s(repeats: int = 10) -> float:
    """float32 matmul throughput of this CPU on the current torch threads (GFLOP/s, median of repeats)."""
    from lib.timing import median_ms

    a, b = torch.randn(MATMUL_N, MATMUL_N), torch.randn(MATMUL_N, MATMUL_N)
    ms = median_ms(lambda: a @ b, repeats=repeats, warmup=2)
    return 2.0 * MATMUL_N ** 3 / (ms * 1e-3) / 1e9


def hybrik_stage(args: argparse.Namespace, data_root: Path, out: Path):
    """(per-frame HybrIK callable, its export info): HRNet-W48 with flip test, random weights, ONNX, 1 frame."""
    from lib.deploy.hybrik_export import export_hybrik_onnx, onnx_session
    from lib.hybrik.model import build_hybrik
    from lib.hybrik.preprocess import hybrik_batch

    width = 8 if args.quick else 48
    torch.manual_seed(args.seed)
    info = export_hybrik_onnx(build_hybrik(data_root, width=width), out / common.RUNS_DIR / f"online_hybrik_w{width}.onnx",
                              flip_test=True, exporter="torchscript")
    session = onnx_session(info.path, args.threads)
    rng = np.random.default_rng(args.seed)
    frame = rng.integers(0, 255, (*FRAME_HW, 3), dtype=np.uint8)
    box = np.array([[760.0, 240.0, 1160.0, 1000.0]])  # a standing person in the middle of the frame

    def run(_: int) -> None:
        image, bbox, centre = hybrik_batch([frame], box)
        session.run(None, {"input_image": image, "bbox": bbox, "image_center": centre})

    return run, {"width": width, "onnx_mb": info.size_bytes / 1e6, "export_seconds": info.seconds}


def export_sizes(args: argparse.Namespace, config: Path, checkpoint: Path | None, out: Path) -> dict[str, Any]:
    """{size: {task_cfg, model, weights, path}}: 'demo' (the checkpoint's weights when given) and 'default'
    (``TaskConfig``'s model sizes on the same recipe, random weights), each exported by ``lib.deploy.export``."""
    from lib.config.task import load_task_config
    from lib.deploy.export import export_metadata, export_onnx
    from lib.deploy.model_io import load_refiner
    from lib.model.build import build_model
    from lib.model.checkpoint import model_signature

    for noisy in ("onnx_ir", "onnxscript"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    hyper_cfg, options = common.model_options()
    runs = out / common.RUNS_DIR
    configs = {"demo": config, "default": common.write_config(
        runs / "online_default.yaml", base=config,
        **({"dim_rep": 32, "depth": 2, "num_heads": 4} if args.quick else common.default_size_changes()))}
    sizes = {}
    for name, path in configs.items():
        task_cfg = load_task_config(path)
        trained = name == "demo" and checkpoint is not None
        if trained:
            model, ckpt = load_refiner(checkpoint, task_cfg, hyper_cfg, options)
        else:
            torch.manual_seed(args.seed)
            model, ckpt = build_model(task_cfg, hyper_cfg, options).eval(), {}
        metadata = export_metadata(clip_len=task_cfg.clip_len, sample_stride=task_cfg.sample_stride,
                                   maxlen=task_cfg.maxlen, flip=task_cfg.flip, in_channels=model.in_channels,
                                   signature=model_signature(task_cfg, hyper_cfg, options))
        info = export_onnx(model, runs / f"online_{name}.onnx", metadata, clip_len=task_cfg.clip_len)
        sizes[name] = {"task_cfg": task_cfg, "model": model, "weights": "trained" if trained else "random",
                       "epoch": ckpt.get("epoch"), "path": info.path, "onnx_mb": info.size_bytes / 1e6}
    return sizes


def bench_latency(args: argparse.Namespace, sizes: dict[str, Any], out: Path) -> dict[str, Any]:
    from lib.deploy.export import realistic_inputs
    from lib.deploy.onnx_runner import RefinerSession
    from lib.model.build import count_trainable_parameters
    from lib.windowed import refine_sequence, with_flip

    frames = args.frames or (20 if args.quick else 200)
    gflops_per_s = measured_gflops_per_s()
    result: dict[str, Any] = {"threads": args.threads, "frames_per_row": frames,
                              "cpu_gflops_per_s": gflops_per_s, "sizes": {}}
    hybrik = None
    if args.hybrik:
        run_hybrik, result["hybrik"] = hybrik_stage(args, Path(sizes["demo"]["task_cfg"].data_root), out)
        hybrik_ms = []
        run_hybrik(0)  # warm-up
        for f in range(HYBRIK_FRAMES if not args.quick else 3):
            start = time.perf_counter()
            run_hybrik(f)
            hybrik_ms.append((time.perf_counter() - start) * 1e3)
        result["hybrik"]["ms_per_frame"] = percentiles(hybrik_ms)
        hybrik = run_hybrik
    for name, entry in sizes.items():
        task_cfg, model = entry["task_cfg"], entry["model"]
        session = RefinerSession(entry["path"], args.threads)
        skip = task_cfg.clip_len * task_cfg.sample_stride + 5  # full windows only, ORT warmed up
        inputs = {k: v[0] for k, v in realistic_inputs(1, frames + skip, model.in_channels, seed=args.seed).items()}
        window = window_gflops(model, task_cfg.clip_len)
        size: dict[str, Any] = {
            "dim_rep": task_cfg.dim_rep, "depth": task_cfg.depth, "num_heads": task_cfg.num_heads,
            "hidden_dim": task_cfg.hidden_dim, "parameters_m": count_trainable_parameters(model) / 1e6,
            "weights": entry["weights"], "clip_len": task_cfg.clip_len, "sample_stride": task_cfg.sample_stride,
            "config_flip": task_cfg.flip, "onnx_mb": entry["onnx_mb"], "window_gflops": window, "rows": []}
        step = task_cfg.clip_len - task_cfg.clip_len // 2
        for flip in (True, False):
            fn = with_flip(session.window_fn()) if flip else session.window_fn()
            passes = 2 if flip else 1
            start = time.perf_counter()
            refine_sequence(fn, *(inputs[k] for k in ("pose2d", "hybrik_theta", "hybrik_shape")),
                            clip_len=task_cfg.clip_len, sample_stride=task_cfg.sample_stride)
            size["offline_ms_per_frame" + ("" if flip else "_no_flip")] = \
                (time.perf_counter() - start) * 1e3 / len(inputs["hybrik_theta"])
            for k in args.lookaheads:
                ms = push_times(fn, inputs, task_cfg.clip_len, task_cfg.sample_stride, k, skip)
                # while K < a window (per phase): the window ending at the newest frame; else the offline grid's
                windows_per_frame = 1.0 if k < task_cfg.clip_len * task_cfg.sample_stride else 1.0 / step
                size["rows"].append({"flip": flip, "lookahead": k, "ms": percentiles(ms),
                                     "gflops_per_frame": window * passes * windows_per_frame,
                                     "floor_ms": window * passes * windows_per_frame / gflops_per_s * 1e3})
        if hybrik is not None:
            fn = with_flip(session.window_fn()) if task_cfg.flip else session.window_fn()
            short = {key: v[:skip + (3 if args.quick else HYBRIK_FRAMES)] for key, v in inputs.items()}
            included = push_times(fn, short, task_cfg.clip_len, task_cfg.sample_stride, TARGET_K, skip,
                                  before_push=lambda f: hybrik(f) if f >= skip else None)
            size["with_hybrik"] = {"lookahead": TARGET_K, "flip": task_cfg.flip, "ms": percentiles(included)}
        result["sizes"][name] = size
    return result


# -------------------------------------------------------------------------------------------- report


def verdicts(result: dict[str, Any]) -> dict[str, Any]:
    """The issue's targets: default size p99 < 33 ms for K <= 4 (config's flip), K = 4 within 10 % of offline."""
    out: dict[str, Any] = {}
    lat = result.get("latency")
    if lat:
        default = lat["sizes"]["default"]
        rows = [r for r in default["rows"] if r["lookahead"] <= TARGET_K and r["flip"] == default["config_flip"]]
        worst = max(r["ms"]["p99"] for r in rows) if rows else None
        out["default_p99_ms_k_le_4"] = worst
        out["latency_target_met"] = worst is not None and worst < TARGET_P99_MS
        out["latency_over_target_ms"] = None if worst is None else max(0.0, worst - TARGET_P99_MS)
    acc = result.get("accuracy")
    if acc and TARGET_K in result["lookaheads"]:
        gaps = {d: v["mpjpe_gap_to_offline"][f"K={TARGET_K}"] for d, v in acc["datasets"].items()}
        out["k4_mpjpe_gap"] = gaps
        out["accuracy_target_met"] = all(g <= TARGET_MPJPE_GAP for g in gaps.values())
    return out


def tables(result: dict[str, Any]) -> tuple[str, str]:
    text: list[str] = []
    md: list[str] = []
    acc = result.get("accuracy")
    if acc:
        headers = ["method", "MPJPE (mm)", "PA-MPJPE (mm)", "accel (mm/frame^2)", "MPJPE / input", "PA / input",
                   "accel / input", "MPJPE vs offline"]
        for dataset, v in acc["datasets"].items():
            m, r = v["metrics"], v["ratio_to_input"]
            order = ["input", "one_euro", *[f"K={k}" for k in result["lookaheads"]], "offline"]
            names = {"input": "HybrIK input", "one_euro": f"One-Euro (causal) {v['one_euro']['best_label'][8:]}",
                     "offline": "refiner offline"}
            rows = [[names.get(n, f"refiner online {n}"), m[n]["mpjpe"], m[n]["pa_mpjpe"], m[n]["accel_err"],
                     r[n]["mpjpe"], r[n]["pa_mpjpe"], r[n]["accel_err"],
                     f"{100 * v['mpjpe_gap_to_offline'][n]:+.1f} %" if n.startswith("K=") else "-"]
                    for n in order]
            title = (f"{dataset} test split ({v['frames']} frames, {v['sequences']} sequences, {v['fps']:g} fps), "
                     f"checkpoint epoch {acc['checkpoint_epoch']}, flip {acc['flip']}, clip_len {acc['clip_len']}")
            text += [title, common.text_table(headers, rows), ""]
            md += [f"**Accuracy against the lookahead K**: {title}.", "", common.markdown_table(headers, rows), ""]
    lat = result.get("latency")
    if lat:
        headers = ["model", "flip", "K", "p50 ms", "p99 ms", "max ms", "p99 vs 33 ms", "GFLOP / frame",
                   "floor ms", "offline ms / frame"]
        rows = []
        for name, s in lat["sizes"].items():
            label = f"{name} {s['dim_rep']}x{s['depth']} ({s['parameters_m']:.2f} M, {s['weights']})"
            for r in s["rows"]:
                offline = s["offline_ms_per_frame" + ("" if r["flip"] else "_no_flip")]
                rows.append([label, "on" if r["flip"] else "off", r["lookahead"], r["ms"]["p50"], r["ms"]["p99"],
                             r["ms"]["max"], f"{r['ms']['p99'] - TARGET_P99_MS:+.1f}", r["gflops_per_frame"],
                             r["floor_ms"], offline])
        title = (f"Time per frame of StreamRefiner.push through onnxruntime, {lat['threads']} threads, HybrIK stage "
                 f"excluded, {lat['frames_per_row']} frames per row (full windows); floor = GFLOP per frame / "
                 f"{lat['cpu_gflops_per_s']:.1f} GFLOP/s (this CPU's float32 matmul on the same threads)")
        text += [title, common.text_table(headers, rows), ""]
        md += [f"**Latency**: {title}.", "", common.markdown_table(headers, rows), ""]
        if "hybrik" in lat:
            h = lat["hybrik"]
            hybrik_rows = [[f"HybrIK HRNet-W{h['width']} + flip (crop included)", h["ms_per_frame"]["p50"],
                            h["ms_per_frame"]["p99"], h["ms_per_frame"]["max"]]]
            for name, s in lat["sizes"].items():
                if "with_hybrik" in s:
                    w = s["with_hybrik"]
                    hybrik_rows.append([f"HybrIK + {name} refiner, K={w['lookahead']}, flip {'on' if w['flip'] else 'off'}",
                                        w["ms"]["p50"], w["ms"]["p99"], w["ms"]["max"]])
            hybrik_headers = ["HybrIK stage included", "p50 ms", "p99 ms", "max ms"]
            text += [common.text_table(hybrik_headers, hybrik_rows), ""]
            md += ["**HybrIK stage included** (per frame, one frame at a time):", "",
                   common.markdown_table(hybrik_headers, hybrik_rows), ""]
    verdict = result["verdict"]
    line = ", ".join(f"{k} {v}" for k, v in verdict.items())
    machine = common.machine_line(result["machine"])
    text += [f"targets: {line}", f"machine: {machine}"]
    md += [f"Targets: {line}. Machine: {machine}.", ""]
    return "\n".join(text), "\n".join(md)


def run(args: argparse.Namespace) -> dict[str, Any]:
    from benchmarks.bench_accuracy import prepare_config, train_refiner
    from lib.config.task import load_task_config

    common.setup(args.threads)
    out = common.results_dir(args.out, args.quick)
    config = prepare_config(args, out)
    if not args.quick:  # --quick's tiny data_root was made by prepare_config
        common.ensure_data_root(Path(load_task_config(config).data_root), preset="demo", seed=args.seed)
    checkpoint, train_seconds = args.checkpoint, None
    if checkpoint is None and "accuracy" in args.parts:
        run_dir = out / common.RUNS_DIR / "accuracy_refiner"  # bench_accuracy's run: a finished one is reused
        if args.quick:
            shutil.rmtree(run_dir, ignore_errors=True)
        checkpoint, train_seconds = train_refiner(config, run_dir, args)
    result: dict[str, Any] = {"benchmark": "online", "quick": args.quick, "config": str(config),
                              "lookaheads": list(args.lookaheads), "train_seconds": train_seconds}
    sizes = export_sizes(args, config, checkpoint, out)
    if "accuracy" in args.parts:
        demo = sizes["demo"]
        result["accuracy"] = bench_accuracy(args, demo["task_cfg"], demo["path"], checkpoint, demo["epoch"])
    if "latency" in args.parts:
        result["latency"] = bench_latency(args, sizes, out)
    result["verdict"] = verdicts(result)
    result["machine"] = common.machine_info()
    text, md = tables(result)
    result["table"] = text
    common.publish(out, "online", result, text, md)
    return result


def main(argv: list[str] | None = None) -> int:
    return common.run_cli(run, build_parser().parse_args(argv))


if __name__ == "__main__":
    raise SystemExit(main())

"""Accuracy on the synthetic benchmark: HybrIK input vs Savitzky-Golay vs One-Euro vs the trained refiner.

    python -m benchmarks.bench_accuracy            # full: demo data_root, trains configs/mesh/demo.yaml
    python -m benchmarks.bench_accuracy --quick    # a check that it runs: tiny data, tiny model, 1 epoch

Steps: (1) the synthetic demo ``data_root`` (generated when missing); (2) the refiner trained with the
demo config through ``train_mesh_refine.py``'s own ``main`` (or ``--checkpoint`` to reuse a
``best_epoch.bin``; a run in ``--out``/runs/accuracy_refiner resumes from its ``latest_epoch.bin``, so a
finished one is reused); (3) both baselines
tuned on the 3DPW TRAINING split by MPJPE (``lib.eval.baselines.tune_baseline``); (4) the held-out
3DPW test split scored: the refiner with ``evaluate_split`` (the code behind ``--evaluate``), the input
and the baselines with ``score_split`` (same protocol; the input's numbers of both paths must agree).
Writes ``accuracy.json`` and ``accuracy.md`` under ``--out`` (``--quick``: ``--out``/quick).
"""

from __future__ import annotations

import argparse
import logging
import shutil
import time
from pathlib import Path
from typing import Any

from benchmarks import common

log = logging.getLogger("benchmarks.accuracy")

DATASET = "pw3d"
SHOWN_METRICS = ("mpve", "mpjpe", "pa_mpjpe", "accel_err")
UNITS = {"accel_err": "mm/frame^2"}
VARIANT_NAMES = {"input": "HybrIK input", "savgol": "Savitzky-Golay", "one_euro": "One-Euro", "refiner": "refiner"}
INPUT_AGREEMENT_REL = 1e-9  # the input scored by evaluate_split and by score_split: the same numbers
# --quick: two candidates per baseline are enough to exercise the search.
QUICK_SAVGOL = dict(windows=(5, 9), orders=(2,))
QUICK_ONE_EURO = dict(min_cutoffs=(1.0,), betas=(0.0, 0.1))


def build_parser() -> argparse.ArgumentParser:
    parser = common.benchmark_parser(
        "accuracy", __doc__.splitlines()[0],
        config_help="task YAML of the refiner (default: configs/mesh/demo.yaml)",
        quick_help="tiny data_root, tiny model, 1 epoch, small grids: checks that the script runs")
    parser.add_argument("--checkpoint", type=Path, default=None,
                        help="reuse this best_epoch.bin (trained with --config) instead of training")
    parser.add_argument("--betas", choices=("mean", "input"), default="mean",
                        help="betas of the baselines: per-sequence mean of HybrIK's (default) or HybrIK's own")
    return parser


def prepare_config(args: argparse.Namespace, out: Path) -> Path:
    """The task YAML to train / evaluate with: ``--config`` itself, or its --quick copy (tiny data and sizes)."""
    if not args.quick:
        return args.config
    data_root = common.ensure_data_root(out / common.RUNS_DIR / "data_tiny", preset="tiny", seed=args.seed)
    return common.write_config(out / common.RUNS_DIR / "quick_demo.yaml", base=args.config,
                               data_root=str(data_root), **common.QUICK_SIZES)


def train_refiner(config: Path, run_dir: Path, args: argparse.Namespace) -> tuple[Path, float]:
    """Train through ``train_mesh_refine.py``'s ``main``; returns best_epoch.bin and the seconds spent."""
    from lib.train.cli import main as train_main

    start = time.perf_counter()
    code = train_main(["--config", str(config), "--checkpoint", str(run_dir), *common.MODEL_FLAGS,
                       "--seed", str(args.seed), "--device", args.device])
    common.setup(args.threads)  # the run attached its own log file; back to console only
    if code:
        raise SystemExit(f"training failed with exit code {code} (see the log above)")
    return run_dir / "best_epoch.bin", time.perf_counter() - start


def gains(metrics: dict[str, dict[str, float]]) -> dict[str, dict[str, dict[str, float]]]:
    """Error reduction of the refiner over every other variant: {other: {metric: {mm, percent}}}.

    ``mm`` = other - refiner (positive: the refiner's error is lower), ``percent`` = mm / other * 100.
    """
    ref = metrics["refiner"]
    return {other: {k: {"mm": values[k] - ref[k], "percent": 100.0 * (values[k] - ref[k]) / values[k]}
                    for k in SHOWN_METRICS if k in ref and k in values and values[k]}
            for other, values in metrics.items() if other != "refiner"}


def verdict(gain: dict[str, dict[str, dict[str, float]]]) -> dict[str, bool]:
    """{metric: whether the refiner's error is below the input's and both baselines'} for every shown metric."""
    return {k: all(g[k]["mm"] > 0 for g in gain.values()) for k in SHOWN_METRICS}


def labels(tuned: dict[str, Any]) -> dict[str, str]:
    return {"input": VARIANT_NAMES["input"], "refiner": VARIANT_NAMES["refiner"],
            **{kind: f"{VARIANT_NAMES[kind]} {result.best.label.split('(', 1)[1].rstrip(')')}"
               for kind, result in tuned.items()}}


def tables(result: dict[str, Any], names: dict[str, str]) -> tuple[str, str]:
    """(console text, markdown) of the metrics and of the refiner's gains."""
    metrics, gain = result["test"]["metrics"], result["gain_of_refiner"]
    headers = ["method", *(f"{k} ({UNITS.get(k, 'mm')})" for k in SHOWN_METRICS)]
    rows = [[names[v], *(metrics[v][k] for k in SHOWN_METRICS)] for v in ("input", "savgol", "one_euro", "refiner")]
    gain_headers = ["refiner vs", *SHOWN_METRICS]
    gain_rows = [[names[other], *(f"{g[k]['mm']:+.2f} ({g[k]['percent']:+.1f} %)" for k in SHOWN_METRICS)]
                 for other, g in gain.items()]
    test = result["test"]
    title = (f"synthetic {DATASET} test split, held out: {test['frames']} frames, {test['sequences']} sequences; "
             f"baselines tuned on the train split by {result['select_on']}")
    note = "gain = other - refiner: positive means the refiner's error is lower (mm; accel_err mm/frame^2)"
    wins = ", ".join(f"{k} {'yes' if v else 'NO'}" for k, v in result["verdict"].items())
    text = "\n".join([title, common.text_table(headers, rows), "", note, common.text_table(gain_headers, gain_rows),
                      "", f"refiner below the input and both baselines: {wins}",
                      f"machine: {common.machine_line(result['machine'])}"])
    md = "\n".join([f"**Accuracy** on the {title}.", "", common.markdown_table(headers, rows), "",
                    f"Error reduction by the refiner; {note}:", "",
                    common.markdown_table(gain_headers, gain_rows), "",
                    f"Refiner's error below the input's and both baselines': {wins}. "
                    f"Machine: {common.machine_line(result['machine'])}.", ""])
    return text, md


def run(args: argparse.Namespace) -> dict[str, Any]:
    from lib.body.smpl import BodyModel
    from lib.config.cli import load_configs
    from lib.data.datasets import MeshFiles
    from lib.deploy.model_io import load_refiner
    from lib.eval.baselines import (baseline_predictor, input_predictor, one_euro_grid, savgol_grid, score_split,
                                    tune_baseline)
    from lib.eval.evaluate import DATASET_FPS, evaluate_split
    from lib.train.cli import build_parser as train_parser
    from lib.runtime import resolve_device

    common.setup(args.threads)
    out = common.results_dir(args.out, args.quick)
    config = prepare_config(args, out)
    task_cfg, hyper_cfg, options = load_configs(train_parser().parse_args(
        ["--config", str(config), "--checkpoint", str(out), *common.MODEL_FLAGS]))
    common.ensure_data_root(Path(task_cfg.data_root), preset="demo", seed=args.seed)
    device = resolve_device(args.device)

    train_seconds = None
    checkpoint = args.checkpoint
    if checkpoint is None:
        run_dir = out / common.RUNS_DIR / "accuracy_refiner"
        if args.quick:  # always a fresh 1-epoch run (the full mode resumes an interrupted run instead)
            shutil.rmtree(run_dir, ignore_errors=True)
        checkpoint, train_seconds = train_refiner(config, run_dir, args)
    model, ckpt = load_refiner(checkpoint, task_cfg, hyper_cfg, options, device)
    body = BodyModel(task_cfg.data_root).to(device)
    files = MeshFiles(task_cfg)
    train_split, test_split = files.split(DATASET, "train"), files.split(DATASET, "test")
    fps = DATASET_FPS[DATASET]

    log.info("refiner on the %s test split (evaluate_split)", DATASET)
    report = evaluate_split(model, body, task_cfg, DATASET, device, split=test_split)
    grids = {"savgol": savgol_grid(**QUICK_SAVGOL) if args.quick else savgol_grid(),
             "one_euro": one_euro_grid(**QUICK_ONE_EURO) if args.quick else one_euro_grid()}
    tuned = {}
    for kind, grid in grids.items():
        log.info("tuning %s on the %s train split: %d candidates", kind, DATASET, len(grid))
        tuned[kind] = tune_baseline(grid, body, task_cfg, train_split, device, fps, betas=args.betas,
                                    show_progress=True)
    predictors = {"input": input_predictor,
                  **{kind: baseline_predictor(t.best, fps, args.betas) for kind, t in tuned.items()}}
    scores = score_split(predictors, body, task_cfg, test_split, device, show_progress=True)
    for key, value in report.input.items():  # two scoring paths, one protocol: they must agree
        if abs(scores.metrics["input"][key] - value) > INPUT_AGREEMENT_REL * max(abs(value), 1.0):
            raise RuntimeError(f"input {key}: evaluate_split {value} vs score_split {scores.metrics['input'][key]}")

    metrics = {**scores.metrics, "refiner": report.refined}
    gain = gains(metrics)
    result = {
        "benchmark": "accuracy", "quick": args.quick, "dataset": DATASET, "fps": fps,
        "config": str(config), "checkpoint": str(checkpoint), "checkpoint_epoch": ckpt.get("epoch"),
        "train_seconds": train_seconds, "select_on": "mpjpe", "baseline_betas": args.betas,
        "test": {"frames": report.frames, "sequences": report.sequences, "metrics": metrics,
                 "per_joint_mpjpe_17j": {**scores.per_joint, "refiner": report.per_joint["refined"]},
                 "refiner_protocol": report.protocol, "baseline_protocol": scores.protocol,
                 "units": {**{k: "mm" for k in metrics["input"]}, "accel_err": "mm/frame^2"}},
        "gain_of_refiner": gain, "verdict": verdict(gain),
        "tuning": {kind: t.to_json() for kind, t in tuned.items()},
        "machine": common.machine_info(),
    }
    text, md = tables(result, labels(tuned))
    result["table"] = text
    common.publish(out, "accuracy", result, text, md)
    return result


def main(argv: list[str] | None = None) -> int:
    return common.run_cli(run, build_parser().parse_args(argv))


if __name__ == "__main__":
    raise SystemExit(main())

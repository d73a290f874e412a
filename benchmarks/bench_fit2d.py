"""What a single frame's 2D can fix: HybrIK's pose fitted to the detections, no training, on both styles.

    python -m benchmarks.bench_fit2d            # styles a, b (demo presets): ~25 min on 2 cores
    python -m benchmarks.bench_fit2d --quick    # a check that it runs: tiny data, few iterations

For each synthetic style S (``python -m lib.data.synthetic --style a|b``), ``lib.eval.fit2d``'s per-frame
fit is tuned on S's 3DPW **training** split (the prior weight and the robust scale, squared error or
Geman-McClure's, by MPJPE; ``--tune-frames`` to use only the first sequences) and scored on the 3DPW test
split of every style: refined / input ratios of MPJPE, PA-MPJPE and acceleration error, the issue-14 bar's
metrics. Then an **oracle** on each test split: the same fit to noise-free 2D, the ground truth's H36M
joints projected with each frame's weak-perspective camera (scale and offset fitted to the frame's
detections), all confidences 1. The oracle's camera model is the fit's own, so what it leaves is what one
frame's 2D cannot determine (depth: a bone turned towards or away from the camera projects alike), not
detection noise.
"""

from __future__ import annotations

import argparse
import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch

from benchmarks import common

log = logging.getLogger("benchmarks.fit2d")

DATASET = "pw3d"
STYLES = ("a", "b")
PRIOR_WEIGHTS = (0.001, 0.01, 0.03, 0.1)
ROBUST_SCALES = (None, 0.1, 0.2)  # fit_to_2d's ``robust``: None = squared 2D error
ORACLE_PRIOR_WEIGHT = 0.001
METRICS = ("mpjpe", "pa_mpjpe", "accel_err")


def build_parser() -> argparse.ArgumentParser:
    parser = common.benchmark_parser(
        "fit2d", __doc__.splitlines()[0],
        config_help="task YAML whose data settings are used (default: configs/mesh/demo.yaml)",
        quick_help="tiny data, one prior weight, few iterations: checks that the script runs",
        threads_help="torch intra-op threads (default 2)")
    parser.add_argument("--styles", nargs="+", choices=STYLES, default=list(STYLES))
    parser.add_argument("--prior-weights", nargs="+", type=float, default=list(PRIOR_WEIGHTS))
    parser.add_argument("--robust", nargs="+", type=lambda v: None if v.lower() == "none" else float(v),
                        default=list(ROBUST_SCALES),
                        help="Geman-McClure scales in body spreads ('none': squared error)")
    parser.add_argument("--steps", type=int, default=None, help="L-BFGS iterations (default 50; quick 5)")
    parser.add_argument("--tune-frames", type=int, default=0,
                        help="tune on the train split's first sequences up to this many frames (default 0: all)")
    parser.add_argument("--data-seed", type=int, default=0)
    return parser


def first_sequences(split, frames: int):
    """The split's first sequences, whole, until at least ``frames`` frames (0: the whole split)."""
    from benchmarks.bench_speed import split_rows

    if frames <= 0:
        return split

    rows: list[int] = []
    for start, end in split.spans:
        if len(rows) >= frames:
            break
        rows.extend(range(start, end))
    rows_np = np.asarray(rows)
    return split_rows(split, rows_np, [split.sequence_name(r) for r in rows_np])


def oracle_predictor(body, prior_weight: float, steps: int):
    """The fit to the ground truth's joints projected with each frame's weak-perspective camera fitted to
    its detections (confidence 1 everywhere)."""
    from lib.body.smpl import posed_mesh_mm
    from lib.body.fit2d import weak_perspective_projection
    from lib.eval.fit2d import fit2d_predictor
    from lib.geometry.rotation import axis_angle_to_matrix

    fit = fit2d_predictor(body, prior_weight, steps, keypoints_key="clean_pose2d")

    def predict(sequence, labels: Mapping[str, torch.Tensor]):
        n = sequence.frames
        gt_rot = axis_angle_to_matrix(labels["gt_pose"].double().reshape(n, 24, 3)).float()
        _, joints = posed_mesh_mm(body, gt_rot[None], labels["gt_shape"].float()[None])  # (1, F, 17, 3) mm
        pose2d = labels["pose2d"].float()
        clean = weak_perspective_projection(joints[0, ..., :2], pose2d[..., :2], pose2d[..., 2].clamp_min(0.0))
        return fit(sequence, {**labels, "clean_pose2d": torch.cat([clean, torch.ones(n, 17, 1)], dim=-1)})

    return predict


def run(args: argparse.Namespace) -> dict[str, Any]:
    from lib.body.smpl import BodyModel
    from lib.config.task import load_task_config
    from lib.data.datasets import MeshFiles
    from lib.eval import baselines as bl
    from lib.body.fit2d import DEFAULT_STEPS
    from lib.eval.fit2d import fit2d_predictor

    common.setup(args.threads)
    out = common.results_dir(args.out, args.quick)
    preset = "tiny" if args.quick else "demo"
    steps = args.steps or (5 if args.quick else DEFAULT_STEPS)
    grid = [(w, r) for w in (args.prior_weights[:1] if args.quick else args.prior_weights)
            for r in (list(dict.fromkeys([args.robust[0], args.robust[-1]])) if args.quick else args.robust)]
    # (prior weight, robust scale); quick: the first weight with the first and last scale
    device = torch.device("cpu")
    setups = {}
    for style in args.styles:
        root = common.ensure_data_root(out / common.RUNS_DIR / f"data_{preset}_style_{style}_seed{args.data_seed}",
                                       preset=preset, seed=args.data_seed, style=style)
        config = common.write_config(out / common.RUNS_DIR / f"fit2d_style_{style}.yaml", base=args.config,
                                     data_root=str(root), **(common.QUICK_SIZES if args.quick else {}))
        cfg = load_task_config(config)
        files = MeshFiles(cfg)
        setups[style] = (cfg, BodyModel(cfg.data_root), files.split(DATASET, "train"), files.split(DATASET, "test"))
    result: dict[str, Any] = {"benchmark": "fit2d", "quick": args.quick, "steps": steps,
                              "grid": [list(g) for g in grid], "tuned": {}, "test": {}, "oracle": {}}
    label = lambda w, r: f"prior {w:g}, robust {r}"  # noqa: E731
    for style, (cfg, body, train, _) in setups.items():
        subset = first_sequences(train, args.tune_frames)
        scores = bl.score_split({label(w, r): fit2d_predictor(body, w, steps, robust=r) for w, r in grid},
                                body, cfg, subset, device)
        best_w, best_r = min(grid, key=lambda g: scores.metrics[label(*g)]["mpjpe"])
        result["tuned"][style] = {"prior_weight": best_w, "robust": best_r, "frames": subset.frames,
                                  "seconds": scores.seconds,
                                  "mpjpe_by_setting": {k: v["mpjpe"] for k, v in scores.metrics.items()}}
        log.info("style %s: %s (train MPJPE by setting %s)", style, label(best_w, best_r),
                 result["tuned"][style]["mpjpe_by_setting"])
        for test, (test_cfg, test_body, _, test_split) in setups.items():
            metrics = bl.score_split({"input": bl.input_predictor,
                                      "fit2d": fit2d_predictor(test_body, best_w, steps, robust=best_r)},
                                     test_body, test_cfg, test_split, device).metrics
            result["test"][f"{style}->{test}"] = metrics
            log.info("%s -> %s: %s", style, test, {k: round(v["mpjpe"], 1) for k, v in metrics.items()})
    for test, (test_cfg, test_body, _, test_split) in setups.items():
        result["oracle"][test] = bl.score_split(
            {"input": bl.input_predictor, "oracle": oracle_predictor(test_body, ORACLE_PRIOR_WEIGHT, steps)},
            test_body, test_cfg, test_split, device).metrics
    result["machine"] = common.machine_info()
    text, md = tables(result)
    result["table"] = text
    common.publish(out, "fit2d", result, text, md)
    return result


def tables(result: dict[str, Any]) -> tuple[str, str]:
    """(plain text, markdown) of the ratios to HybrIK's input."""
    header = ["train -> test", "prior weight", "robust scale", "input MPJPE mm", *(f"{m} ratio" for m in METRICS)]
    rows = []
    for pair, metrics in result["test"].items():
        tuned = result["tuned"][pair.split("->")[0]]
        robust = "squared" if tuned["robust"] is None else f"{tuned['robust']:g}"
        rows.append([pair, f"{tuned['prior_weight']:g}", robust, f"{metrics['input']['mpjpe']:.1f}",
                     *(f"{metrics['fit2d'][m] / metrics['input'][m]:.2f}" for m in METRICS)])
    for test, metrics in result["oracle"].items():
        rows.append([f"oracle (noise-free 2D) on {test}", f"{ORACLE_PRIOR_WEIGHT:g}", "squared",
                     f"{metrics['input']['mpjpe']:.1f}",
                     *(f"{metrics['oracle'][m] / metrics['input'][m]:.2f}" for m in METRICS)])
    title = (f"Per-frame fit of HybrIK's pose to the 2D (lib/eval/fit2d.py, {result['steps']} L-BFGS iterations, "
             "prior weight and robust scale tuned on the training style's train split; refined / input ratios on the "
             "3DPW test split)")
    text = "\n".join([title, common.text_table(header, rows), "", f"machine: {common.machine_line(result['machine'])}"])
    md = "\n".join([f"**{title}**", "", common.markdown_table(header, rows), "",
                    f"machine: {common.machine_line(result['machine'])}.", ""])
    return text, md


def main(argv: list[str] | None = None) -> int:
    return common.run_cli(run, build_parser().parse_args(argv))


if __name__ == "__main__":
    raise SystemExit(main())

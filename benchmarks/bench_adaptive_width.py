"""The adaptive prior filter (``smooth_adaptive``): its width rule fitted on each style, and the filter alone.

    python -m benchmarks.bench_adaptive_width            # styles a, b (the data_roots of bench_transfer)
    python -m benchmarks.bench_adaptive_width --quick    # a check that it runs: tiny data_roots

``lib.model.head.AdaptivePriorSmoother`` filters HybrIK's 6D pose of each clip with a Gaussian of width
``sigma = exp(slope * noise_to_motion(clip) + intercept)`` frames. Here, for each style S (the recipe of
``--config``, so HybrIK's input fitted to the 2D as the refiner gets it):

* **the rule**: every 16-frame window (stride 8) of S's 3DPW *train* split filtered at each width of
  ``SIGMAS`` (edge-replicated, as the head does); each window's best width by the squared error of the
  rotation matrices against the ground truth; ``log sigma = slope * noise_to_motion + intercept`` by least
  squares. The head's ``INIT_SLOPE`` / ``INIT_INTERCEPT`` are style A's rule (rounded).
* **the filter alone**: the untrained ``smooth_adaptive`` refiner (its residual is zero-initialised, so it
  returns the filtered input) with S's rule, scored on every style's 3DPW test split by ``score_split`` (the
  scoring of ``evaluate_split``), next to a fixed Gaussian tuned on the same train split ("fit + Gaussian" of
  ``bench_transfer``). Ratios are to HybrIK's own input. Betas: the refiner's mean over each clip, the Gaussian's
  over each sequence (both HybrIK's).
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path
from typing import Any

import numpy as np
import torch

from benchmarks import common

log = logging.getLogger("benchmarks.adaptive_width")

DATASET = "pw3d"
STYLES = ("a", "b")
SIGMAS = (0.3, 0.5, 0.75, 1.0, 1.25, 1.5, 2.0, 2.5, 3.0, 3.75)
WINDOW, STRIDE = 16, 8
METRICS = ("mpjpe", "pa_mpjpe", "accel_err")


def build_parser() -> argparse.ArgumentParser:
    parser = common.benchmark_parser(
        "adaptive_width", __doc__.splitlines()[0],
        config_help="task YAML of the recipe (default: configs/mesh/demo.yaml)",
        quick_help="tiny data_roots: checks that the script runs")
    parser.add_argument("--data-seed", type=int, default=0, help="seed of both synthetic data_roots (default 0)")
    return parser


def windows(cfg, part: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Every window of the split's fitted input in 6D and of its ground truth: (M, W, 144), (M, W, 24, 3, 3)."""
    from lib.data.datasets import MeshFiles
    from lib.eval.evaluate import EvalSequences
    from lib.geometry.rotation import axis_angle_to_matrix, matrix_to_rot6d

    inputs, truths = [], []
    for sequence in EvalSequences(MeshFiles(cfg).split(DATASET, part), cfg.sample_stride, cfg.clip_len):
        labels = sequence.frame_arrays()
        pose = matrix_to_rot6d(axis_angle_to_matrix(labels["hybrik_pose"].float().unflatten(-1, (24, 3)))).flatten(-2)
        truth = axis_angle_to_matrix(labels["gt_pose"].float().unflatten(-1, (24, 3)))
        for start in range(0, len(pose) - WINDOW + 1, STRIDE):
            inputs.append(pose[start:start + WINDOW])
            truths.append(truth[start:start + WINDOW])
    return torch.stack(inputs), torch.stack(truths)


def width_errors(pose6d: torch.Tensor, truth: torch.Tensor, kernel: int) -> torch.Tensor:
    """(M, S) mean squared rotation-matrix error of each window filtered at each width of ``SIGMAS``."""
    from lib.geometry.rotation import rot6d_to_matrix
    from lib.model.head import gaussian_filter_clip, gaussian_taps_sigma

    errors = []
    for sigma in SIGMAS:
        taps = gaussian_taps_sigma(kernel, torch.full((len(pose6d),), sigma), pose6d)
        filtered = rot6d_to_matrix(gaussian_filter_clip(pose6d, taps).unflatten(-1, (24, 6)))
        errors.append((filtered - truth).square().sum(dim=(-1, -2)).mean(dim=(1, 2)))
    return torch.stack(errors, dim=1)


def fit_rule(statistic: np.ndarray, best_sigma: np.ndarray) -> tuple[float, float]:
    """Least-squares (slope, intercept) of log(best_sigma) on the statistic."""
    design = np.stack([statistic, np.ones_like(statistic)], axis=1)
    slope, intercept = np.linalg.lstsq(design, np.log(best_sigma), rcond=None)[0]
    return float(slope), float(intercept)


def adaptive_predictor(cfg, rule: tuple[float, float], device):
    """The untrained smooth_adaptive refiner with ``rule`` as a ``score_split`` predictor (the filter alone)."""
    from lib.eval.evaluate import refine_sequence
    from lib.model.build import build_model

    hyper_cfg, options = common.model_options()
    model = build_model(cfg.replace(smooth_adaptive=True), hyper_cfg, options).to(device).eval()
    with torch.no_grad():
        model.head.smoother.slope.fill_(rule[0])
        model.head.smoother.intercept.fill_(rule[1])

    def predict(sequence, _labels):
        return refine_sequence(model, sequence, device, flip=False)
    return predict


def run(args: argparse.Namespace) -> dict[str, Any]:
    from lib.body.smpl import BodyModel
    from lib.config.task import load_task_config
    from lib.data.datasets import MeshFiles
    from lib.eval import baselines as bl
    from lib.eval.evaluate import DATASET_FPS
    from lib.model.head import INIT_INTERCEPT, INIT_SLOPE, SIGMA_MIN, noise_to_motion
    from lib.runtime import resolve_device

    common.setup(args.threads)
    device = resolve_device(args.device)
    out = common.results_dir(args.out, args.quick)
    runs_dir = out / common.RUNS_DIR / "adaptive_width"
    preset = "tiny" if args.quick else "demo"
    configs = {}
    for style in STYLES:
        root = common.ensure_data_root(out / common.RUNS_DIR / f"data_{preset}_style_{style}_seed{args.data_seed}",
                                       preset=preset, seed=args.data_seed, style=style)
        configs[style] = load_task_config(common.write_config(runs_dir / f"style_{style}.yaml", base=args.config,
                                                              data_root=str(root)))
    kernel = configs["a"].smooth_kernel or 15
    result: dict[str, Any] = {"benchmark": "adaptive_width", "quick": args.quick, "config": str(args.config),
                              "kernel": kernel, "sigmas": list(SIGMAS), "window": WINDOW, "stride": STRIDE,
                              "head_init_rule": [INIT_SLOPE, INIT_INTERCEPT], "rules": {}, "windows": {}, "test": {},
                              "fitted_input": configs["a"].fit2d_prior is not None}
    for style, cfg in configs.items():
        pose6d, truth = windows(cfg, "train")
        best = np.asarray(SIGMAS)[width_errors(pose6d, truth, kernel).argmin(dim=1).numpy()]
        statistic = noise_to_motion(pose6d).numpy()
        result["rules"][style] = fit_rule(statistic, best)
        result["windows"][style] = {"count": len(best), "best_sigma_median": float(np.median(best)),
                                    "statistic_median": float(np.median(statistic))}
        log.info("style %s: %d train windows, best sigma median %.2f, rule slope %.3f intercept %.3f", style,
                 len(best), np.median(best), *result["rules"][style])
    fps = DATASET_FPS[DATASET]
    bodies = {style: BodyModel(cfg.data_root).to(device) for style, cfg in configs.items()}
    test_splits = {style: MeshFiles(cfg).split(DATASET, "test") for style, cfg in configs.items()}
    test_statistics = {style: noise_to_motion(windows(cfg, "test")[0]).numpy() for style, cfg in configs.items()}
    for train_style, cfg in configs.items():
        tuned = bl.tune_baseline(bl.gaussian_grid(), bodies[train_style], cfg, MeshFiles(cfg).split(DATASET, "train"),
                                 device, fps)
        result["test"][train_style] = {"gaussian_sigma": tuned.best.label}
        slope, intercept = result["rules"][train_style]
        for test_style, test_cfg in configs.items():
            sigma = np.clip(np.exp(slope * test_statistics[test_style] + intercept), SIGMA_MIN, kernel / 4)
            predictors = {"input": bl.input_predictor, "gaussian": bl.baseline_predictor(tuned.best, fps),
                          "adaptive": adaptive_predictor(test_cfg, result["rules"][train_style], device)}
            metrics = bl.score_split(predictors, bodies[test_style], test_cfg, test_splits[test_style],
                                     device).metrics
            result["test"][train_style][test_style] = {
                "sigma_median": float(np.median(sigma)),
                **{name: {k: metrics[name][k] for k in METRICS} for name in predictors}}
    result["machine"] = common.machine_info()
    text, md = tables(result)
    common.publish(out, "adaptive_width", result, text, md)
    return result


def tables(result: dict[str, Any]) -> tuple[str, str]:
    """(console text, markdown) of the rules and the test-split scores."""
    rule_headers = ["style", "train windows", "noise_to_motion median", "best sigma median", "slope", "intercept"]
    rules = [[s, w["count"], w["statistic_median"], w["best_sigma_median"], *result["rules"][s]]
             for s, w in result["windows"].items()]
    headers = ["train -> test", "filter", *(f"{k} mm (ratio)" for k in METRICS)]
    rows = []
    given = "fit + " if result["fitted_input"] else ""  # the filters smooth the input the refiner gets
    for train, scores in result["test"].items():
        for test in STYLES:
            cell = scores[test]
            for name, label in (("gaussian", f"{given}Gaussian ({scores['gaussian_sigma']}, tuned on {train})"),
                                ("adaptive", f"{given}adaptive Gaussian (rule of {train}; median sigma "
                                             f"{cell['sigma_median']:.2f})")):
                values = [f"{cell[name][k]:.1f} ({cell[name][k] / cell['input'][k]:.3f}x)" for k in METRICS]
                rows.append([f"{train} -> {test}", label, *values])
    title_rules = (f"The width rule per training style ({result['window']}-frame windows, stride {result['stride']}, "
                   f"of the 3DPW train split; widths {result['sigmas']} frames; the head starts from slope "
                   f"{result['head_init_rule'][0]}, intercept {result['head_init_rule'][1]})")
    title_test = "The filter alone on each 3DPW test split (mm; ratio to HybrIK's own input)"
    machine = common.machine_line(result["machine"])
    text = "\n\n".join([title_rules, common.text_table(rule_headers, rules, ".3f"), title_test,
                         common.text_table(headers, rows), machine])
    md = "\n\n".join([f"**{title_rules}**", common.markdown_table(rule_headers, rules, ".3f"), f"**{title_test}**",
                       common.markdown_table(headers, rows), machine])
    return text + "\n", md + "\n"


def main(argv: list[str] | None = None) -> int:
    return common.run_cli(run, build_parser().parse_args(argv))


if __name__ == "__main__":
    raise SystemExit(main())

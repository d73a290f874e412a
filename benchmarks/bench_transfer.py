"""Transfer across data styles: the demo recipe trained on one synthetic style, scored on both.

    python -m benchmarks.bench_transfer                      # styles a, b; seeds 0 1 2: 6 training runs
    python -m benchmarks.bench_transfer --seeds 0 --set lr_head=1e-4 --tag lr1e-4   # one variant
    python -m benchmarks.bench_transfer --quick              # a check that it runs: tiny data and model

Two synthetic ``data_root``s in the same real formats but written by two different generators
(``python -m lib.data.synthetic --style a|b``: other body stand-in, motions, cameras, canvases, frame
rates, 2D noise and HybrIK-noise model; see ``lib/data/synthetic_style_b.py``). For every training style
S and seed, ``configs/mesh/demo.yaml`` (``--config``) with ``data_root`` = S (plus any ``--set``) is
trained through ``train_mesh_refine.py``'s own ``main``; its ``best_epoch.bin`` (selected, as every run
is, on S's own 3DPW test split, epoch 0 = the untrained start included) is then scored on the 3DPW test
split of every style with ``evaluate_split`` (the code behind ``--evaluate``). Three classic smoothers
(Gaussian, Savitzky-Golay, One-Euro) are tuned on S's 3DPW **training** split by MPJPE and scored on
the same test splits. Reported: refined / input ratios of MPVE, MPJPE, PA-MPJPE and acceleration error,
mean and standard deviation over seeds with the worst seed, next to the tuned smoothers'; and the
issue-14 bar (every seed <= 0.6x MPJPE, 0.8x PA-MPJPE, 0.2x accel; the seed mean below the best
smoother on MPJPE and accel). Runs are kept under ``--out``/runs/<tag>/ and reused when finished.

A recipe with ``fit2d_prior`` (HybrIK's input fitted to the 2D first, ``lib.data.hybrik_fit``) is still
scored against HybrIK's own input and the smoothers of HybrIK's own input (configs without the fit); the
smoothers are then also tuned and scored on the fitted input ("fit + ..."), the strongest simple
baseline of such a recipe, shown next to it but not part of the bar.
"""

from __future__ import annotations

import argparse
import json
import logging
import shutil
import time
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from benchmarks import common

log = logging.getLogger("benchmarks.transfer")

DATASET = "pw3d"
STYLES = ("a", "b")
METRICS = ("mpve", "mpjpe", "pa_mpjpe", "accel_err")
SMOOTHERS = ("gaussian", "savgol", "one_euro")
NAMES = {"input": "HybrIK input", "gaussian": "Gaussian", "savgol": "Savitzky-Golay", "one_euro": "One-Euro",
         "refiner": "refiner"}
# The bar of issue 14: refined / input ratio of every seed at most this.
BAR = {"mpjpe": 0.6, "pa_mpjpe": 0.8, "accel_err": 0.2}
QUICK_GRIDS = dict(gaussian=dict(sigmas=(1.0, 3.0)), savgol=dict(windows=(5, 9), orders=(2,)),
                   one_euro=dict(min_cutoffs=(1.0,), betas=(0.0, 0.1)))


def build_parser() -> argparse.ArgumentParser:
    parser = common.benchmark_parser(
        "transfer", __doc__.splitlines()[0],
        config_help="task YAML of the recipe (default: configs/mesh/demo.yaml)",
        quick_help="tiny data_roots, tiny model, 1 epoch, one seed, small grids: checks that the script runs")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="training seeds (default 0 1 2)")
    parser.add_argument("--styles", nargs="+", choices=STYLES, default=list(STYLES),
                        help="data styles, each tested on (default: a b)")
    parser.add_argument("--train-styles", nargs="+", choices=STYLES, default=None,
                        help="the styles trained on (default: every --styles; e.g. `--train-styles a` for a->a, a->b)")
    parser.add_argument("--data-seed", type=int, default=0, help="seed of both data generators (default 0)")
    parser.add_argument("--set", dest="changes", nargs="*", default=[], metavar="KEY=VALUE",
                        help="task-config changes on top of --config (YAML values), e.g. lr_head=1e-4")
    parser.add_argument("--tag", default="recipe", help="name of this recipe's run folder and result files")
    return parser


def parse_changes(items: list[str]) -> dict[str, Any]:
    """``["lr_head=1e-4", "flip=false"]`` -> ``{"lr_head": 0.0001, "flip": False}`` (YAML scalars)."""
    out = {}
    for item in items:
        if "=" not in item:
            raise SystemExit(f"--set takes KEY=VALUE, got {item!r}")
        key, value = item.split("=", 1)
        out[key.strip()] = yaml.safe_load(value)
    return out


def load_model_configs(config: Path, out: Path):
    from lib.config.cli import load_configs
    from lib.train.cli import build_parser as train_parser

    return load_configs(train_parser().parse_args(["--config", str(config), "--checkpoint", str(out),
                                                   *common.MODEL_FLAGS]))


def train_run(config: Path, run_dir: Path, seed: int, device: str, threads: int) -> float:
    """Train (or resume / reuse a finished run) through the training CLI; returns the seconds spent."""
    from lib.train.cli import main as train_main

    start = time.perf_counter()
    code = train_main(["--config", str(config), "--checkpoint", str(run_dir), *common.MODEL_FLAGS,
                       "--seed", str(seed), "--device", device])
    common.setup(threads)
    if code:
        raise SystemExit(f"training {run_dir} failed with exit code {code}")
    return time.perf_counter() - start


def ratios(metrics: dict[str, float], reference: dict[str, float]) -> dict[str, float]:
    return {k: metrics[k] / reference[k] for k in METRICS}


def with_gt_global(predict):
    """A predictor with its global orientation (joint 0) replaced by the ground truth's: what is left of its
    error once the whole body's camera-frame orientation is right (a diagnostic, not a protocol)."""
    from lib.geometry.rotation import axis_angle_to_matrix

    def predict_gt_global(sequence, labels):
        rot, shape = predict(sequence, labels)
        rot = rot.clone()
        rot[:, 0] = axis_angle_to_matrix(labels["gt_pose"].reshape(sequence.frames, -1, 3)[:, 0].float())
        return rot, shape

    return predict_gt_global


def on_ground_truth(predict):
    """A predictor given the ground-truth pose and betas as its input (``hybrik_pose``, ``hybrik_shape``): what
    it does to a perfect input (a diagnostic: a smoother's cost on the test style's true motion)."""
    def predict_on_gt(sequence, labels):
        return predict(sequence, {**labels, "hybrik_pose": labels["gt_pose"], "hybrik_shape": labels["gt_shape"]})

    return predict_on_gt


def score_refiner(checkpoint: Path, config: Path, device) -> dict[str, Any]:
    """The checkpoint on ``config``'s 3DPW test split: input and refined metrics (mm), both again with
    the ground-truth global orientation substituted (``with_gt_global``), and the refiner given the
    ground-truth pose as its input (``gt_input``: what it does to a perfect input)."""
    from lib.body.smpl import BodyModel
    from lib.data.datasets import MeshFiles
    from lib.deploy.model_io import load_refiner
    from lib.eval import baselines as bl
    from lib.eval.evaluate import evaluate_split, refine_sequence

    task_cfg, hyper_cfg, options = load_model_configs(config, checkpoint.parent)
    model, ckpt = load_refiner(checkpoint, task_cfg, hyper_cfg, options, device)
    body = BodyModel(task_cfg.data_root).to(device)
    report = evaluate_split(model, body, task_cfg, DATASET, device)

    def refined(sequence, _labels):
        return refine_sequence(model, sequence, device, task_cfg.flip)

    def refined_from_gt(sequence, labels):
        return refine_sequence(model, sequence, device, task_cfg.flip, pose=labels["gt_pose"].numpy())

    split = MeshFiles(task_cfg).split(DATASET, "test")
    diagnostic = bl.score_split({"input": with_gt_global(bl.input_predictor), "refined": with_gt_global(refined),
                                 "gt_input": refined_from_gt}, body, task_cfg, split, device).metrics
    return {"input": report.input, "refined": report.refined, "epoch": ckpt.get("epoch"), "frames": report.frames,
            "gt_global": {k: diagnostic[k] for k in ("input", "refined")}, "gt_input": diagnostic["gt_input"]}


def tune_smoothers(train_config: Path, test_configs: dict[str, Path], device, quick: bool) -> dict[str, Any]:
    """Each smoother tuned on the training style's 3DPW train split, scored on every test split."""
    from lib.body.smpl import BodyModel
    from lib.data.datasets import MeshFiles
    from lib.eval import baselines as bl
    from lib.eval.evaluate import DATASET_FPS

    fps = DATASET_FPS[DATASET]
    task_cfg, _, _ = load_model_configs(train_config, train_config.parent)
    body = BodyModel(task_cfg.data_root).to(device)
    grids = {"gaussian": bl.gaussian_grid(**QUICK_GRIDS["gaussian"]) if quick else bl.gaussian_grid(),
             "savgol": bl.savgol_grid(**QUICK_GRIDS["savgol"]) if quick else bl.savgol_grid(),
             "one_euro": bl.one_euro_grid(**QUICK_GRIDS["one_euro"]) if quick else bl.one_euro_grid()}
    train_split = MeshFiles(task_cfg).split(DATASET, "train")
    tuned = {kind: bl.tune_baseline(grid, body, task_cfg, train_split, device, fps) for kind, grid in grids.items()}
    scores = {}
    for style, config in test_configs.items():
        test_cfg, _, _ = load_model_configs(config, config.parent)
        test_body = BodyModel(test_cfg.data_root).to(device)
        predictors = {"input": bl.input_predictor, "refiner_input": bl.refiner_input_predictor,
                      **{kind: bl.baseline_predictor(t.best, fps) for kind, t in tuned.items()},
                      "gaussian_on_gt": on_ground_truth(bl.baseline_predictor(tuned["gaussian"].best, fps))}
        split = MeshFiles(test_cfg).split(DATASET, "test")
        scores[style] = bl.score_split(predictors, test_body, test_cfg, split, device).metrics
    return {"chosen": {kind: t.best.label for kind, t in tuned.items()}, "test": scores}


def summarise(result: dict[str, Any]) -> dict[str, Any]:
    """Per (train style, test style): ratio statistics over seeds, the smoothers' ratios, the bar."""
    pairs = {}
    for train_style, per_seed in result["runs"].items():
        for test_style in result["styles"]:
            rows = [run["scores"][test_style] for run in per_seed.values()]
            smoothers = result["smoothers"][train_style]["test"][test_style]
            inp = smoothers["input"]  # HybrIK's own input (the smoothers' configs never fit it)
            r = np.array([[ratios(row["refined"], inp)[k] for k in METRICS] for row in rows])  # (S, M)
            smooth_ratios = {kind: ratios(smoothers[kind], inp) for kind in SMOOTHERS}
            fitted = result.get("smoothers_fitted", {}).get(train_style)
            if fitted is not None:  # the fit alone and the fit + each smoother, against HybrIK's own input
                fitted_scores = fitted["test"][test_style]
                smooth_ratios.update({f"fit + {kind}": ratios(fitted_scores[kind], inp) for kind in SMOOTHERS})
                smooth_ratios["fit + input"] = ratios(fitted_scores["refiner_input"], inp)  # the fit alone
            best = {k: min(smooth_ratios[kind][k] for kind in SMOOTHERS) for k in METRICS}  # the bar's: no fit
            mean = dict(zip(METRICS, r.mean(axis=0).tolist()))
            worst = dict(zip(METRICS, r.max(axis=0).tolist()))
            bar = {f"every seed {k} <= {v}": worst[k] <= v for k, v in BAR.items()}
            bar.update({f"mean {k} < best smoother": mean[k] < best[k] for k in ("mpjpe", "accel_err")})
            gt_global = {"input_mm": rows[0]["gt_global"]["input"]["mpjpe"],
                         "refined_mm": [row["gt_global"]["refined"]["mpjpe"] for row in rows]}
            on_gt = {"gaussian_mm": smoothers["gaussian_on_gt"]["mpjpe"],
                     "refined_mm": [row["gt_input"]["mpjpe"] for row in rows]}
            pairs[f"{train_style}->{test_style}"] = {
                "gt_global_mpjpe": gt_global, "on_gt_mpjpe": on_gt,
                "input_mm": inp, "refiner_mean": mean, "refiner_std": dict(zip(METRICS, r.std(axis=0).tolist())),
                "refiner_worst": worst, "refiner_per_seed": {s: dict(zip(METRICS, row.tolist()))
                                                             for s, row in zip(per_seed, r)},
                "best_epochs": {s: run["scores"][test_style]["epoch"] for s, run in per_seed.items()},
                "smoothers": smooth_ratios, "best_smoother": best, "bar": bar, "passes": all(bar.values()),
            }
    return pairs


def tables(result: dict[str, Any]) -> tuple[str, str]:
    headers = ["train->test", "method", *(f"{k} ratio" for k in METRICS)]
    rows = []
    for pair, p in result["pairs"].items():
        rows.append([pair, f"{NAMES['input']} (mm)", *(p["input_mm"][k] for k in METRICS)])
        train_style = pair.split("->")[0]
        for kind in SMOOTHERS:
            rows.append(["", f"{NAMES[kind]} ({result['smoothers'][train_style]['chosen'][kind]})",
                         *(p["smoothers"][kind][k] for k in METRICS)])
        fitted = result.get("smoothers_fitted", {}).get(train_style)
        for kind in ("input", *SMOOTHERS) if fitted is not None else ():
            label = "fit alone" if kind == "input" else f"fit + {NAMES[kind]} ({fitted['chosen'][kind]})"
            rows.append(["", label, *(p["smoothers"][f"fit + {kind}"][k] for k in METRICS)])
        rows.append(["", f"refiner, mean +- std over {len(p['refiner_per_seed'])} seeds",
                     *(f"{p['refiner_mean'][k]:.3f} +- {p['refiner_std'][k]:.3f}" for k in METRICS)])
        rows.append(["", "refiner, worst seed", *(p["refiner_worst"][k] for k in METRICS)])
        rows.append(["", "bar met" if p["passes"] else "bar MISSED: " + ", ".join(
            k for k, ok in p["bar"].items() if not ok), *([""] * len(METRICS))])
    title = (f"recipe '{result['tag']}' ({result['config']} + {result['changes'] or 'no changes'}), "
             f"synthetic {DATASET} test splits; ratios = method / HybrIK input (lower is better)")
    def mean_time(runs: dict[str, Any]) -> str:  # runs reused from an earlier invocation were not timed
        timed = [r["train_seconds"] for r in runs.values() if r["train_seconds"]]
        return f"{np.mean(timed):.0f}s" if timed else "reused, not timed"

    times = ", ".join(f"{s}: {mean_time(runs)}" for s, runs in result["runs"].items())
    foot = (f"smoothers tuned on the training style's {DATASET} train split by MPJPE; refiner selected on the "
            f"training style's {DATASET} test split (epoch 0 included); mean training time per run {times}; "
            f"machine: {common.machine_line(result['machine'])}")
    fmt = ".3f"
    d_headers = ["train->test", "input MPJPE mm", "input, GT global orientation", "refined MPJPE mm",
                 "refined, GT global orientation", "refined, GT pose as input", "tuned Gaussian on the GT pose"]
    d_rows = [[pair, p["input_mm"]["mpjpe"], p["gt_global_mpjpe"]["input_mm"],
               p["input_mm"]["mpjpe"] * p["refiner_mean"]["mpjpe"], float(np.mean(p["gt_global_mpjpe"]["refined_mm"])),
               float(np.mean(p["on_gt_mpjpe"]["refined_mm"])), p["on_gt_mpjpe"]["gaussian_mm"]]
              for pair, p in result["pairs"].items()]
    d_title = ("Diagnostic: MPJPE (mm, refiner: mean over seeds) with the whole body's camera-frame orientation "
               "(SMPL joint 0) replaced by the ground truth's (the rest of each error is the body pose); the "
               "refiner given the ground-truth pose as its input, and the training style's tuned Gaussian applied "
               "to the ground-truth pose (each: what the method does to a perfect input, i.e. how much of the test "
               "style's true motion it smooths away)")
    text = "\n".join([title, common.text_table(headers, rows, fmt), "", foot, "", d_title,
                      common.text_table(d_headers, d_rows, ".1f")])
    md = "\n".join([f"**Transfer** — {title}.", "", common.markdown_table(headers, rows, fmt), "", foot + ".", "",
                    f"*{d_title}.*", "", common.markdown_table(d_headers, d_rows, ".1f"), ""])
    return text, md


def run(args: argparse.Namespace) -> dict[str, Any]:
    from lib.runtime import resolve_device

    common.setup(args.threads)
    out = common.results_dir(args.out, args.quick)
    runs_dir = out / common.RUNS_DIR / f"transfer_{args.tag}"
    preset = "tiny" if args.quick else "demo"
    changes = parse_changes(args.changes)
    seeds = args.seeds[:1] if args.quick else args.seeds
    device = resolve_device(args.device)
    from lib.config.task import load_task_config

    configs, raw_configs = {}, {}
    fits = False
    for style in args.styles:
        root = common.ensure_data_root(out / common.RUNS_DIR / f"data_{preset}_style_{style}_seed{args.data_seed}",
                                       preset=preset, seed=args.data_seed, style=style)
        sizes = common.QUICK_SIZES if args.quick else {}
        configs[style] = common.write_config(runs_dir / f"style_{style}.yaml", base=args.config,
                                             data_root=str(root), **{**sizes, **changes})
        fits = load_task_config(configs[style]).fit2d_prior is not None
        raw_configs[style] = configs[style] if not fits else common.write_config(
            runs_dir / f"style_{style}_unfitted.yaml", base=configs[style], fit2d_prior=None)
    result: dict[str, Any] = {"benchmark": "transfer", "tag": args.tag, "quick": args.quick,
                              "config": str(args.config), "changes": changes, "styles": list(args.styles),
                              "seeds": seeds, "runs": {}, "smoothers": {}}
    for style in args.train_styles or args.styles:
        result["runs"][style] = {}
        for seed in seeds:
            run_dir = runs_dir / f"train_{style}_seed{seed}"
            if args.quick:
                shutil.rmtree(run_dir, ignore_errors=True)
            seconds = train_run(configs[style], run_dir, seed, args.device, args.threads)
            history = json.loads((run_dir / "history.json").read_text())
            scores = {test: score_refiner(run_dir / "best_epoch.bin", configs[test], device) for test in args.styles}
            result["runs"][style][str(seed)] = {
                "train_seconds": round(seconds, 1) if seconds > 5 else None,  # None: a finished run reused
                "val_mpjpe_by_epoch": [h["val"][DATASET]["refined"]["mpjpe"] for h in history if DATASET in h["val"]],
                "scores": scores}
            log.info("style %s seed %d: %s", style, seed, ", ".join(
                f"->{t} mpjpe {s['refined']['mpjpe']:.1f}/{s['input']['mpjpe']:.1f}" for t, s in scores.items()))
        result["smoothers"][style] = tune_smoothers(raw_configs[style], raw_configs, device, args.quick)
        if fits:
            result.setdefault("smoothers_fitted", {})[style] = tune_smoothers(configs[style], configs, device,
                                                                              args.quick)
    result["pairs"] = summarise(result)
    result["machine"] = common.machine_info()
    text, md = tables(result)
    result["table"] = text
    common.publish(out, f"transfer_{args.tag}" if args.tag != "recipe" else "transfer", result, text, md)
    return result


def main(argv: list[str] | None = None) -> int:
    return common.run_cli(run, build_parser().parse_args(argv))


if __name__ == "__main__":
    raise SystemExit(main())

"""The embedded demo (``make demo``): synthetic data -> train -> evaluate -> ONNX export -> report.

Runs the same code as the seed commands on the synthetic ``data_root`` of ``configs/mesh/demo.yaml``
and writes a small report folder: the metrics table (HybrIK input vs refined), training and
validation curves, a per-joint error chart, the verified ONNX export and a rendered comparison of
ground truth, HybrIK input and refined meshes.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path

import yaml

from lib.atomic_write import make_folder, write_text_atomic
from lib.errors import RefineError

ROOT = Path(__file__).resolve().parents[1]
DEMO_CONFIG = ROOT / "configs" / "mesh" / "demo.yaml"
HYPER = ROOT / "hyper_config" / "method2" / "manual_joint_label1.yaml"
MODEL_FLAGS = ["--hyper_cfg", str(HYPER), "--hyper_relation_bias", "uniform", "--version", "2"]

log = logging.getLogger("demo")


def step(title: str) -> None:
    print(f"\n=== {title}", flush=True)


def ensure_data(data_root: Path, seed: int) -> None:
    """Generate the synthetic data_root unless a complete one of this seed and generator version is there."""
    from lib.data.synthetic import ensure_data_root

    t0 = time.perf_counter()
    summary, generated = ensure_data_root(data_root, seed=seed, preset="demo")
    if not generated:
        print(f"reusing {data_root} (seed {seed}, preset demo, generator version {summary['generator_version']})")
        return
    for name, info in summary["datasets"].items():
        print(f"  {name}: train {info['train']['frames']} frames / {info['train']['sequences']} sequences, "
              f"test {info['test']['frames']} frames / {info['test']['sequences']} sequences")
    print(f"generated {data_root} in {time.perf_counter() - t0:.1f}s")


def retire_stale_run(ckpt: Path, config: Path) -> Path | None:
    """Move a previous demo run aside when it was trained with a different demo config.

    Training auto-resumes from ``latest_epoch.bin``, so a finished run of an older ``demo.yaml`` would
    be reported as this one's (or refused, if its model differs). Nothing is deleted: the old folder
    is renamed ``<ckpt>.previous-<time>`` and the new path is returned (None when nothing moved).
    """
    from lib.config.task import load_task_config
    from lib.model.checkpoint import read_checkpoint
    from lib.train.checkpoint import LATEST

    latest = ckpt / LATEST
    if not latest.is_file():
        return None
    saved = read_checkpoint(latest).get("task_config")
    current = load_task_config(config).to_dict()
    if saved == current:
        return None
    changed = sorted(k for k in set(saved or {}) | set(current) if (saved or {}).get(k) != current.get(k))
    moved = ckpt.with_name(f"{ckpt.name}.previous-{time.strftime('%Y%m%d-%H%M%S')}")
    ckpt.rename(moved)
    print(f"{ckpt} was trained with another demo config ({', '.join(changed) or 'no config stored'}): "
          f"moved to {moved}")
    return moved


def run(out: Path, seed: int, epochs: int | None) -> int:
    from lib.deploy.export import export_and_verify
    from lib.train.cli import main as train_main

    report = make_folder(out / "report")
    config = DEMO_CONFIG
    raw = yaml.safe_load(config.read_text())
    if epochs is not None:
        raw["epochs"] = epochs
        config = out / "demo.yaml"
        write_text_atomic(config, yaml.safe_dump(raw, sort_keys=False))
    data_root = (ROOT / raw["data_root"]) if not Path(raw["data_root"]).is_absolute() else Path(raw["data_root"])

    step(f"1/5 synthetic data_root: {data_root}")
    ensure_data(data_root, seed)

    ckpt = out / "checkpoint"
    step(f"2/5 training {config.name} ({raw['epochs']} epochs) -> {ckpt}")
    retire_stale_run(ckpt, config)
    t0 = time.perf_counter()
    code = train_main(["--config", str(config), "--checkpoint", str(ckpt), *MODEL_FLAGS, "--seed", str(seed)])
    if code:
        return code
    train_seconds = time.perf_counter() - t0

    step("3/5 evaluating best_epoch.bin on the synthetic 3DPW test split")
    evaluation = out / "evaluation"
    code = train_main(["--config", str(config), "--checkpoint", str(evaluation), *MODEL_FLAGS,
                       "--evaluate", str(ckpt / "best_epoch.bin")])
    if code:
        return code

    artefacts: dict[str, Path] = {}
    step("4/5 exporting to ONNX and verifying against PyTorch")
    onnx_path = out / "refiner.onnx"
    try:  # the report is logged (INFO, on the console) by export_and_verify
        result = export_and_verify(config=config, hyper_cfg=HYPER, checkpoint=ckpt / "best_epoch.bin",
                                   output=onnx_path, relation_bias="uniform", version=2)
    except RuntimeError as exc:  # written but above the parity tolerance: the file is kept
        write_text_atomic(report / "onnx_export.txt", f"{exc}\n")
        print(f"ONNX verification FAILED: {onnx_path} kept for inspection; see {report / 'onnx_export.txt'}")
        return 1
    write_text_atomic(report / "onnx_export.txt", result.report + "\n")
    artefacts["ONNX model"] = onnx_path
    artefacts["ONNX verification"] = report / "onnx_export.txt"

    step("5/5 report")
    artefacts.update(write_report(report, ckpt, evaluation, data_root, train_seconds))
    print("\nartefacts:")
    for name, path in artefacts.items():
        print(f"  {name:<28} {path}")
    return 0


def write_report(report: Path, ckpt: Path, evaluation: Path, data_root: Path, train_seconds: float) -> dict[str, Path]:
    from lib.deploy.compare import render_comparison
    from lib.eval.evaluate import EvalReport, format_report_table
    from lib.viz.plots import plot_curves, plot_per_joint

    out: dict[str, Path] = {}
    tables = []
    for path in sorted(evaluation.glob("metrics_*.json")):
        data = json.loads(path.read_text())
        rep = EvalReport(**{k: data[k] for k in ("dataset", "frames", "sequences", "protocol", "input", "refined",
                                                  "per_joint", "seconds")})
        tables.append(format_report_table(rep))
        out[f"metrics ({rep.dataset})"] = path
        out[f"per-joint chart ({rep.dataset})"] = plot_per_joint(
            rep.per_joint, report / f"per_joint_{rep.dataset}.png",
            title=f"{rep.dataset} test, 17-joint error per joint (mm)")
    history = json.loads((ckpt / "history.json").read_text())
    out["training curves"] = plot_curves(history, report / "curves.png")
    text = "\n\n".join(tables) + f"\n\ntraining: {len(history)} epochs in {train_seconds:.0f}s " \
        f"({train_seconds / max(len(history), 1):.0f}s per epoch, including validation)\n"
    write_text_atomic(report / "metrics.txt", text)
    out["metrics table"] = report / "metrics.txt"
    print(text)
    out["rendered comparison"] = render_comparison(ckpt / "best_epoch.bin", data_root, report / "meshes.png")
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("demo_out"), help="output folder (default demo_out)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the synthetic data and of training")
    parser.add_argument("--epochs", type=int, default=None, help="override the demo config's epochs")
    args = parser.parse_args(argv)
    try:
        return run(args.out, args.seed, args.epochs)
    except RefineError as exc:  # e.g. a report file that cannot be written: one line, as the other entries
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())

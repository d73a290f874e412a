"""The ``deployment/deployment_mesh.py`` command line: checkpoint -> verified ONNX.

``main(argv)`` parses, turns user errors into one line on stderr, and returns the exit code:
0 written and verified, 1 written but verification failed (the file is kept and named),
2 user error (bad flag, config or checkpoint), 130 interrupted.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from lib.config.cli import add_model_arguments
from lib.errors import ConfigError, RefineError

DESCRIPTION = ("Export a trained refiner checkpoint to one ONNX file (dynamic N and T) and verify it against "
               "PyTorch with onnxruntime (exit 1 if it differs).")
EPILOG = """example (the seed command):
  python deployment/deployment_mesh.py --config configs/mesh/train_pw3d.yaml \\
      --hyper_cfg hyper_config/method2/manual_joint_label1.yaml --hyper_relation_bias uniform --version 2 \\
      --evaluate checkpoint/mesh/train_pw3d_refine/best_epoch.bin --deployment checkpoint/mesh/refine_pw3d.onnx
The file embeds the SMPL arrays of data_root (licensed: do not redistribute it)."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="deployment_mesh.py", description=DESCRIPTION, epilog=EPILOG,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    add_model_arguments(parser)
    parser.add_argument("--evaluate", type=Path, required=True, metavar="CKPT",
                        help="the complete checkpoint to export (e.g. best_epoch.bin)")
    parser.add_argument("--deployment", type=Path, required=True, metavar="OUT.onnx",
                        help="the .onnx file to write (one self-contained file)")
    parser.add_argument("--opset", type=int, default=None, help="ONNX opset (default: the exporter's, 18 or newer)")
    parser.add_argument("--verify", action=argparse.BooleanOptionalAction, default=True,
                        help="after writing, run onnx.checker and compare onnxruntime with PyTorch (default on)")
    parser.add_argument("--threads", type=int, default=2,
                        help="CPU threads for onnxruntime and PyTorch timing (default 2)")
    parser.add_argument("--latency_repeats", type=int, default=10,
                        help="timed runs per shape for the latency report; 0 skips it (default 10)")
    return parser


def run(args: argparse.Namespace) -> int:
    from lib.config.cli import load_configs
    from lib.deploy.export import export_checkpoint
    from lib.deploy.model_io import load_refiner

    if args.deployment.suffix.lower() != ".onnx":
        raise ConfigError(f"--deployment {args.deployment}: expected a file name ending in .onnx")
    if args.threads < 1 or args.latency_repeats < 0:
        raise ConfigError("--threads must be >= 1 and --latency_repeats >= 0")
    task_cfg, hyper_cfg, options = load_configs(args)
    model, ckpt = load_refiner(args.evaluate, task_cfg, hyper_cfg, options)
    result = export_checkpoint(model, ckpt, task_cfg, hyper_cfg, options, args.evaluate, args.deployment,
                               opset=args.opset, verify=args.verify, threads=args.threads,
                               latency_repeats=args.latency_repeats)
    print(result.report)
    if not result.ok:
        print(f"error: {result.info.path}: verification FAILED (see above); the file is kept for inspection",
              file=sys.stderr)
        return 1
    return 0


def run_export_cli(parser: argparse.ArgumentParser, run_fn, argv: list[str] | None) -> int:
    """Shared ``main`` of the export scripts: parse, run, one-line errors. Exit codes: 0 ok,
    1 written but failed verification (file kept), 2 user error, 130 interrupted."""
    args = parser.parse_args(argv)
    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        return run_fn(args)
    except RefineError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted: no partial .onnx is left behind (it is written to a temporary file first)", file=sys.stderr)
        return 130


def main(argv: list[str] | None = None) -> int:
    return run_export_cli(build_parser(), run, argv)

"""The ``deployment/deployment_hybrik.py`` command line: HybrIK's released weights -> verified ONNX.

``main(argv)`` parses, turns user errors into one line on stderr, and returns the exit code:
0 written (and verified), 1 written but verification failed (the file is kept and named),
2 user error (bad flag, missing asset, checkpoint that does not fit), 130 interrupted.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from lib.deploy.export_cli import run_export_cli
from lib.errors import ConfigError
from lib.timing import median_ms

logger = logging.getLogger(__name__)

EPILOG = """example (HybrIK's own folders, nothing renamed):
  python deployment/deployment_hybrik.py --hybrik_model_files HybrIK/model_files \\
      --checkpoint HybrIK/pretrained_models/hybrik_hrnet.pth --deployment checkpoint/hybrik_hrnet48.onnx
--hybrik_model_files (alias --data_root) is HybrIK's model_files/ as it is: basicModel_neutral_lbs_10_207_0_v1.0.0.pkl
(or SMPL_NEUTRAL.pkl), J_regressor_h36m.npy, and h36m_mean_beta.npy for --random_init; SPIN's regressors are not
needed. The file embeds the SMPL arrays (licensed: do not redistribute it).
Inputs: input_image [N,256,256,3] (crop normalised by lib.hybrik.preprocess), bbox [N,4], image_center [N,2].
After writing, onnxruntime is compared with PyTorch at N=1 and N=3: the max difference of every output is
printed with its tolerance, with the export time."""


def build_parser() -> argparse.ArgumentParser:
    from lib.deploy.hybrik_export import DEFAULT_EXPORTER, EXPORTERS
    from lib.hybrik.model import HRNET_WIDTH

    parser = argparse.ArgumentParser(prog="deployment_hybrik.py", description=__doc__.splitlines()[0], epilog=EPILOG,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--hybrik_model_files", "--data_root", dest="model_files", type=Path, required=True,
                        metavar="DIR", help="HybrIK's model_files/ as they are (SMPL pickle under its original name or "
                        "SMPL_NEUTRAL.pkl, J_regressor_h36m.npy; h36m_mean_beta.npy for --random_init)")
    parser.add_argument("--checkpoint", type=Path, default=None, metavar="PTH",
                        help="HybrIK's released weights (hybrik_hrnet.pth); loaded strictly")
    parser.add_argument("--random_init", action=argparse.BooleanOptionalAction, default=False,
                        help="export untrained weights instead of --checkpoint (smoke tests only)")
    parser.add_argument("--deployment", type=Path, required=True, metavar="OUT.onnx",
                        help="the .onnx file to write (one self-contained file)")
    parser.add_argument("--width", type=int, default=HRNET_WIDTH, help=f"HRNet width (default {HRNET_WIDTH})")
    parser.add_argument("--flip_test", action=argparse.BooleanOptionalAction, default=True,
                        help="bake HybrIK's flip test into the graph, as its demo runs (default on; twice the compute)")
    parser.add_argument("--exporter", choices=EXPORTERS, default=DEFAULT_EXPORTER,
                        help=f"torch's TorchScript exporter (default {DEFAULT_EXPORTER}: ~9x faster on HRNet-W48, "
                             "parity with PyTorch held; deprecated by torch) or its dynamo exporter")
    parser.add_argument("--opset", type=int, default=None, help="ONNX opset (default: the exporter's)")
    parser.add_argument("--verify", action=argparse.BooleanOptionalAction, default=True,
                        help="after writing, run onnx.checker and compare onnxruntime with PyTorch at N=1 and N=3")
    parser.add_argument("--threads", type=int, default=2, help="CPU threads for PyTorch and onnxruntime (default 2)")
    parser.add_argument("--latency_repeats", type=int, default=3,
                        help="timed single-frame runs for the latency report; 0 skips it (default 3)")
    return parser


def run(args: argparse.Namespace) -> int:
    import torch

    from lib.hybrik.checkpoint import load_hybrik_checkpoint
    from lib.deploy.hybrik_export import (
        export_hybrik_onnx,
        onnx_session,
        parity_table,
        random_inputs,
        torch_outputs,
        verify_hybrik_onnx,
    )
    from lib.body.smpl import HYBRIK_MEAN_BETA_FILE
    from lib.hybrik.model import build_hybrik

    if args.deployment.suffix.lower() != ".onnx":
        raise ConfigError(f"--deployment {args.deployment}: expected a file name ending in .onnx")
    if (args.checkpoint is None) == (not args.random_init):
        raise ConfigError("give exactly one of --checkpoint PTH (HybrIK's released weights) and --random_init")
    if args.threads < 1 or args.latency_repeats < 0 or args.width < 1:
        raise ConfigError("--threads and --width must be >= 1 and --latency_repeats >= 0")
    torch.set_num_threads(args.threads)
    with_mean_beta = args.random_init and (args.model_files / HYBRIK_MEAN_BETA_FILE).is_file()
    if args.random_init and not with_mean_beta:
        logger.warning("%s not found: the untrained network starts from zero betas", args.model_files / HYBRIK_MEAN_BETA_FILE)
    model = build_hybrik(args.model_files, width=args.width, mean_beta=with_mean_beta)
    if args.checkpoint is not None:
        load_hybrik_checkpoint(model, args.checkpoint)
    info = export_hybrik_onnx(model, args.deployment, flip_test=args.flip_test, exporter=args.exporter,
                              opset=args.opset)
    print(f"wrote {info.path} ({info.size_bytes / 1e6:.1f} MB, opset {info.opset}) in {info.seconds:.1f} s "
          f"with the {args.exporter} exporter; flip test {'on' if args.flip_test else 'off'}")
    ok = True
    if args.verify:
        checks = verify_hybrik_onnx(model, info.path, flip_test=args.flip_test)
        print(parity_table(checks))
        ok = all(check.ok for check in checks)
    if args.latency_repeats:
        inputs = random_inputs(1)
        session = onnx_session(info.path, threads=args.threads)
        torch_ms = median_ms(lambda: torch_outputs(model, inputs, args.flip_test), args.latency_repeats)
        ort_ms = median_ms(lambda: session.run(None, inputs), args.latency_repeats)
        print(f"  latency per frame ({args.threads} threads, N=1): PyTorch {torch_ms:.0f} ms, "
              f"onnxruntime {ort_ms:.0f} ms")
    if not ok:
        print(f"error: {info.path}: verification FAILED (see above); the file is kept for inspection", file=sys.stderr)
        return 1
    return 0


def main(argv: list[str] | None = None) -> int:
    return run_export_cli(build_parser(), run, argv)

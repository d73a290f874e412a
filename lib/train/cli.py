"""The ``train_mesh_refine.py`` command line: train, finetune, resume or evaluate.

``main(argv)`` parses, turns user errors into one line on stderr and an exit code, and calls
``lib.train.runner.run`` with typed values (``RunOptions``, the configs, ``ModelOptions``).
Exit codes: 0 ok, 2 user error, 130 interrupted.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from lib.config.cli import add_model_arguments
from lib.errors import RefineError

EPILOG = """examples (the seed commands):
  train:     --config configs/mesh/train_pw3d.yaml --checkpoint checkpoint/mesh/train_pw3d_refine
             --hyper_cfg hyper_config/method2/manual_joint_label1.yaml --hyper_relation_bias uniform --version 2
  finetune:  --config configs/mesh/ft_pw3d.yaml --pretrained checkpoint/pretrain/MB_release ... (backbone only)
  resume:    add -r CHECKPOINT (without it, <checkpoint>/latest_epoch.bin is resumed when present)
  evaluate:  --evaluate checkpoint/mesh/train_pw3d_refine/best_epoch.bin --checkpoint OUT_DIR ...
"""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="train_mesh_refine.py", description=__doc__.splitlines()[0], epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    add_model_arguments(parser)
    parser.add_argument("-c", "--checkpoint", type=Path, required=True,
                        help="output folder: checkpoints, configs, log, TensorBoard logs/, metrics_*.json")
    parser.add_argument("-r", "--resume", type=Path, default=None,
                        help="full checkpoint to resume (wins over <checkpoint>/latest_epoch.bin)")
    parser.add_argument("--evaluate", type=Path, default=None, metavar="CKPT",
                        help="evaluate this full checkpoint on the test splits and write metrics_<dataset>.json; no training")
    parser.add_argument("-p", "--pretrained", type=Path, default=None, metavar="DIR",
                        help="folder of a checkpoint whose BACKBONE tensors initialise the model (finetune)")
    parser.add_argument("-ms", "--selection", default="latest_epoch.bin", metavar="FILE",
                        help="file name inside --pretrained (default: latest_epoch.bin)")
    parser.add_argument("-sd", "--seed", type=int, default=0, help="seed for python, numpy and torch (default 0)")
    parser.add_argument("--device", default="auto",
                        help="cpu, cuda or cuda:N (default: cuda when available, else cpu)")
    parser.add_argument("--amp", action=argparse.BooleanOptionalAction, default=False,
                        help="bf16 autocast on CUDA (SMPL, losses and metrics stay float32); ignored on CPU")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from lib.config.cli import load_configs
    from lib.train.options import RunOptions
    from lib.train.runner import run

    try:
        run(RunOptions.from_args(args), *load_configs(args))
    except RefineError as exc:
        logging.getLogger("train_mesh_refine").error("%s", exc) if logging.getLogger().handlers else None
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted: nothing half-written; the last complete epoch is in "
              f"{args.checkpoint / 'latest_epoch.bin'} (if any epoch finished)", file=sys.stderr)
        return 130
    return 0

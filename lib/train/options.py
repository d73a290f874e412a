"""What one ``train_mesh_refine.py`` run is asked to do, as a typed value built once from the flags.

The model's own switches are ``lib.config.options.ModelOptions`` and the YAMLs are ``TaskConfig`` /
``HyperConfig``; this holds the rest: where to write, what to resume, evaluate or finetune from, the
seed, the device and mixed precision. The runner takes this, never the argparse namespace.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path

from lib.errors import ConfigError

DEFAULT_SELECTION = "latest_epoch.bin"


@dataclass(frozen=True)
class RunOptions:
    """Attributes:
        config, hyper_cfg: the task YAML and the hypergraph YAML (None with ``--version 1``) given.
        checkpoint: output folder (checkpoints, configs, log, TensorBoard, metrics).
        resume: full checkpoint to resume (wins over ``<checkpoint>/latest_epoch.bin``), or None.
        evaluate: full checkpoint to score on the test splits (no training), or None.
        pretrained, selection: folder and file whose backbone tensors initialise the model (finetune).
        seed: python / numpy / torch seed. device: ``auto``, ``cpu``, ``cuda`` or ``cuda:N``.
        amp: bf16 autocast on CUDA.
    """

    config: Path
    checkpoint: Path
    hyper_cfg: Path | None = None
    resume: Path | None = None
    evaluate: Path | None = None
    pretrained: Path | None = None
    selection: str = DEFAULT_SELECTION
    seed: int = 0
    device: str = "auto"
    amp: bool = False

    def __post_init__(self) -> None:
        if self.evaluate is not None and self.resume is not None:
            raise ConfigError("--evaluate and -r/--resume contradict each other: evaluate a checkpoint, or resume "
                              "training")
        if self.evaluate is not None and self.pretrained is not None:
            raise ConfigError("--evaluate takes a full checkpoint; --pretrained (backbone only) applies to training")

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> RunOptions:
        return cls(config=args.config, checkpoint=args.checkpoint, hyper_cfg=args.hyper_cfg, resume=args.resume,
                   evaluate=args.evaluate, pretrained=args.pretrained, selection=args.selection, seed=args.seed,
                   device=args.device, amp=args.amp)

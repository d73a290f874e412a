"""torchrun with 2 CPU processes (gloo): one set of files, and evaluation equal to one process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from lib.train.cli import main

ROOT = Path(__file__).resolve().parents[2]


def test_two_process_gloo_training_matches_single_process_evaluation(tmp_path: Path, data_root: Path, tiny_config,
                                                                    seed_command) -> None:
    cfg = tiny_config(tmp_path, "train_h36m", data_root)
    out = tmp_path / "ddp"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           str(ROOT / "train_mesh_refine.py"), *seed_command(cfg, out)]
    run = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-3000:]
    log = run.stdout + run.stderr
    assert "DDP on 2 processes (gloo, CPU); BatchNorm keeps per-process statistics" in log
    assert "2 processes x batch_size 8 = 16 clips per step" in log
    # one set of files: one log, one TensorBoard event file, the checkpoints once
    assert len(list((out / "run_mesh").glob("*.log"))) == 1
    assert len(list((out / "logs").glob("events.out.tfevents.*"))) == 1
    assert {"latest_epoch.bin", "best_epoch.bin", "metrics_h36m.json"} <= {p.name for p in out.iterdir()}
    ddp = json.loads((out / "metrics_h36m.json").read_text())

    # the same checkpoint evaluated by one process scores the same frames with the same numbers
    assert main(seed_command(cfg, tmp_path / "single", "--evaluate", str(out / "best_epoch.bin"))) == 0
    single = json.loads((tmp_path / "single" / "metrics_h36m.json").read_text())
    assert ddp["frames"] == single["frames"]
    for key, value in single["input"].items():  # no network involved: equal up to summation order
        assert ddp["input"][key] == pytest.approx(value, rel=1e-9), key
    for key, value in single["refined"].items():  # float32 network on 1 vs 2 threads: rounding differs
        assert ddp["refined"][key] == pytest.approx(value, rel=2e-4), key

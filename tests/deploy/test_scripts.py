"""The two entry scripts run as scripts (thin wrappers around lib.deploy's command lines)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("script, flags", [
    ("deployment/deployment_mesh.py", ["--config", "--hyper_cfg", "--hyper_relation_bias", "--version", "--evaluate",
                                       "--deployment"]),
    ("deployment/deployment_hybrik.py", ["--hybrik_model_files", "--data_root", "--checkpoint", "--exporter",
                                         "torchscript", "dynamo", "--deployment"]),
    ("deployment/infer_mesh.py", ["--hybrik", "--hybrik_onnx", "--hybrik_checkpoint", "--frames", "--boxes",
                                  "--keypoints2d", "--crops", "--box_kind", "--hybrik_model_files",
                                  "--checkpoint_file", "--evaluate", "--onnx", "--render", "--out"]),
])
def test_script_help_lists_the_documented_flags(script: str, flags: list[str]) -> None:
    env = {**os.environ, "PYTHONPATH": str(REPO)}  # as with the package installed (pip install -e .)
    done = subprocess.run([sys.executable, str(REPO / script), "--help"], capture_output=True, text=True, env=env,
                          cwd=REPO, timeout=120)
    assert done.returncode == 0, done.stderr
    for flag in flags:
        assert flag in done.stdout


def test_missing_required_flags_exit_2() -> None:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    done = subprocess.run([sys.executable, str(REPO / "deployment/infer_mesh.py"), "--out", "x.npz"],
                          capture_output=True, text=True, env=env, cwd=REPO, timeout=120)
    assert done.returncode == 2 and "one of the arguments --hybrik --hybrik_onnx --hybrik_checkpoint is required" in done.stderr

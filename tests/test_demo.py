"""The demo's guard against reporting a stale run: a checkpoint of another demo config is moved aside."""

from __future__ import annotations

from pathlib import Path

import torch
import yaml

from lib.config.task import load_task_config
from lib.demo import DEMO_CONFIG, retire_stale_run


def _fake_run(ckpt: Path, task_config: dict) -> None:
    ckpt.mkdir(parents=True)
    torch.save({"model": {}, "task_config": task_config}, ckpt / "latest_epoch.bin")
    (ckpt / "history.json").write_text("[]")


def test_same_config_is_kept_and_a_missing_run_is_fine(tmp_path: Path) -> None:
    assert retire_stale_run(tmp_path / "none", DEMO_CONFIG) is None
    ckpt = tmp_path / "checkpoint"
    _fake_run(ckpt, load_task_config(DEMO_CONFIG).to_dict())
    assert retire_stale_run(ckpt, DEMO_CONFIG) is None
    assert (ckpt / "latest_epoch.bin").is_file()


def test_a_run_of_another_config_is_moved_not_deleted(tmp_path: Path, capsys) -> None:
    raw = yaml.safe_load(DEMO_CONFIG.read_text())
    old_config = tmp_path / "old_demo.yaml"
    old_config.write_text(yaml.safe_dump({**raw, "lr_head": 0.0001, "smooth_kernel": 0, "smooth_adaptive": False}))
    ckpt = tmp_path / "checkpoint"
    _fake_run(ckpt, load_task_config(old_config).to_dict())
    moved = retire_stale_run(ckpt, DEMO_CONFIG)
    assert moved is not None and moved.name.startswith("checkpoint.previous-")
    assert not ckpt.exists()
    assert (moved / "latest_epoch.bin").is_file() and (moved / "history.json").read_text() == "[]"
    assert "lr_head, smooth_adaptive, smooth_kernel" in capsys.readouterr().out

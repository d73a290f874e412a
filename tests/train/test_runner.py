"""train_mesh_refine.py end to end on the synthetic data_root: the seed commands on tiny copies of the
seed YAMLs (data_root, epochs, batch and model sizes swapped by ``tiny_config``)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml

from lib.model import checkpoint as mck
from lib.train import checkpoint as ck
from lib.train import loop
from lib.train.cli import main

ROOT = Path(__file__).resolve().parents[2]
METRIC_KEYS = {"mpve", "mpjpe", "pa_mpjpe", "mpjpe_17j", "pa_mpjpe_17j", "accel_err"}
HYPER2 = "manual_joint_label2.yaml"


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory, data_root: Path, tiny_config, seed_command) -> tuple[Path, Path]:
    """Two epochs of train_pw3d (H36M warm-up, COCO and 3DPW passes) -> (config, checkpoint dir)."""
    tmp = tmp_path_factory.mktemp("trained")
    cfg = tiny_config(tmp, "train_pw3d", data_root, epochs=2)
    out = tmp / "ckpt"
    assert main(seed_command(cfg, out)) == 0
    return cfg, out


def test_training_writes_every_artefact(trained: tuple[Path, Path]) -> None:
    cfg, out = trained
    names = {p.name for p in out.iterdir()}
    assert {"latest_epoch.bin", "best_epoch.bin", "epoch_1.bin", "epoch_2.bin", "metrics_pw3d.json",
            "metrics_h36m.json", "train_pw3d.yaml", "manual_joint_label1.yaml", "resolved_config.yaml",
            "history.json", "logs", "run_mesh"} <= names
    assert not [n for n in names if n.endswith(".tmp")]
    assert list((out / "logs").glob("events.out.tfevents.*"))
    assert list((out / "run_mesh").glob("*_pw3d.log"))
    latest = mck.read_checkpoint(out / "latest_epoch.bin")
    assert latest["epoch"] == 2 and not any(k.startswith("module.") for k in latest["model"])
    assert not any("v_template" in k or "shapedirs" in k for k in latest["model"])  # no SMPL arrays
    history = json.loads((out / "history.json").read_text())
    assert [h["epoch"] for h in history] == [0, 1, 2] and "loss_pose" in history[1]["train"]
    assert history[0]["train"] == {} and "pw3d" in history[0]["val"]  # the untrained start, validated
    metrics = json.loads((out / "metrics_pw3d.json").read_text())
    assert metrics["epoch"] == latest["best_epoch"]


def test_evaluate_writes_json_with_all_keys(trained: tuple[Path, Path], tmp_path: Path,
                                            capsys: pytest.CaptureFixture, seed_command) -> None:
    cfg, out = trained
    assert main(seed_command(cfg, tmp_path / "eval", "--evaluate", str(out / "best_epoch.bin"))) == 0
    table = capsys.readouterr().out
    assert "pw3d test:" in table and "accel_err" in table
    for dataset in ("pw3d", "h36m"):
        report = json.loads((tmp_path / "eval" / f"metrics_{dataset}.json").read_text())
        assert report["dataset"] == dataset and report["frames"] > 0
        assert set(report["input"]) == METRIC_KEYS and set(report["refined"]) == METRIC_KEYS
        assert report["units"]["accel_err"] == "mm/frame^2" and report["units"]["mpjpe"] == "mm"
        assert report["protocol"]["root"] == "pelvis"
    # every test frame scored exactly once
    from lib.data.schema import load_mesh_pickle

    data_root = Path(yaml.safe_load(cfg.read_text())["data_root"])
    pw3d = load_mesh_pickle(data_root / "mesh_det_pw3d_w_hybrik_pred_hr48_w.pkl", "pw3d")
    assert json.loads((tmp_path / "eval" / "metrics_pw3d.json").read_text())["frames"] == len(pw3d["test"]["source"])


def test_resume_precedence(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    from lib.train.options import RunOptions
    from lib.train.runner import resolve_resume

    def opts(resume):  # the run options with only -r set
        return RunOptions(config=Path("x.yaml"), checkpoint=tmp_path, resume=resume)

    assert resolve_resume(opts(resume=None), tmp_path) is None
    (tmp_path / "latest_epoch.bin").write_bytes(b"")
    with caplog.at_level("INFO"):
        assert resolve_resume(opts(resume=None), tmp_path) == tmp_path / "latest_epoch.bin"
    assert "resuming from" in caplog.text  # the CLI says so
    chosen = tmp_path / "other.bin"
    assert resolve_resume(opts(resume=chosen), tmp_path) == chosen  # -r wins


def test_resume_after_sigkill_mid_epoch(trained: tuple[Path, Path], tmp_path: Path, seed_command) -> None:
    cfg2, out_full = trained
    out = tmp_path / "killed"
    cmd = [sys.executable, str(ROOT / "train_mesh_refine.py"), *seed_command(cfg2, out)]
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while not (out / "latest_epoch.bin").exists() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert mck.read_checkpoint(out / "latest_epoch.bin")["epoch"] in (1, 2)  # complete, never torn
    assert main(seed_command(cfg2, out)) == 0  # no -r: <checkpoint>/latest_epoch.bin is resumed
    assert not list(out.glob(".*.tmp"))  # temp files of a killed save are removed at start-up
    full = json.loads((out_full / "history.json").read_text())
    resumed = json.loads((out / "history.json").read_text())
    assert [h["epoch"] for h in resumed] == [0, 1, 2]
    assert full[2]["val"] == resumed[2]["val"]


def test_zero_learning_rate_keeps_input_metrics(tmp_path: Path, data_root: Path, tiny_config, seed_command) -> None:
    # clip_shape off: with it the untrained head returns clip-mean betas, not HybrIK's per-frame ones;
    # smooth_kernel off: with it the untrained head returns HybrIK's pose low-passed, not as given
    cfg = tiny_config(tmp_path, "train_h36m", data_root, lr_backbone=0.0, lr_head=0.0, clip_shape=False,
                      smooth_kernel=0)
    out = tmp_path / "lr0"
    assert main(seed_command(cfg, out)) == 0
    report = json.loads((out / "metrics_h36m.json").read_text())
    for key in METRIC_KEYS:
        assert report["refined"][key] == pytest.approx(report["input"][key], abs=1e-3), key


def test_finetune_loads_backbone_and_reports(trained: tuple[Path, Path], tmp_path: Path, data_root: Path,
                                             caplog: pytest.LogCaptureFixture, tiny_config, seed_command) -> None:
    _, out = trained
    cfg = tiny_config(tmp_path, "ft_pw3d", data_root)
    pretrain_dir = tmp_path / "checkpoint" / "pretrain" / "run"
    pretrain_dir.mkdir(parents=True)
    (pretrain_dir / "latest_epoch.bin").write_bytes((out / "best_epoch.bin").read_bytes())
    assert main(seed_command(cfg, tmp_path / "ft", "--pretrained", str(pretrain_dir))) == 0
    assert any("loaded" in r.getMessage() and "backbone tensors" in r.getMessage() for r in caplog.records)
    # a file with no backbone tensor (e.g. MotionBERT's DSTformer) is refused
    torch.save({"model_pos": {"module.joints_embed.weight": torch.ones(512, 3)}}, pretrain_dir / "mb.bin")
    assert main(seed_command(cfg, tmp_path / "ft2", "--pretrained", str(pretrain_dir), "-ms", "mb.bin")) == 2
    # finetune without any backbone source is an error
    assert main(seed_command(cfg, tmp_path / "ft3")) == 2


def test_seed_h36m_commands_run(tmp_path: Path, data_root: Path, tiny_config, seed_command) -> None:
    train = tiny_config(tmp_path, "train_h36m", data_root)
    assert main(seed_command(train, tmp_path / "h36m", hyper=HYPER2)) == 0
    ft = tiny_config(tmp_path, "ft_h36m", data_root, backbone_ckpt=str(tmp_path / "h36m" / "best_epoch.bin"))
    assert main(seed_command(ft, tmp_path / "ft_h36m", hyper=HYPER2)) == 0
    assert main(seed_command(train, tmp_path / "eval_h36m", "--evaluate", str(tmp_path / "ft_h36m" / "best_epoch.bin"),
                          hyper=HYPER2)) == 0
    assert (tmp_path / "eval_h36m" / "metrics_h36m.json").is_file()


def test_checkpoint_from_another_model_is_refused(trained: tuple[Path, Path], tmp_path: Path,
                                                  capsys: pytest.CaptureFixture, seed_command) -> None:
    cfg, out = trained
    code = main(seed_command(cfg, tmp_path / "e", "--evaluate", str(out / "best_epoch.bin"), hyper=HYPER2))
    err = capsys.readouterr().err
    assert code == 2 and "different model" in err and "hyper.joint_label" in err


def test_contradictory_and_missing_flags(trained: tuple[Path, Path], tmp_path: Path,
                                                 capsys: pytest.CaptureFixture, seed_command) -> None:
    cfg, out = trained
    assert main(seed_command(cfg, tmp_path / "x", "--evaluate", str(out / "best_epoch.bin"), "-r",
                          str(out / "latest_epoch.bin"))) == 2
    assert "contradict" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["--config", str(cfg)])  # --checkpoint is required
    assert main(["--config", str(cfg), "--checkpoint", str(tmp_path / "v2"), "--version", "2"]) == 2
    assert "--hyper_cfg" in capsys.readouterr().err


def test_non_finite_loss_stops_with_names(tmp_path: Path, data_root: Path, monkeypatch: pytest.MonkeyPatch,
                                          capsys: pytest.CaptureFixture, tiny_config, seed_command) -> None:
    real = loop.compute_losses

    def poisoned(pred, gt, weights, loss_type):
        losses = real(pred, gt, weights, loss_type)
        losses["loss_pose"] = losses["loss_pose"] * float("nan")
        losses["total"] = losses["total"] + losses["loss_pose"]
        return losses

    monkeypatch.setattr(loop, "compute_losses", poisoned)
    cfg = tiny_config(tmp_path, "train_h36m", data_root)
    assert main(seed_command(cfg, tmp_path / "nan")) == 2
    err = capsys.readouterr().err
    assert "non-finite loss (loss_pose, total) at epoch 1, pass h36m, batch 0, sequences S" in err
    assert not (tmp_path / "nan" / "latest_epoch.bin").exists()


def test_training_that_never_beats_the_start_returns_epoch_0(tmp_path: Path, data_root: Path, tiny_config,
                                                              seed_command, caplog: pytest.LogCaptureFixture) -> None:
    """A learning rate large enough to wreck the model: best_epoch.bin keeps the untrained weights."""
    from lib.deploy.model_io import load_refiner_from_checkpoint

    cfg = tiny_config(tmp_path, "train_h36m", data_root, lr_backbone=0.5, lr_head=0.5, epochs=2)
    out = tmp_path / "diverge"
    with caplog.at_level("INFO"):
        assert main(seed_command(cfg, out)) == 0
    history = json.loads((out / "history.json").read_text())
    start = history[0]["val"]["h36m"]["refined"]["mpjpe"]
    assert [h["epoch"] for h in history] == [0, 1, 2]
    assert all(h["val"]["h36m"]["refined"]["mpjpe"] > start + 1.0 for h in history[1:])  # training made it worse
    best = mck.read_checkpoint(out / "best_epoch.bin")
    assert best["epoch"] == 0 and best["best_epoch"] == 0 and best["best_metric"] == pytest.approx(start)
    assert mck.read_checkpoint(out / "latest_epoch.bin")["epoch"] == 2
    # the saved weights are the untrained ones: the same seed builds the same initial model
    from lib.config.cli import load_configs
    from lib.model.build import build_model
    from lib.train.cli import build_parser

    task_cfg, hyper_cfg, options = load_configs(build_parser().parse_args(seed_command(cfg, out)))
    torch.manual_seed(0)
    fresh = build_model(task_cfg, hyper_cfg, options).state_dict()
    for key, value in best["model"].items():
        torch.testing.assert_close(value, fresh[key], msg=key)
    assert json.loads((out / "metrics_h36m.json").read_text())["epoch"] == 0
    assert "no epoch beat the untrained start" in caplog.text
    load_refiner_from_checkpoint(out / "best_epoch.bin")  # a complete checkpoint that loads


def _file_size_limit(limit_bytes: int):
    """preexec_fn: writes past ``limit_bytes`` fail with EFBIG (a full disk, as far as one file goes)."""
    import resource

    def apply() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit_bytes, limit_bytes))

    return apply


def test_a_full_disk_at_a_checkpoint_save_is_one_line_and_a_restart_resumes(trained: tuple[Path, Path],
                                                                             tmp_path: Path, data_root: Path,
                                                                             tiny_config, seed_command) -> None:
    import shutil

    _, out_full = trained
    out = tmp_path / "ckpt"
    shutil.copytree(out_full, out)  # 2 epochs done; epoch 3's checkpoint will not fit
    cfg3 = tiny_config(tmp_path, "train_pw3d", data_root, epochs=3)
    size = (out / "latest_epoch.bin").stat().st_size
    sizes = sorted(p.stat().st_size for p in out.rglob("*") if p.is_file() and p.suffix != ".bin")
    limit = size // 2
    assert sizes[-1] * 2 < limit, (size, sizes)  # history, configs, metrics, log and events still fit
    cmd = [sys.executable, str(ROOT / "train_mesh_refine.py"), *seed_command(cfg3, out)]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300,
                          preexec_fn=_file_size_limit(limit))
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert proc.stderr.endswith(f"error: {out / 'latest_epoch.bin'}: cannot write (EFBIG, File too large); "
                                f"the file exceeds a file-size limit (ulimit -f) or the file system's maximum; "
                                "raise the limit or write elsewhere; the previous file, if any, is unchanged\n")
    assert "Traceback" not in proc.stderr
    assert mck.read_checkpoint(out / "latest_epoch.bin")["epoch"] == 2  # the previous checkpoint, intact
    assert not list(out.glob(".*.tmp"))
    assert main(seed_command(cfg3, out)) == 0  # a plain restart resumes epoch 3
    assert mck.read_checkpoint(out / "latest_epoch.bin")["epoch"] == 3
    assert [h["epoch"] for h in json.loads((out / "history.json").read_text())] == [0, 1, 2, 3]

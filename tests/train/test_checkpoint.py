"""Checkpoints: atomic writes, prefix stripping, exact RNG round trip, compatibility and backbone loading."""

from __future__ import annotations

import dataclasses
import random
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from lib.config.task import TaskConfig
from lib.errors import CheckpointError
from lib.model import checkpoint as mck
from lib.train import checkpoint as ck


class Tiny(nn.Module):
    def __init__(self, width: int = 4) -> None:
        super().__init__()
        self.backbone = nn.Sequential(nn.Linear(3, width), nn.LayerNorm(width))
        self.head = nn.Linear(width, 2)


@dataclasses.dataclass(frozen=True)
class Options:
    version: int = 2
    hyper_relation_bias: str = "uniform"


def test_atomic_save_keeps_previous_file_when_interrupted(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "latest_epoch.bin"
    ck.atomic_save({"model": {"w": torch.ones(3)}, "epoch": 1}, path)

    def dying_save(obj, handle):  # writes half a file, then the process "dies"
        handle.write(b"garbage")
        raise KeyboardInterrupt

    monkeypatch.setattr(ck.torch, "save", dying_save)
    with pytest.raises(KeyboardInterrupt):
        ck.atomic_save({"model": {"w": torch.zeros(3)}, "epoch": 2}, path)
    monkeypatch.undo()
    assert mck.read_checkpoint(path)["epoch"] == 1
    assert [p.name for p in tmp_path.iterdir()] == ["latest_epoch.bin"]  # no temp file left behind


def test_strip_wrapper_prefixes() -> None:
    state = {"module.backbone.0.weight": 1, "_orig_mod.module.head.bias": 2, "head.weight": 3}
    assert mck.strip_wrapper_prefixes(state) == {"backbone.0.weight": 1, "head.bias": 2, "head.weight": 3}


def test_rng_round_trip_through_a_weights_only_file(tmp_path: Path) -> None:
    random.seed(1), np.random.seed(2), torch.manual_seed(3)
    ck.atomic_save({"model": {}, "rng": ck.capture_rng()}, tmp_path / "c.bin")
    expected = (random.random(), np.random.rand(3), torch.rand(3))
    random.seed(9), np.random.seed(9), torch.manual_seed(9)
    ck.restore_rng(mck.read_checkpoint(tmp_path / "c.bin")["rng"])
    again = (random.random(), np.random.rand(3), torch.rand(3))
    assert expected[0] == again[0]
    np.testing.assert_array_equal(expected[1], again[1])
    assert torch.equal(expected[2], again[2])


def test_full_checkpoint_round_trip_and_signature(tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = Tiny()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    sched = torch.optim.lr_scheduler.StepLR(opt, 1, 0.5)
    model.head(model.backbone(torch.ones(2, 3))).sum().backward()
    opt.step()
    sched.step()
    cfg = TaskConfig(dt_file_pw3d="x.pkl")
    state = ck.build_checkpoint(model=model, optimizer=opt, scheduler=sched, scaler=None, epoch=3, best_metric=42.5,
                                best_epoch=2, task_cfg=cfg, hyper_cfg=None, options=Options())
    ck.atomic_save(state, tmp_path / "c.bin")
    loaded = mck.read_checkpoint(tmp_path / "c.bin")
    assert (loaded["epoch"], loaded["best_metric"], loaded["best_epoch"]) == (3, 42.5, 2)
    other = Tiny()
    mck.load_model_state(other, loaded, tmp_path / "c.bin")
    for (k, a), (_, b) in zip(model.state_dict().items(), other.state_dict().items()):
        assert torch.equal(a, b), k
    mck.check_compatible(loaded, "c.bin", mck.model_signature(cfg.replace(lr_head=1.0, epochs=5), None, Options()))
    with pytest.raises(CheckpointError) as err:
        mck.check_compatible(loaded, "c.bin", mck.model_signature(cfg.replace(depth=2), None, Options(version=1)))
    msg = str(err.value)
    assert "depth: checkpoint 6, now 2" in msg and "option.version: checkpoint 2, now 1" in msg and "\n" not in msg


def test_strict_load_names_missing_and_unexpected(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match=r"1 missing: head.bias.*1 unexpected: head.extra"):
        state = Tiny().state_dict()
        state["head.extra"] = state.pop("head.bias")
        mck.load_model_state(Tiny(), {"model": state}, "x.bin")


def test_read_errors(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match="checkpoint not found"):
        mck.read_checkpoint(tmp_path / "missing.bin")
    bad = tmp_path / "truncated.bin"
    ck.atomic_save({"model": {"w": torch.ones(100)}}, bad)
    bad.write_bytes(bad.read_bytes()[:50])
    with pytest.raises(CheckpointError, match="not a readable checkpoint"):
        mck.read_checkpoint(bad)


def test_backbone_loading_by_name_and_shape(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    torch.manual_seed(0)
    source = Tiny()
    state = {"module." + k: v for k, v in source.state_dict().items()}
    state["module.backbone.1.weight"] = torch.ones(7)  # wrong shape: reported, not loaded
    torch.save({"model_pos": state}, tmp_path / "pre.bin")
    target = Tiny()
    head_before = target.head.weight.clone()
    report = ck.load_backbone_weights(target, tmp_path / "pre.bin")
    assert report.loaded == 3 and report.mismatched == ("backbone.1.weight",) and report.missing == ()
    assert torch.equal(target.backbone[0].weight, source.backbone[0].weight)
    assert torch.equal(target.head.weight, head_before)  # the head is never taken from a pretrained file


def test_backbone_loading_refuses_unrelated_weights(tmp_path: Path) -> None:
    torch.save({"model_pos": {"module.joints_embed.weight": torch.ones(512, 3)}}, tmp_path / "mb.bin")
    with pytest.raises(CheckpointError, match="no tensor matches the backbone"):
        ck.load_backbone_weights(Tiny(), tmp_path / "mb.bin")


def test_signature_without_a_later_weight_key_means_its_default() -> None:
    from lib.model.checkpoint import model_signature, signature_differences

    options = {"version": 1}
    current = model_signature(TaskConfig(dt_file_pw3d="x.pkl"), None, options)
    older = {k: v for k, v in current.items() if k != "smooth_kernel"}  # written before the key existed
    assert signature_differences(older, current) == []
    smoothed = model_signature(TaskConfig(dt_file_pw3d="x.pkl", smooth_kernel=5), None, options)
    assert signature_differences(older, smoothed) == ["smooth_kernel: checkpoint 0, now 5"]
    fixed_width = {k: v for k, v in smoothed.items() if k != "smooth_adaptive"}
    adaptive = model_signature(TaskConfig(dt_file_pw3d="x.pkl", smooth_kernel=5, smooth_adaptive=True), None, options)
    assert signature_differences(fixed_width, smoothed) == []
    assert signature_differences(fixed_width, adaptive) == ["smooth_adaptive: checkpoint False, now True"]


def test_clip_shape_is_part_of_the_signature_old_checkpoints_included() -> None:
    options = {"version": 1}
    per_frame = TaskConfig(dt_file_pw3d="x.pkl", clip_shape=False)
    clip_mean = per_frame.replace(clip_shape=True)
    saved = mck.model_signature(per_frame, None, options)
    with pytest.raises(CheckpointError, match=r"clip_shape: checkpoint False, now True"):
        mck.check_compatible({"signature": saved}, "c.bin", mck.model_signature(clip_mean, None, options))
    # a signature written before clip_shape joined it: the stored task config says which it was ...
    older = {k: v for k, v in mck.model_signature(clip_mean, None, options).items() if k != "clip_shape"}
    mck.check_compatible({"signature": older, "task_config": clip_mean.to_dict()}, "c.bin",
                        mck.model_signature(clip_mean, None, options))
    with pytest.raises(CheckpointError, match=r"clip_shape: checkpoint True, now False"):
        mck.check_compatible({"signature": older, "task_config": clip_mean.to_dict()}, "c.bin", saved)
    # ... and without one it was written before the key existed: HybrIK's per-frame betas
    assert mck.signature_differences(older, saved) == []


class _Payload:
    """Unpickling this runs ``Path.touch(marker)``: what ``weights_only`` must never do."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def test_a_checkpoint_holding_an_arbitrary_object_is_refused_without_running_it(tmp_path: Path) -> None:
    marker = tmp_path / "code_ran"
    path = tmp_path / "evil.bin"
    torch.save({"model": {"w": torch.ones(2)}, "extra": _Payload(marker)}, path)
    for read in (mck.read_checkpoint, ck.read_checkpoint_any):
        with pytest.raises(CheckpointError, match=r"evil.bin: not a readable checkpoint") as err:
            read(path)
        assert "\n" not in str(err.value)
    assert not marker.exists()

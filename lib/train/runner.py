"""``run(run_opts, task_cfg, hyper_cfg, options)``: wires configs, model, data, optimizer, checkpoints and
evaluation together.

The order of one epoch mirrors the original: an H36M pass (+ H36M validation) while
``epoch < warmup_h36m``, a COCO pass while ``epoch < warmup_coco``, a 3DPW pass if ``train_pw3d``, then
3DPW validation when a 3DPW file is configured. The selection metric is the refined 14-joint MPJPE on
3DPW when configured, else on H36M.
"""

from __future__ import annotations

import json
import logging
import math
import random
import shlex
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, DistributedSampler, RandomSampler

from lib import runtime
from lib.atomic_write import TEMP_GLOB, make_folder, write_text_atomic
from lib.body.smpl import BodyModel
from lib.config.hyper import HyperConfig
from lib.config.options import ModelOptions
from lib.config.task import TaskConfig
from lib.errors import ConfigError
from lib.eval.evaluate import EvalReport, evaluate_split, format_report_table
from lib.model import checkpoint as model_ckpt
from lib.model.build import build_model, count_trainable_parameters
from lib.train import checkpoint as ckpt_io
from lib.train.log_setup import setup_logging
from lib.train.loop import train_one_epoch
from lib.train.options import RunOptions

log = logging.getLogger("train_mesh_refine")


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


HISTORY = "history.json"  # one entry per completed epoch: train losses, validation metrics, lr, time


def read_history(out: Path, keep_epochs: int) -> list[dict[str, Any]]:
    """The per-epoch history of a resumed run, truncated to the epochs the checkpoint holds."""
    path = out / HISTORY
    if keep_epochs == 0 or not path.is_file():
        return []
    return [e for e in json.loads(path.read_text(encoding="utf-8")) if e["epoch"] <= keep_epochs]


def save_run_configs(out: Path, run_opts: RunOptions, task_cfg: TaskConfig, hyper_cfg: HyperConfig | None,
                     options: ModelOptions) -> None:
    """Copies of both YAMLs plus the resolved config of this run, next to the checkpoints."""
    for src in (run_opts.config, run_opts.hyper_cfg):
        if src is not None:
            write_text_atomic(out / Path(src).name, Path(src).read_text(encoding="utf-8"))
    resolved = {
        "task_config": task_cfg.to_dict(),
        "hyper_config": model_ckpt.config_as_dict(hyper_cfg),
        "model_options": model_ckpt.config_as_dict(options),
        "command": " ".join(shlex.quote(a) for a in sys.argv),
    }
    write_text_atomic(out / "resolved_config.yaml", yaml.safe_dump(resolved, sort_keys=False))


def test_splits(task_cfg: TaskConfig) -> list[str]:
    """Datasets validated by this config: H36M if it names an H36M file, 3DPW if it names a 3DPW file."""
    return [name for name, f in (("h36m", task_cfg.dt_file_h36m), ("pw3d", task_cfg.dt_file_pw3d)) if f]


def write_metrics(out: Path, report: EvalReport, **extra: Any) -> Path:
    path = out / f"metrics_{report.dataset}.json"
    write_text_atomic(path, json.dumps({**report.to_json(), **extra}, indent=2) + "\n")
    return path


def run(run_opts: RunOptions, task_cfg: TaskConfig, hyper_cfg: HyperConfig | None, options: ModelOptions) -> None:
    """One run: evaluate ``run_opts.evaluate``, or train (fresh, resumed or finetuned) into ``run_opts.checkpoint``."""
    info, device = runtime.setup(run_opts.device)
    try:
        _run(run_opts, task_cfg, hyper_cfg, options, info, device)
    finally:
        runtime.teardown(info)


def _run(run_opts: RunOptions, task_cfg: TaskConfig, hyper_cfg: HyperConfig | None, options: ModelOptions,
         info: runtime.DistInfo, device: torch.device) -> None:
    out: Path = make_folder(run_opts.checkpoint)
    stamp = time.strftime("%Y%m%d_%H%M%S")
    setup_logging(out / task_cfg.log / f"{stamp}_{task_cfg.dataset}.log" if info.is_main else None, rank=info.rank)
    log.info("command: %s", " ".join(shlex.quote(a) for a in sys.argv))
    if options.version == 1 and hyper_cfg is not None:
        log.info("%s: read and validated; unused with --version 1 (no hypergraph block)", run_opts.hyper_cfg)
    if info.is_main:
        for stale in out.glob(TEMP_GLOB):  # left by a run killed mid-save; the previous file is intact
            log.info("removing %s (an interrupted save)", stale)
            stale.unlink()
        save_run_configs(out, run_opts, task_cfg, hyper_cfg, options)
    seed_everything(run_opts.seed)
    autocast_dtype = None
    if run_opts.amp:
        if device.type == "cuda":
            autocast_dtype = torch.bfloat16
            log.info("--amp: bf16 autocast on %s (SMPL, losses and metrics stay float32)", device)
        else:
            log.info("--amp ignored on %s: mixed precision is used on CUDA only", device)
    log.info("device: %s%s", device, f", process {info.rank} of {info.world_size}" if info.enabled else "")

    model = build_model(task_cfg, hyper_cfg, options).to(device)
    log.info("trainable parameters: %.6f M", count_trainable_parameters(model) / 1e6)
    body = BodyModel(task_cfg.data_root).to(device)

    if run_opts.evaluate is not None:
        evaluate_checkpoint(run_opts, task_cfg, hyper_cfg, options, model, body, device, out, info)
        return
    train(run_opts, task_cfg, hyper_cfg, options, model, body, device, out, info, autocast_dtype)


def evaluate_checkpoint(run_opts: RunOptions, task_cfg: TaskConfig, hyper_cfg: HyperConfig | None,
                        options: ModelOptions, model, body, device, out: Path,
                        info: runtime.DistInfo) -> list[EvalReport]:
    ckpt = model_ckpt.read_checkpoint(run_opts.evaluate)
    model_ckpt.check_compatible(ckpt, run_opts.evaluate, model_ckpt.model_signature(task_cfg, hyper_cfg, options))
    model_ckpt.load_model_state(model, ckpt, run_opts.evaluate)
    log.info("evaluating %s (trained %d epochs)", run_opts.evaluate, ckpt.get("epoch", -1))
    reports = []
    for dataset in test_splits(task_cfg):
        report = evaluate_split(model, body, task_cfg, dataset, device, dist_info=info)
        if info.is_main:
            path = write_metrics(out, report, checkpoint=str(run_opts.evaluate), epoch=ckpt.get("epoch"))
            print(format_report_table(report))
            log.info("wrote %s", path)
        reports.append(report)
    return reports


def make_optimizer(model: torch.nn.Module, task_cfg: TaskConfig) -> torch.optim.Optimizer:
    """AdamW with a backbone group (``lr_backbone``) and a head group (``lr_head``)."""
    backbone = [p for n, p in model.named_parameters() if n.startswith("backbone.") and p.requires_grad]
    head = [p for n, p in model.named_parameters() if not n.startswith("backbone.") and p.requires_grad]
    return torch.optim.AdamW([{"params": backbone, "lr": task_cfg.lr_backbone, "name": "backbone"},
                              {"params": head, "lr": task_cfg.lr_head, "name": "head"}],
                             weight_decay=task_cfg.weight_decay)


def apply_partial_train(model: torch.nn.Module, patterns: tuple[str, ...] | None) -> None:
    """Freeze backbone parameters whose name contains none of ``patterns`` (None: train everything)."""
    if patterns is None:
        return
    frozen = 0
    for name, param in model.named_parameters():
        if name.startswith("backbone.") and not any(p in name for p in patterns):
            param.requires_grad_(False)
            frozen += 1
    log.info("partial_train %s: froze %d backbone tensors", list(patterns), frozen)


def describe_batch(split, batch: dict) -> str:
    """The sequence names of a batch (first frame of each clip), for error messages."""
    names = sorted({split.sequence_name(int(row)) for row in batch["frame_index"][:, 0].tolist()})
    return ", ".join(names[:8]) + (f" (+{len(names) - 8} more)" if len(names) > 8 else "")


def resolve_resume(run_opts: RunOptions, out: Path) -> Path | None:
    if run_opts.resume is not None:
        return run_opts.resume
    latest = out / ckpt_io.LATEST
    if latest.is_file():
        log.info("resuming from %s (found in --checkpoint; pass -r to choose another file)", latest)
        return latest
    return None


def resolve_pretrained(run_opts: RunOptions, task_cfg: TaskConfig) -> Path | None:
    if run_opts.pretrained is not None:
        return run_opts.pretrained / run_opts.selection
    if task_cfg.backbone_ckpt:
        return Path(task_cfg.backbone_ckpt)
    if task_cfg.finetune:
        raise ConfigError(f"{task_cfg.source}: finetune is true but no backbone is given; pass --pretrained DIR "
                          "[--selection FILE] or set backbone_ckpt to a checkpoint written by this project")
    return None


def wrap_distributed(model: torch.nn.Module, device: torch.device, info: runtime.DistInfo) -> torch.nn.Module:
    """DDP wrapper under torchrun (identity otherwise); BatchNorm -> SyncBatchNorm on CUDA only."""
    if not info.enabled:
        return model
    if device.type == "cuda":
        model = torch.nn.SyncBatchNorm.convert_sync_batchnorm(model)
        log.info("DDP on %d processes (nccl); BatchNorm -> SyncBatchNorm", info.world_size)
    else:
        log.info("DDP on %d processes (gloo, CPU); BatchNorm keeps per-process statistics", info.world_size)
    return DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)


def make_loader(dataset, batch: int, seed: int, epoch: int, task_cfg: TaskConfig, device: torch.device,
                info: runtime.DistInfo, single_frames: bool) -> DataLoader:
    """An epoch's loader: shuffled by (seed, epoch) only, so a resumed run sees the same order."""
    generator = torch.Generator().manual_seed(seed * 100_003 + epoch)
    if info.enabled:
        sampler = DistributedSampler(dataset, num_replicas=info.world_size, rank=info.rank, shuffle=True, seed=seed)
        sampler.set_epoch(epoch)
        per_process = len(sampler)
    else:
        sampler = RandomSampler(dataset, generator=generator)
        per_process = len(dataset)
    return DataLoader(dataset, batch_size=batch, sampler=sampler, num_workers=task_cfg.num_workers,
                      # BatchNorm cannot train on one frame: drop a lone single-frame tail
                      drop_last=single_frames and per_process % batch == 1,
                      persistent_workers=False, pin_memory=device.type == "cuda")


def train(run_opts: RunOptions, task_cfg: TaskConfig, hyper_cfg: HyperConfig | None, options: ModelOptions,
          model, body, device, out: Path, info: runtime.DistInfo,
          autocast_dtype: torch.dtype | None) -> None:
    from torch.utils.tensorboard import SummaryWriter

    from lib.data.datasets import MeshFiles, build_eval_splits, build_train_sets

    signature = model_ckpt.model_signature(task_cfg, hyper_cfg, options)
    resume = resolve_resume(run_opts, out)
    ckpt = None
    if resume is not None:
        ckpt = model_ckpt.read_checkpoint(resume)
        model_ckpt.check_compatible(ckpt, resume, signature)
        model_ckpt.load_model_state(model, ckpt, resume)
        if run_opts.pretrained is not None or task_cfg.backbone_ckpt:
            log.info("resuming: the pretrained backbone is not loaded (the checkpoint already holds trained weights)")
    else:
        pretrained = resolve_pretrained(run_opts, task_cfg)
        if pretrained is not None:
            ckpt_io.load_backbone_weights(model, pretrained)
    apply_partial_train(model, task_cfg.partial_train)

    optimizer = make_optimizer(model, task_cfg)
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=1, gamma=task_cfg.lr_decay)
    start_epoch, best, best_epoch = 0, math.inf, 0
    if ckpt is not None:
        optimizer.load_state_dict(ckpt["optimizer"])
        scheduler.load_state_dict(ckpt["scheduler"])
        start_epoch, best, best_epoch = ckpt["epoch"], ckpt["best_metric"], ckpt["best_epoch"]
        log.info("resumed at epoch %d/%d, best %.2f mm (epoch %d), lr %s", start_epoch, task_cfg.epochs, best,
                 best_epoch, [f"{lr:.3g}" for lr in scheduler.get_last_lr()])
    if start_epoch >= task_cfg.epochs:
        log.info("nothing to do: %d of %d epochs already done (raise 'epochs' to continue)", start_epoch, task_cfg.epochs)
        return
    net = wrap_distributed(model, device, info)
    if info.enabled:
        log.info("batch sizes are per process: %d processes x batch_size %d = %d clips per step "
                 "(COCO: %d x %d images)", info.world_size, task_cfg.batch_size, info.world_size * task_cfg.batch_size,
                 info.world_size, task_cfg.batch_size_img)

    files = MeshFiles(task_cfg)  # each pickle loaded once, shared by training and validation
    sets = build_train_sets(task_cfg, seed=run_opts.seed, files=files)
    test_sets = build_eval_splits(task_cfg, files)
    select_on = "pw3d" if task_cfg.dt_file_pw3d else "h36m"
    writer = SummaryWriter(str(out / "logs")) if info.is_main else None
    history = read_history(out, keep_epochs=start_epoch)
    if ckpt is not None:
        ckpt_io.restore_rng(ckpt["rng"])
    try:
        if start_epoch == 0:  # the untrained start (epoch 0) is validated and competes for best_epoch.bin
            best, best_epoch = validate_start(net, body, task_cfg, test_sets, select_on, device, info, out, writer,
                                              history, model, optimizer, scheduler, hyper_cfg, options)
        for epoch in range(start_epoch, task_cfg.epochs):
            t0 = time.perf_counter()
            passes = []
            if "h36m" in sets and epoch < task_cfg.warmup_h36m:
                passes.append("h36m")
            if "coco" in sets and epoch < task_cfg.warmup_coco:
                passes.append("coco")
            if task_cfg.train_pw3d and "pw3d" in sets:
                passes.append("pw3d")
            totals: dict[str, float] = {}
            clips = 0
            for name in passes:
                dataset = sets[name]
                dataset.set_epoch(epoch)
                batch = task_cfg.batch_size_img if name == "coco" else task_cfg.batch_size
                loader = make_loader(dataset, batch, run_opts.seed, epoch, task_cfg, device, info, name == "coco")
                stats = train_one_epoch(net, loader, optimizer, body, task_cfg, device, epoch=epoch, pass_name=name,
                                        describe_batch=lambda b, d=dataset: describe_batch(d.split, b),
                                        autocast_dtype=autocast_dtype, dist_info=info)
                for k, v in stats.means().items():
                    totals[k] = totals.get(k, 0.0) + v * stats.clips
                clips += stats.clips
                log.info("epoch %d %s pass: %d clips in %.1fs (%.1f clips/s%s), loss %.3f", epoch + 1, name,
                         stats.clips, stats.seconds, stats.clips / max(stats.seconds, 1e-9),
                         " over all processes" if info.enabled else "", stats.means()["total"])

            reports = validate(net, body, task_cfg, test_sets, select_on, epoch, device, info)
            lrs = dict(zip((g["name"] for g in optimizer.param_groups), scheduler.get_last_lr()))
            scheduler.step()
            current = reports[select_on].refined["mpjpe"] if select_on in reports else math.inf
            improved = current < best
            if improved:
                best, best_epoch = current, epoch + 1
            if info.is_main:
                history.append({
                    "epoch": epoch + 1, "seconds": round(time.perf_counter() - t0, 3), "lr": lrs,
                    "train": {k: v / max(clips, 1) for k, v in totals.items()},
                    "val": {n: {"input": r.input, "refined": r.refined, "frames": r.frames} for n, r in reports.items()},
                })
                save_epoch(out, writer, history, reports, improved, epoch, task_cfg, hyper_cfg, options, model,
                           optimizer, scheduler, best, best_epoch)
            runtime.barrier(info)
            summary = "  ".join(f"{n} mpjpe {r.input['mpjpe']:.2f} -> {r.refined['mpjpe']:.2f} mm"
                                for n, r in reports.items())
            log.info("epoch %d/%d done in %.1fs, lr %s, %s, best %.2f mm (epoch %d)", epoch + 1, task_cfg.epochs,
                     time.perf_counter() - t0, [f"{lr:.3g}" for lr in lrs.values()], summary, best, best_epoch)
            if task_cfg.quickdebug:
                log.info("quickdebug: stopping after one epoch")
                break
    finally:
        if writer is not None:
            writer.close()
    for name in test_splits(task_cfg):
        path = out / f"metrics_{name}.json"
        if info.is_main and path.is_file():
            log.info("best epoch %d: %s", best_epoch, path)
    if best_epoch == 0 and math.isfinite(best):
        log.warning("no epoch beat the untrained start: %s holds the starting weights (epoch 0, %s mpjpe %.2f mm); "
                    "lower the learning rate or check the training data", out / ckpt_io.BEST, select_on, best)


def validate(net, body, task_cfg, test_sets: dict, select_on: str, epoch: int, device: torch.device,
             info: runtime.DistInfo) -> dict[str, EvalReport]:
    """Validation after ``epoch`` completed epochs' training (0: before any step): H36M during its
    warm-up epochs or when selecting on it, 3DPW when selecting on it."""
    reports: dict[str, EvalReport] = {}
    if "h36m" in test_sets and (epoch < task_cfg.warmup_h36m or select_on == "h36m"):
        reports["h36m"] = evaluate_split(net, body, task_cfg, "h36m", device, split=test_sets["h36m"], dist_info=info)
    if select_on == "pw3d":
        reports["pw3d"] = evaluate_split(net, body, task_cfg, "pw3d", device, split=test_sets["pw3d"], dist_info=info)
    return reports


def validate_start(net, body, task_cfg, test_sets: dict, select_on: str, device: torch.device,
                   info: runtime.DistInfo, out: Path, writer, history: list, model, optimizer, scheduler,
                   hyper_cfg, options) -> tuple[float, int]:
    """Validate the model before training (epoch 0) and save it as ``best_epoch.bin``.

    A run whose training never beats its starting point (a diverging learning rate, data that the
    refiner does not generalise from) then still returns the starting weights as the best model.
    Returns (best metric, best epoch = 0).
    """
    t0 = time.perf_counter()
    reports = validate(net, body, task_cfg, test_sets, select_on, 0, device, info)
    best = reports[select_on].refined["mpjpe"] if select_on in reports else math.inf
    if info.is_main:
        lrs = {g["name"]: g["lr"] for g in optimizer.param_groups}
        history.append({"epoch": 0, "seconds": round(time.perf_counter() - t0, 3), "lr": lrs, "train": {},
                        "val": {n: {"input": r.input, "refined": r.refined, "frames": r.frames}
                                for n, r in reports.items()}})
        save_epoch(out, writer, history, reports, True, -1, task_cfg, hyper_cfg, options, model, optimizer,
                   scheduler, best, 0)
    runtime.barrier(info)
    summary = "  ".join(f"{n} mpjpe {r.input['mpjpe']:.2f} -> {r.refined['mpjpe']:.2f} mm" for n, r in reports.items())
    log.info("epoch 0 (before training) validated in %.1fs: %s", time.perf_counter() - t0, summary)
    return best, 0


def save_epoch(out: Path, writer, history: list, reports: dict, improved: bool, epoch: int, task_cfg, hyper_cfg,
               options, model, optimizer, scheduler, best: float, best_epoch: int) -> None:
    """Rank 0: TensorBoard scalars, history, then the checkpoints (latest last but one, best last).

    ``epoch`` is 0-based (the epoch just trained); -1 records the model before training (epoch 0 in
    the files), which writes ``best_epoch.bin`` only.
    """
    entry = history[-1]
    for k, v in entry["train"].items():
        writer.add_scalar(f"train/{'loss' if k == 'total' else k}", v, epoch + 1)
    for group, lr in entry["lr"].items():
        writer.add_scalar(f"lr/{group}", lr, epoch + 1)
    for name, report in reports.items():
        for variant in ("input", "refined"):
            for metric, value in getattr(report, variant).items():
                writer.add_scalar(f"val_{name}/{variant}_{metric}", value, epoch + 1)
    writer.flush()
    # history first: a run killed before the checkpoint below resumes from the previous epoch and
    # drops this entry (read_history keeps only the epochs the checkpoint holds)
    write_text_atomic(out / HISTORY, json.dumps(history, indent=1) + "\n")
    state = ckpt_io.build_checkpoint(model=model, optimizer=optimizer, scheduler=scheduler, scaler=None,
                                     epoch=epoch + 1, best_metric=best, best_epoch=best_epoch,
                                     task_cfg=task_cfg, hyper_cfg=hyper_cfg, options=options)
    if epoch >= 0:  # epoch 0 (before training) is only a candidate for best: resuming starts fresh anyway
        ckpt_io.atomic_save(state, out / ckpt_io.LATEST)
    if epoch >= 0 and (epoch + 1) % task_cfg.checkpoint_frequency == 0:
        ckpt_io.atomic_save(state, out / ckpt_io.epoch_file(epoch + 1))
    if improved:
        ckpt_io.atomic_save(state, out / ckpt_io.BEST)
        for report in reports.values():
            write_metrics(out, report, checkpoint=str(out / ckpt_io.BEST), epoch=epoch + 1)

"""ONNX export of the refiner, and its verification against PyTorch.

``export_onnx`` writes ONE self-contained file (weights and SMPL arrays inside, ``external_data=False``)
with torch's dynamo exporter and dynamic N and T (``torch.export.Dim``; T at most ``maxlen``, the
length of the temporal position table), explicit input / output names (``EXPORT_INPUT_NAMES`` /
``EXPORT_OUTPUT_NAMES``) and ``metadata_props`` for consumers (``lib.deploy.onnx_runner``).
The file is written through a temporary file and renamed, so a failed export leaves nothing half-written.

``verify_onnx`` then runs ``onnx.checker`` and compares onnxruntime (CPU) with the eager PyTorch model
on fresh, realistic random inputs at several (N, T); ``measure_latency`` times both.

Tolerances (max abs difference, ``DEFAULT_TOLERANCES``): vertices and keypoint_3d 1e-2 mm (the
issue's bound; PyTorch's own float32 rounding, measured against float64, is ~1e-3 mm at the default
size), rot_mat 1e-4 (unitless entries in [-1, 1]; ~0.006 deg, 50x the measured float32 rounding), shape
1e-4 (betas of order 1). Real export errors (a wrong axis, a baked shape, a changed weight) are orders
of magnitude larger. The report prints the float32 floor next to each difference.
"""

from __future__ import annotations

import contextlib
import copy
import json
import logging
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Mapping, Sequence

import numpy as np
import torch

from lib.config.hyper import HyperConfig
from lib.config.options import ModelOptions
from lib.config.task import TaskConfig
from lib.deploy import onnx_runner as meta
from lib.deploy.onnx_file import ExportInfo, export_info, write_onnx
from lib.deploy.onnx_runner import cpu_session
from lib.deploy.quantize import check_quantize, quantize_int8
from lib.model.refiner import EXPORT_INPUT_NAMES, EXPORT_OUTPUT_NAMES, MeshRefiner, MeshRefinerForExport
from lib.timing import median_ms

log = logging.getLogger(__name__)

DEFAULT_TOLERANCES: dict[str, float] = {"rot_mat": 1e-4, "shape": 1e-4, "vertices": 1e-2, "keypoint_3d": 1e-2}
UNITS = {"pose2d": "normalised x, y (see pose2d_normalisation) and confidence in [0, 1]",
         "hybrik_theta": "rad, SMPL axis-angle (24 x 3, global orientation first)",
         "hybrik_shape": "SMPL betas", "rot_mat": "rotation matrices (24 x 3 x 3, act on column vectors)",
         "shape": "SMPL betas", "vertices": "mm, centred on the H36M pelvis",
         "keypoint_3d": "mm, H36M-17 (J_regressor_h36m_correct), centred on the H36M pelvis"}
NORMALISATION = ("x_n = x / W * 2 - 1, y_n = y / W * 2 - H / W with (W, H) the frame size px "
                 "(lib.data.keypoints2d.normalize_2d); confidence clipped to [0, 1]; H36M-17 joint order")
DEFAULT_OPSET = 23  # ONNX Attention (lib.model.attention.multi_head_attention exports to one node)
TRACE_BATCH = 2          # example N while tracing (not 0 or 1, which torch.export would specialise)
MAX_AXIS_ANGLE_RAD = 0.8  # body joints of the random verification poses: |angle| up to this
MAX_BETA = 2.0


@dataclass
class ParityCheck:
    """onnxruntime vs PyTorch at one (N, T)."""

    n: int
    t: int
    max_abs: dict[str, float]
    tolerances: dict[str, float]
    float32_floor: dict[str, float] = field(default_factory=dict)  # max |torch float32 - torch float64|

    @property
    def ok(self) -> bool:
        return all(self.max_abs[k] <= self.tolerances[k] for k in self.max_abs)


@dataclass
class Latency:
    """Median milliseconds of one forward pass at (N, T)."""

    n: int
    t: int
    onnxruntime_ms: float
    torch_ms: float
    threads: int


@dataclass
class VerifyReport:
    checker_ok: bool
    parity: list[ParityCheck] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.checker_ok and all(p.ok for p in self.parity)


def export_metadata(*, clip_len: int, sample_stride: int, maxlen: int, flip: bool, in_channels: int,
                    signature: Mapping[str, Any], checkpoint: str | Path | None = None,
                    epoch: int | None = None, fit2d_prior: float | None = None,
                    fit2d_steps: int = 50, fit2d_robust: float | None = None) -> dict[str, str]:
    """``metadata_props`` of an exported refiner (all values strings; structured ones as JSON).

    ``fit2d_prior``/``fit2d_steps``/``fit2d_robust``: the task config's 2D fit of HybrIK's input, which the
    graph does not contain (``lib.deploy.pipeline.refine`` runs it before the graph when the metadata names one).
    """
    return {
        meta.METADATA_FORMAT: meta.FORMAT,
        meta.METADATA_CLIP_LEN: str(int(clip_len)),
        meta.METADATA_SAMPLE_STRIDE: str(int(sample_stride)),
        meta.METADATA_MAXLEN: str(int(maxlen)),
        meta.METADATA_FLIP: "true" if flip else "false",
        meta.METADATA_IN_CHANNELS: str(int(in_channels)),
        meta.METADATA_SIGNATURE: json.dumps(dict(signature), sort_keys=True),
        meta.METADATA_UNITS: json.dumps(UNITS),
        meta.METADATA_NORMALISATION: NORMALISATION,
        meta.METADATA_SOURCE: "" if checkpoint is None else str(checkpoint),
        meta.METADATA_EPOCH: "" if epoch is None else str(int(epoch)),
        meta.METADATA_FIT2D: "" if fit2d_prior is None else json.dumps(
            {"prior_weight": float(fit2d_prior), "steps": int(fit2d_steps),
             "robust": None if fit2d_robust is None else float(fit2d_robust)}),
    }


def realistic_inputs(n: int, t: int, in_channels: int = 3, seed: int = 0) -> dict[str, np.ndarray]:
    """Random inputs of the shapes and ranges real ones have (float32).

    pose2d: x, y uniform in [-1, 1], confidence uniform in [0, 1]; hybrik_theta: a global orientation
    of any angle (uniform axis, angle up to pi) and body joints with uniform axes and angles up to
    ``MAX_AXIS_ANGLE_RAD``; hybrik_shape: uniform in [-MAX_BETA, MAX_BETA].
    """
    rng = np.random.default_rng(seed)
    pose2d = rng.uniform(-1.0, 1.0, (n, t, 17, in_channels))
    if in_channels == 3:
        pose2d[..., 2] = rng.uniform(0.0, 1.0, (n, t, 17))
    axis = rng.normal(size=(n, t, 24, 3))
    axis /= np.linalg.norm(axis, axis=-1, keepdims=True)
    angle = rng.uniform(0.0, MAX_AXIS_ANGLE_RAD, (n, t, 24, 1))
    angle[:, :, 0] = rng.uniform(0.0, np.pi, (n, t, 1))
    theta = (axis * angle).reshape(n, t, 72)
    shape = rng.uniform(-MAX_BETA, MAX_BETA, (n, t, 10))
    return {"pose2d": pose2d.astype(np.float32), "hybrik_theta": theta.astype(np.float32),
            "hybrik_shape": shape.astype(np.float32)}


@contextlib.contextmanager
def _quiet_exporter() -> Iterator[None]:
    """Silence the exporter's known, harmless chatter (torchvision ops skipped, axis renaming notes)."""
    # onnx_ir and onnxscript log hundreds of INFO lines per export when the root logger is at INFO
    loggers = [logging.getLogger(name) for name in ("torch.onnx", "onnx_ir", "onnxscript")]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=r".*axis name: .* will not be used")
            warnings.filterwarnings("ignore", category=FutureWarning, message=r".*LeafSpec")
            yield
    finally:
        for logger, level in zip(loggers, levels):
            logger.setLevel(level)


def export_onnx(model: MeshRefiner, path: str | Path, metadata: Mapping[str, str], *, clip_len: int,
                opset: int | None = None, rewrite: bool = True, quantize: str = "none") -> ExportInfo:
    """Export ``MeshRefinerForExport(model)`` to one ONNX file with dynamic N and T.

    Args:
        model: the refiner (set to eval mode here).
        path: the .onnx file to write (parent folders are created).
        metadata: ``export_metadata(...)``, stored as ``metadata_props``.
        clip_len: T of the example inputs used while tracing.
        opset: ONNX opset (default ``DEFAULT_OPSET``, 23: the first with an ``Attention`` operator,
            which the model's attention exports to; an older opset spells attention out).
        rewrite: apply ``lib.deploy.graph_rewrite.rewrite_for_cpu`` (the same arithmetic in the forms
            onnxruntime's CPU provider runs fastest); off writes the exporter's graph as it is.
        quantize: ``"none"`` or ``"int8"``: int8 dynamic quantisation of the backbone's and head's linear
            layers (``lib.deploy.quantize``; before the rewrites, which leave the quantised layers alone),
            recorded in the metadata under ``quantization``. Verify such a file against
            ``QUANTIZED_TOLERANCES``, not ``DEFAULT_TOLERANCES``.
    Returns:
        ``ExportInfo`` (time, size, opset, input / output names and shapes).
    """
    path = Path(path)
    check_quantize(quantize)
    metadata = {**metadata, meta.METADATA_QUANTIZATION: "none"}
    wrapper = MeshRefinerForExport(model.eval()).eval()
    example = realistic_inputs(TRACE_BATCH, clip_len, model.in_channels, seed=0)
    args = tuple(torch.from_numpy(example[k]) for k in EXPORT_INPUT_NAMES)
    batch = torch.export.Dim("N", min=1)
    frames = torch.export.Dim("T", min=1, max=model.maxlen)
    dynamic = {name: {0: batch, 1: frames} for name in ("pose2d", "hybrik_theta", "hybrik_shape")}

    def export(tmp: str) -> None:
        import onnx_ir as ir  # onnxscript's IR: only when exporting

        with torch.no_grad(), _quiet_exporter():
            program = torch.onnx.export(wrapper, args, dynamo=True, opset_version=opset or DEFAULT_OPSET,
                                        input_names=list(EXPORT_INPUT_NAMES), output_names=list(EXPORT_OUTPUT_NAMES),
                                        dynamic_shapes=dynamic, verbose=False)
            graph = program.model
            if quantize == "int8":
                proto, described = quantize_int8(ir.to_proto(graph))
                graph = ir.from_proto(proto)
                metadata[meta.METADATA_QUANTIZATION] = described
            if rewrite:
                from lib.deploy.graph_rewrite import rewrite_for_cpu

                log.info("graph rewrites for the CPU: %s", rewrite_for_cpu(graph))
        ir.save(graph, tmp)  # one file: weights inside (ONNXProgram.save does the same below 2 GB)

    def add_metadata(proto: Any) -> None:
        kept = [(p.key, p.value) for p in proto.metadata_props if p.key not in metadata]  # the exporter's own
        del proto.metadata_props[:]
        for key, value in [*kept, *metadata.items()]:
            entry = proto.metadata_props.add()
            entry.key, entry.value = key, str(value)

    proto, seconds = write_onnx(path, export, add_metadata)
    info = export_info(path, proto, seconds)
    log.info("exported %s in %.1fs (%.1f MB, opset %d)", path, seconds, info.size_bytes / 1e6, info.opset)
    return info


@torch.no_grad()
def torch_outputs(model: MeshRefiner, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The eager outputs the graph must reproduce: ``EXPORT_OUTPUT_NAMES`` -> arrays."""
    model.eval()
    out = MeshRefinerForExport(model)(*(torch.from_numpy(inputs[k]) for k in EXPORT_INPUT_NAMES))
    return {name: value.numpy() for name, value in zip(EXPORT_OUTPUT_NAMES, out)}


def verify_onnx(model: MeshRefiner, path: str | Path, shapes: Sequence[tuple[int, int]],
                tolerances: Mapping[str, float] = DEFAULT_TOLERANCES, seed: int = 1,
                threads: int = 2) -> VerifyReport:
    """``onnx.checker`` plus onnxruntime-vs-PyTorch parity at each (N, T) of ``shapes``.

    Inputs are fresh (``seed`` differs from the tracing inputs' seed 0) and realistic
    (``realistic_inputs``). A check fails when any output's max abs difference exceeds its tolerance,
    or when onnxruntime cannot run the shape (reported as an infinite difference). The PyTorch model is
    also run in float64, and ``float32_floor`` reports how far float32 PyTorch itself is from it: a
    difference near that floor is rounding, not an export error.
    """
    import onnx

    path = Path(path)
    report = VerifyReport(checker_ok=True)
    try:
        onnx.checker.check_model(str(path), full_check=True)
    except Exception as exc:  # noqa: BLE001 - reported, not raised: the caller decides the exit code
        log.error("%s: onnx.checker failed: %s", path, " ".join(str(exc).split())[:300])
        report.checker_ok = False
    session = cpu_session(path, threads)
    reference = copy.deepcopy(model).double()
    for i, (n, t) in enumerate(shapes):
        inputs = realistic_inputs(n, t, model.in_channels, seed=seed + i)
        expected = torch_outputs(model, inputs)
        exact = torch_outputs(reference, {k: v.astype(np.float64) for k, v in inputs.items()})
        floor = {k: float(np.abs(expected[k] - exact[k]).max()) for k in EXPORT_OUTPUT_NAMES}
        try:
            got = dict(zip(EXPORT_OUTPUT_NAMES, session.run(list(EXPORT_OUTPUT_NAMES), inputs)))
            diffs = {k: float(np.abs(got[k].astype(np.float64) - expected[k]).max())
                     if got[k].shape == expected[k].shape else float("inf") for k in EXPORT_OUTPUT_NAMES}
        except Exception as exc:  # noqa: BLE001
            log.error("%s: onnxruntime failed at (N, T) = (%d, %d): %s", path, n, t, " ".join(str(exc).split())[:300])
            diffs = {k: float("inf") for k in EXPORT_OUTPUT_NAMES}
        report.parity.append(ParityCheck(n=n, t=t, max_abs=diffs, tolerances=dict(tolerances), float32_floor=floor))
    return report


LATENCY_WARMUP = 5  # untimed calls before each timed series


def measure_latency(model: MeshRefiner, path: str | Path, shapes: Sequence[tuple[int, int]], threads: int = 2,
                    repeats: int = 10) -> list[Latency]:
    """Median latency of onnxruntime (``threads`` intra-op threads) and eager PyTorch
    (``torch.set_num_threads(threads)`` for the measurement, restored after) at each (N, T), each after
    ``LATENCY_WARMUP`` untimed calls (onnxruntime's first calls at a new size plan and grow its memory
    arena: the first two at (8, 16) measured ~10 % slower than the calls after them)."""
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    inputs = [realistic_inputs(n, t, model.in_channels, seed=2) for n, t in shapes]
    torch_ms = []
    try:  # PyTorch first, before any onnxruntime thread pool exists (its spinning threads would compete)
        wrapper = MeshRefinerForExport(model.eval()).eval()
        with torch.inference_mode():  # how inference is run in PyTorch (no autograd bookkeeping at all)
            for x in inputs:
                tensors = tuple(torch.from_numpy(x[k]) for k in EXPORT_INPUT_NAMES)
                torch_ms.append(median_ms(lambda: wrapper(*tensors), repeats, warmup=LATENCY_WARMUP))
    finally:
        torch.set_num_threads(previous)
    session = cpu_session(Path(path), threads)
    return [Latency(n=n, t=t, onnxruntime_ms=median_ms(lambda: session.run(list(EXPORT_OUTPUT_NAMES), x), repeats,
                                                         warmup=LATENCY_WARMUP),
                    torch_ms=ms, threads=threads) for (n, t), x, ms in zip(shapes, inputs, torch_ms)]


@dataclass
class ExportResult:
    """Everything one export produced: the file, its verification, its latency."""

    info: ExportInfo
    verify: VerifyReport | None
    latency: list[Latency]

    @property
    def ok(self) -> bool:
        """Written, and verified (when verification ran)."""
        return self.verify is None or self.verify.ok

    @property
    def report(self) -> str:
        return format_report(self.info, self.verify, self.latency)


SECOND_CHECK_T = 27  # T of the second parity check (any T other than clip_len)
SECOND_CHECK_N = 3
LATENCY_BATCHES = (1, 8)


def check_shapes(clip_len: int, maxlen: int) -> list[tuple[int, int]]:
    """(N, T) of the parity checks: (1, clip_len) and (3, another T <= maxlen)."""
    other = min(SECOND_CHECK_T, maxlen)
    if other == clip_len:
        other = max(1, clip_len - 1)
    return [(1, clip_len), (SECOND_CHECK_N, other)]


def export_checkpoint(model: MeshRefiner, ckpt: Mapping[str, Any], task_cfg: TaskConfig,
                      hyper_cfg: HyperConfig | None, options: ModelOptions,
                      checkpoint: str | Path, output: str | Path, *, opset: int | None = None, verify: bool = True,
                      threads: int = 2, latency_repeats: int = 10) -> ExportResult:
    """Export a loaded checkpoint (``lib.deploy.model_io.load_refiner``), verify it, time it.

    Parity checks at ``check_shapes(clip_len, maxlen)``; latency at (1, clip_len) and (8, clip_len)
    (skipped when ``latency_repeats`` is 0).
    """
    from lib.model.checkpoint import model_signature

    metadata = export_metadata(clip_len=task_cfg.clip_len, sample_stride=task_cfg.sample_stride,
                               maxlen=task_cfg.maxlen, flip=task_cfg.flip, in_channels=model.in_channels,
                               signature=model_signature(task_cfg, hyper_cfg, options), checkpoint=checkpoint,
                               epoch=ckpt.get("epoch"), fit2d_prior=task_cfg.fit2d_prior,
                               fit2d_steps=task_cfg.fit2d_steps, fit2d_robust=task_cfg.fit2d_robust)
    info = export_onnx(model, output, metadata, clip_len=task_cfg.clip_len, opset=opset)
    report = verify_onnx(model, info.path, check_shapes(task_cfg.clip_len, task_cfg.maxlen),
                         threads=threads) if verify else None
    latency = measure_latency(model, info.path, [(n, task_cfg.clip_len) for n in LATENCY_BATCHES], threads=threads,
                              repeats=latency_repeats) if latency_repeats else []
    return ExportResult(info, report, latency)


def export_and_verify(*, config: str | Path, hyper_cfg: str | Path | None, checkpoint: str | Path,
                      output: str | Path, relation_bias: str = "none", version: int = 2, opset: int | None = None,
                      threads: int = 2, latency_repeats: int = 10) -> ExportResult:
    """The seed's export command as a function (``deployment_mesh.py`` with default ablation switches).

    The report is logged at INFO; print ``result.report`` to show it.

    Raises:
        ConfigError / CheckpointError / AssetError: as the command line (bad config, checkpoint, SMPL files).
        RuntimeError: the file was written but failed verification (it is kept).
    """
    from lib.config.hyper import load_hyper_config
    from lib.config.task import load_task_config
    from lib.deploy.model_io import load_refiner

    task_cfg = load_task_config(config)
    hyper = load_hyper_config(hyper_cfg) if hyper_cfg is not None else None
    options = ModelOptions(version=version, hyper_relation_bias=relation_bias)
    model, ckpt = load_refiner(checkpoint, task_cfg, hyper, options)
    result = export_checkpoint(model, ckpt, task_cfg, hyper, options, checkpoint, output, opset=opset,
                               threads=threads, latency_repeats=latency_repeats)
    log.info("%s", result.report)
    if not result.ok:
        raise RuntimeError(f"{result.info.path}: ONNX verification failed (file kept):\n{result.report}")
    return result


def format_report(info: ExportInfo, verify: VerifyReport | None, latency: Sequence[Latency]) -> str:
    """The lines deployment_mesh.py prints."""
    lines = [f"wrote {info.path} ({info.size_bytes / 1e6:.2f} MB, one file) in {info.seconds:.1f}s, opset {info.opset}"]
    for kind, items in (("input", info.inputs), ("output", info.outputs)):
        for name, dims in items:
            lines.append(f"  {kind:<6} {name:<13} [{', '.join(map(str, dims))}]")
    if verify is not None:
        lines.append(f"onnx.checker: {'ok' if verify.checker_ok else 'FAILED'}")
        for p in verify.parity:
            diffs = "  ".join(f"{k} {v:.2e} (tol {p.tolerances[k]:.0e}, float32 floor {p.float32_floor.get(k, 0):.0e})"
                              for k, v in p.max_abs.items())
            lines.append(f"parity (N, T) = ({p.n}, {p.t}): {'ok' if p.ok else 'FAILED'}  max |onnx - torch|: {diffs}")
    for lat in latency:
        lines.append(f"latency (N, T) = ({lat.n}, {lat.t}), {lat.threads} threads: "
                     f"onnxruntime {lat.onnxruntime_ms:.1f} ms, "
                     f"PyTorch eager {lat.torch_ms:.1f} ms")
    return "\n".join(lines)

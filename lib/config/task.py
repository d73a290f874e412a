"""The task config (``configs/mesh/*.yaml``) as a typed, frozen dataclass validated at load time.

Key policy (shared/CONTRACT.md): every key of a shipped YAML is consumed, or listed once in
``IGNORED_KEYS`` and accepted with a one-line notice. Any other key is an error naming the file and
key and listing the valid ones. Types and allowed values are checked here, once.
"""

from __future__ import annotations

import dataclasses
import logging
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from lib.errors import ConfigError

log = logging.getLogger(__name__)

# Keys of the original configs that nothing reads; accepted for compatibility, with a notice.
IGNORED_KEYS = ("dim_feat", "att_fuse", "dropout_ratio", "dropout_loc")

DATASETS = ("h36m", "pw3d")
LOSS_TYPES = ("L1", "MSE")


@dataclass(frozen=True)
class TaskConfig:
    """Every consumed key of a task YAML. Defaults are the values shared by the four original configs."""

    # --- data ---------------------------------------------------------------------------------
    dataset: Literal["h36m", "pw3d"] = "pw3d"
    data_root: str = "data/mesh"
    dt_file_h36m: str | None = None
    dt_file_coco: str | None = None
    dt_file_pw3d: str | None = None
    clip_len: int = 16                 # frames per clip
    data_stride: int = 8               # frames between training clip starts
    sample_stride: int = 2             # temporal subsampling of every per-frame array
    flip: bool = True                  # random flip in training, flip averaging at evaluation
    rotate_deg: float = 0.0            # training: random camera roll in [-rotate_deg, rotate_deg] (2D + global orientation)
    hybrik_noise_deg: float = 0.0      # training: extra white + drifting noise on HybrIK's input rotations, max std per axis
    drop_2d: float = 0.0               # training: max fraction of 2D joints dropped (confidence 0)
    speed_max: int = 1                 # training: video clips read every s-th frame, s uniform in 1..speed_max
    orbit_deg: float = 0.0             # training: video clips seen from a camera orbited by pitch, yaw in [-o, o] deg
    input_hybrik: bool = False         # model: the backbone also sees HybrIK's 3D joints and the 2D's disagreement with them
    limb_deg: float = 0.0              # training: video clips' body joints (GT and HybrIK) turned by up to limb_deg, 2D re-projected
    fit2d_prior: float | None = None   # input: HybrIK's pose fitted per frame to its 2D with this prior weight first (None: off)
    fit2d_steps: int = 50              # input: L-BFGS iterations of that fit
    fit2d_robust: float | None = None  # input: that fit's Geman-McClure 2D scale in body spreads (None: squared error)
    no_conf: bool = False              # drop the 2D confidence channel from the input
    eval_root: Literal["pelvis", "mid_hip"] = "pelvis"   # root of the evaluation protocol
    # --- schedule -----------------------------------------------------------------------------
    finetune: bool = False
    backbone_ckpt: str | None = None
    partial_train: tuple[str, ...] | None = None   # substrings of backbone params left trainable
    train_pw3d: bool = True
    warmup_h36m: int = 20              # epochs with an H36M pass
    warmup_coco: int = 0               # epochs with a COCO pass
    epochs: int = 60
    batch_size: int = 32               # clips
    batch_size_img: int = 512          # COCO single frames
    checkpoint_frequency: int = 20
    lr_backbone: float = 0.00032
    lr_head: float = 0.00032
    weight_decay: float = 0.01
    lr_decay: float = 0.98             # StepLR gamma, stepped once per epoch
    clip_grad: float = 0.0             # max global gradient norm (0: no clipping, the original)
    warmup_steps: int = 0              # linear learning-rate warm-up over the first optimizer steps (0: none)
    quickdebug: bool = False           # stop after one epoch
    num_workers: int = 2               # DataLoader worker processes
    log: str = "run_mesh"
    # --- model --------------------------------------------------------------------------------
    maxlen: int = 243                  # longest clip the temporal position embedding covers
    depth: int = 6
    dim_rep: int = 128
    num_heads: int = 8
    mlp_ratio: float = 2.0
    hidden_dim: int = 1024
    num_joints: int = 17
    dropout: float = 0.1               # refine-head dropout
    refine_shape: bool = False         # add a clip-level beta residual
    clip_shape: bool = True            # one shape per clip: the clip's mean of HybrIK's betas (false: per frame)
    smooth_kernel: int = 0             # 0: original head; odd K >= 3: learnable K-tap filter of HybrIK's pose
    smooth_adaptive: bool = False      # that filter a Gaussian whose width each clip picks from its own jitter / motion
    head_norm: Literal["batch", "layer"] = "batch"      # refine-head normalisation: BatchNorm1d | per-frame LayerNorm
    input_norm: Literal["canvas", "clip"] = "canvas"    # 2D as normalised on the canvas | re-centred/scaled per clip
    # --- loss weights (named like the loss terms) ---------------------------------------------
    lambda_3d: float = 0.5
    lambda_scale: float = 0.0
    lambda_3dv: float = 10.0
    lambda_3da: float = 0.0            # acceleration of the 3D joints (ours; 0 = the original recipe)
    lambda_lv: float = 0.0
    lambda_lg: float = 0.0
    lambda_a: float = 0.0
    lambda_av: float = 0.0
    lambda_pose: float = 1000.0
    lambda_shape: float = 1.0
    lambda_norm: float = 20.0
    loss_type: Literal["L1", "MSE"] = "L1"

    # Where the YAML came from (not a YAML key).
    source: str = field(default="<defaults>", compare=False)

    def data_path(self, name: str) -> Path:
        """Absolute path of a file under ``data_root`` (a relative root resolves against the cwd)."""
        return Path(self.data_root).expanduser().resolve() / name

    def to_dict(self) -> dict[str, Any]:
        """The resolved config as plain YAML-able values (written next to every run)."""
        out = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name != "source"}
        if out["partial_train"] is not None:
            out["partial_train"] = list(out["partial_train"])
        return out

    def replace(self, **changes: Any) -> "TaskConfig":
        """A copy with ``changes`` applied and validated like a YAML."""
        return parse_task_config({**self.to_dict(), **changes}, source=self.source)


_FIELDS = {f.name: f for f in dataclasses.fields(TaskConfig) if f.name != "source"}
_HINTS = typing.get_type_hints(TaskConfig)


def _coerce(key: str, value: Any, source: str) -> Any:
    """Check ``value`` against the annotated type of ``key``; ints are accepted for floats."""
    hint = _HINTS[key]
    args = typing.get_args(hint)
    optional = type(None) in args
    if value is None:
        if optional:
            return None
        raise ConfigError(f"{source}: key '{key}' is null; expected a value of type {hint}")
    base = hint
    if optional:
        base = next(a for a in args if a is not type(None))
    if typing.get_origin(base) is Literal:
        if value not in typing.get_args(base):
            raise ConfigError(f"{source}: key '{key}' = {value!r}; allowed: {list(typing.get_args(base))}")
        return value
    if typing.get_origin(base) is tuple:
        if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) for v in value):
            raise ConfigError(f"{source}: key '{key}' = {value!r}; expected a list of strings or null")
        return tuple(value)
    if base is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{source}: key '{key}' = {value!r}; expected true or false")
        return value
    if base is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{source}: key '{key}' = {value!r}; expected an integer")
        return value
    if base is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{source}: key '{key}' = {value!r}; expected a number")
        return float(value)
    if base is str:
        if not isinstance(value, str):
            raise ConfigError(f"{source}: key '{key}' = {value!r}; expected a string")
        return value
    raise AssertionError(f"unhandled type {hint} for {key}")  # pragma: no cover


def parse_task_config(raw: dict[str, Any], source: str = "<dict>") -> TaskConfig:
    """Validate a mapping of YAML keys into a ``TaskConfig``.

    Raises:
        ConfigError: unknown key (listing the valid ones), wrong type, or inconsistent values.
    """
    if not isinstance(raw, dict):
        raise ConfigError(f"{source}: expected a mapping of keys at the top level, got {type(raw).__name__}")
    values: dict[str, Any] = {}
    ignored = []
    for key, value in raw.items():
        if key in IGNORED_KEYS:
            ignored.append(key)
            continue
        if key not in _FIELDS:
            valid = ", ".join(sorted(_FIELDS))
            raise ConfigError(f"{source}: unknown key '{key}'; valid keys are: {valid}")
        values[key] = _coerce(key, value, source)
    if ignored:
        log.info("%s: keys %s ignored, kept for compatibility with the original configs", source, ", ".join(ignored))
    cfg = TaskConfig(**values, source=source)
    _check_values(cfg)
    return cfg


def _check_values(cfg: TaskConfig) -> None:
    src = cfg.source
    positive = ("clip_len", "data_stride", "sample_stride", "epochs", "batch_size", "batch_size_img",
                "checkpoint_frequency", "maxlen", "depth", "dim_rep", "num_heads", "hidden_dim", "num_joints")
    for key in positive:
        if getattr(cfg, key) < 1:
            raise ConfigError(f"{src}: key '{key}' = {getattr(cfg, key)}; expected an integer >= 1")
    for key in ("warmup_h36m", "warmup_coco", "num_workers", "warmup_steps"):
        if getattr(cfg, key) < 0:
            raise ConfigError(f"{src}: key '{key}' = {getattr(cfg, key)}; expected an integer >= 0")
    if cfg.num_joints != 17:
        raise ConfigError(f"{src}: key 'num_joints' = {cfg.num_joints}; only H36M-17 inputs are supported (17)")
    if cfg.clip_len > cfg.maxlen:
        raise ConfigError(f"{src}: key 'clip_len' = {cfg.clip_len} exceeds 'maxlen' = {cfg.maxlen}; "
                          "raise maxlen or shorten the clips")
    if cfg.smooth_kernel != 0 and (cfg.smooth_kernel < 3 or cfg.smooth_kernel % 2 == 0):
        raise ConfigError(f"{src}: key 'smooth_kernel' = {cfg.smooth_kernel}; expected 0 (off) or an odd "
                          "integer >= 3 (frames of the learnable filter of HybrIK's pose)")
    if cfg.smooth_adaptive and not cfg.smooth_kernel:
        raise ConfigError(f"{src}: key 'smooth_adaptive' is true but 'smooth_kernel' is 0; set smooth_kernel to "
                          "the filter's odd tap count (its widest sigma is smooth_kernel / 4 frames) or "
                          "smooth_adaptive false")
    if not 0.0 <= cfg.rotate_deg <= 180.0:
        raise ConfigError(f"{src}: key 'rotate_deg' = {cfg.rotate_deg}; expected degrees in [0, 180]")
    if not 0.0 <= cfg.hybrik_noise_deg <= 90.0:
        raise ConfigError(f"{src}: key 'hybrik_noise_deg' = {cfg.hybrik_noise_deg}; expected degrees in [0, 90]")
    if not 0.0 <= cfg.drop_2d < 1.0:
        raise ConfigError(f"{src}: key 'drop_2d' = {cfg.drop_2d}; expected a fraction in [0, 1)")
    if not 0.0 <= cfg.orbit_deg <= 60.0:
        raise ConfigError(f"{src}: key 'orbit_deg' = {cfg.orbit_deg}; expected degrees in [0, 60]")
    if not 0.0 <= cfg.limb_deg <= 90.0:
        raise ConfigError(f"{src}: key 'limb_deg' = {cfg.limb_deg}; expected degrees in [0, 90]")
    if cfg.fit2d_prior is not None and not 0.0 < cfg.fit2d_prior <= 1e3:
        raise ConfigError(f"{src}: key 'fit2d_prior' = {cfg.fit2d_prior}; expected a prior weight in (0, 1000] "
                          "(e.g. 0.01) or null to feed HybrIK's pose unfitted")
    if cfg.fit2d_robust is not None and not 0.0 < cfg.fit2d_robust <= 10.0:
        raise ConfigError(f"{src}: key 'fit2d_robust' = {cfg.fit2d_robust}; expected a Geman-McClure scale in "
                          "(0, 10] body spreads, or null for the squared 2D error")
    if not 1 <= cfg.fit2d_steps <= 1000:
        raise ConfigError(f"{src}: key 'fit2d_steps' = {cfg.fit2d_steps}; expected L-BFGS iterations in 1..1000")
    if not 1 <= cfg.speed_max <= 8:
        raise ConfigError(f"{src}: key 'speed_max' = {cfg.speed_max}; expected an integer speed-up in 1..8 (1: off)")
    if cfg.drop_2d > 0 and cfg.no_conf:
        raise ConfigError(f"{src}: key 'drop_2d' = {cfg.drop_2d} needs the confidence channel, but 'no_conf' is "
                          "true; set drop_2d: 0 or no_conf: false")
    if cfg.dim_rep % cfg.num_heads:
        raise ConfigError(f"{src}: key 'dim_rep' = {cfg.dim_rep} is not divisible by 'num_heads' = {cfg.num_heads}")
    if not 0.0 <= cfg.dropout < 1.0:
        raise ConfigError(f"{src}: key 'dropout' = {cfg.dropout}; expected a probability in [0, 1)")
    if cfg.mlp_ratio <= 0:
        raise ConfigError(f"{src}: key 'mlp_ratio' = {cfg.mlp_ratio}; expected a positive number")
    for key in ("lr_backbone", "lr_head", "weight_decay", "lr_decay", "clip_grad"):
        if getattr(cfg, key) < 0:
            raise ConfigError(f"{src}: key '{key}' = {getattr(cfg, key)}; expected a number >= 0")
    for f in _FIELDS:
        if f.startswith("lambda_") and getattr(cfg, f) < 0:
            raise ConfigError(f"{src}: key '{f}' = {getattr(cfg, f)}; loss weights must be >= 0")
    if cfg.dataset == "pw3d" and cfg.dt_file_pw3d is None:
        raise ConfigError(f"{src}: 'dataset' is pw3d but 'dt_file_pw3d' is not set; add the 3DPW pickle name")
    if cfg.dataset == "h36m" and cfg.dt_file_h36m is None:
        raise ConfigError(f"{src}: 'dataset' is h36m but 'dt_file_h36m' is not set; add the H36M pickle name")
    if cfg.train_pw3d and cfg.dt_file_pw3d is None:
        raise ConfigError(f"{src}: 'train_pw3d' is true but 'dt_file_pw3d' is not set")


def read_yaml(path: str | Path, missing_hint: str) -> dict[str, Any]:
    """The top-level mapping of a YAML file ({} for an empty file).

    Raises:
        ConfigError: the file is missing (``missing_hint`` says what to pass) or is not valid YAML.
    """
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: config file not found (resolved to {path.resolve()}); {missing_hint}")
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {' '.join(str(exc).split())}") from None
    return raw if raw is not None else {}


def load_task_config(path: str | Path) -> TaskConfig:
    """Read and validate a task YAML.

    Raises:
        ConfigError: missing file, YAML syntax error, or any invalid key (see ``parse_task_config``).
    """
    raw = read_yaml(path, "pass one of configs/mesh/*.yaml with --config")
    return parse_task_config(raw, source=str(path))

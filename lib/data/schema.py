"""The schema of MotionBERT's mesh pickles, checked once at the door.

A file is ``{'train': split, 'test': split}``; a split is a dict of per-frame arrays, every one of the
same length F (all sequences concatenated; ``source`` names the sequence of each frame):

| key               | shape            | notes                                                        |
|-------------------|------------------|--------------------------------------------------------------|
| ``joint_2d``      | (F, 17, >=2)     | px, H36M-17 order; only channels 0, 1 are read                |
| ``confidence``    | (F, 17) / (F, 17, 1) | returned as (F, 17, 1); H36M may omit it (filled with ones) |
| ``smpl_pose``     | (F, 72)          | GT axis-angle, rad, global orientation first (camera frame)   |
| ``smpl_shape``    | (F, 10)          | GT betas                                                     |
| ``pred_smpl_pose``| (F, 72)          | HybrIK axis-angle, rad                                       |
| ``pred_smpl_shape``| (F, 10)         | HybrIK betas                                                 |
| ``source``        | (F,)             | str or int sequence id; returned as a numpy array of str     |
| ``camera_name``   | (F,)             | H36M only: one of ``H36M_CAMERA_RES``; numpy array of str     |
| ``joint_cam``     | (F, 17, 3)       | optional, checked when present, never used                   |

Other keys (``img_hw``, ``image_id`` ...) are passed through untouched. Numeric arrays are returned as
stored (``np.asarray``, no copy, dtype kept), so a large file is held in memory once. Every problem is a
one-line :class:`~lib.errors.DataError` naming the file, split, key, expected vs actual, and the fix.
"""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

import numpy as np

from lib.body.joint_names import H36M_NUM_JOINTS, SMPL_NUM_BETAS, SMPL_NUM_JOINTS
from lib.data.keypoints2d import H36M_CAMERA_RES
from lib.errors import DataError

DATASETS = ("h36m", "coco", "pw3d")
SPLITS = ("train", "test")
POSE_DIM = 3 * SMPL_NUM_JOINTS  # 72 axis-angle values
# Numeric per-frame arrays: key -> trailing shape (None = any size >= 2, for joint_2d's channels).
NUMERIC_KEYS: dict[str, tuple[int | None, ...]] = {
    "joint_2d": (H36M_NUM_JOINTS, None),
    "smpl_pose": (POSE_DIM,),
    "smpl_shape": (SMPL_NUM_BETAS,),
    "pred_smpl_pose": (POSE_DIM,),
    "pred_smpl_shape": (SMPL_NUM_BETAS,),
}
OPTIONAL_NUMERIC_KEYS: dict[str, tuple[int | None, ...]] = {"joint_cam": (H36M_NUM_JOINTS, 3)}
WHERE_TO_GET = ("use MotionBERT's mesh_hybrik.zip pickles unmodified, or regenerate the synthetic stand-in "
                "(see data/mesh/README.md)")


def load_mesh_pickle(path: str | Path, dataset: str) -> dict[str, dict[str, Any]]:
    """Load one of MotionBERT's ``mesh_det_*_w_hybrik_pred*.pkl`` files and check its schema.

    Args:
        path: the pickle; a relative path resolves against the current directory.
        dataset: ``"h36m"``, ``"coco"`` or ``"pw3d"`` (decides the H36M-only rules).
    Returns:
        ``{"train": split, "test": split}``, each split as returned by :func:`checked_split`.
    Raises:
        DataError: missing or unreadable file, missing split, or any schema violation (one line).
    """
    _check_dataset(dataset)
    resolved = Path(path).expanduser().resolve()
    if not resolved.is_file():
        raise DataError(f"{resolved}: mesh pickle for '{dataset}' not found; download MotionBERT's "
                        f"mesh_hybrik.zip (its docs/mesh.md) into that folder, or generate the synthetic "
                        f"stand-in with `python -m lib.data.synthetic --out <dir>` (see data/mesh/README.md)")
    data = _read_pickle(resolved)
    if not isinstance(data, dict):
        raise DataError(f"{resolved}: expected a dict with keys 'train' and 'test', got {type(data).__name__}; "
                        f"{WHERE_TO_GET}")
    return {split: checked_split(_get_split(data, split, resolved), dataset=dataset, split=split, path=resolved)
            for split in SPLITS}


def check_split(arrays: dict[str, Any], *, dataset: str, split: str, path: str | Path) -> int:
    """Check one split of a mesh pickle and return its number of frames F (see :func:`checked_split`)."""
    return len(checked_split(arrays, dataset=dataset, split=split, path=path)["joint_2d"])


def checked_split(arrays: dict[str, Any], *, dataset: str, split: str,
                  path: str | Path) -> dict[str, Any]:
    """Check one split and return it as numpy arrays.

    Args:
        arrays: the split's dict as unpickled (numpy arrays and lists).
        dataset: ``"h36m"``, ``"coco"`` or ``"pw3d"``.
        split: ``"train"`` or ``"test"`` (for messages).
        path: the file (for messages).
    Returns:
        A new dict with every key of ``arrays``: the numeric keys as numpy arrays (no copy, dtype kept),
        ``confidence`` as (F, 17, 1) (ones, float32, if H36M omits it), ``source`` and ``camera_name`` as
        numpy arrays of str, other keys untouched.
    Raises:
        DataError: the first violation found, in one line.
    """
    _check_dataset(dataset)
    where = f"{path} [{split}]"
    if not isinstance(arrays, dict):
        raise DataError(f"{where}: expected a dict of per-frame arrays, got {type(arrays).__name__}; {WHERE_TO_GET}")
    out = dict(arrays)
    required = dict(NUMERIC_KEYS)
    optional = dict(OPTIONAL_NUMERIC_KEYS)
    for key in required:
        if key not in arrays:
            _missing(key, arrays, where)
    out["joint_2d"] = _numeric(arrays["joint_2d"], "joint_2d", required.pop("joint_2d"), None, where)
    frames = len(out["joint_2d"])
    if frames == 0:
        raise DataError(f"{where} 'joint_2d': split has 0 frames; {WHERE_TO_GET}")
    for key, trailing in (*required.items(), *((k, v) for k, v in optional.items() if k in arrays)):
        out[key] = _numeric(arrays[key], key, trailing, frames, where)
    out["confidence"] = _confidence(arrays, dataset, frames, where)
    out["source"] = _strings(arrays, "source", frames, where)
    if dataset == "h36m":
        cameras = _strings(arrays, "camera_name", frames, where)
        unknown = ~np.isin(cameras, list(H36M_CAMERA_RES))
        if unknown.any():
            i = int(np.flatnonzero(unknown)[0])
            raise DataError(f"{where} 'camera_name': unknown camera id '{cameras[i]}' at frame {i}, expected one "
                            f"of {sorted(H36M_CAMERA_RES)}; {WHERE_TO_GET}")
        out["camera_name"] = cameras
    return out


def _check_dataset(dataset: str) -> None:
    if dataset not in DATASETS:
        raise ValueError(f"dataset must be one of {DATASETS}, got {dataset!r}")


def _read_pickle(path: Path) -> Any:
    """Plain pickle; Python 2 pickles (byte strings inside numpy arrays) retried with latin1."""
    try:
        with path.open("rb") as f:
            try:
                return pickle.load(f)
            except UnicodeDecodeError:
                f.seek(0)
                return pickle.load(f, encoding="latin1")
    except (pickle.UnpicklingError, EOFError, AttributeError, ImportError, IndexError, ValueError,
            TypeError) as err:
        raise DataError(f"{path}: not a readable pickle ({type(err).__name__}: {err}); "
                        f"the file may be truncated, re-download it: {WHERE_TO_GET}") from None


def _missing(key: str, arrays: dict[str, Any], where: str) -> None:
    raise DataError(f"{where}: missing key '{key}', expected per-frame arrays {list(NUMERIC_KEYS)} + "
                    f"'confidence', 'source' (H36M: 'camera_name'), found {sorted(map(str, arrays))}; "
                    f"{WHERE_TO_GET}")


def _get_split(data: dict, split: str, path: Path) -> Any:
    if split not in data:
        raise DataError(f"{path}: missing split '{split}' (found keys {sorted(map(str, data))}, expected "
                        f"'train' and 'test'); {WHERE_TO_GET}")
    return data[split]


def _shape_text(trailing: tuple[int | None, ...]) -> str:
    return "(F, " + ", ".join(">=2" if t is None else str(t) for t in trailing) + ")"


def _numeric(value: Any, key: str, trailing: tuple[int | None, ...], frames: int | None,
             where: str) -> np.ndarray:
    """Check a numeric per-frame array's shape, length and finiteness; return it (no copy for arrays)."""
    arr = np.asarray(value)
    expected = _shape_text(trailing)
    if arr.dtype.kind not in "fiu":
        raise DataError(f"{where} '{key}': expected a numeric array {expected}, got dtype {arr.dtype}; "
                        f"{WHERE_TO_GET}")
    ok = arr.ndim == 1 + len(trailing) and all(
        (t is None and n >= 2) or n == t for n, t in zip(arr.shape[1:], trailing))
    if not ok:
        raise DataError(f"{where} '{key}': expected shape {expected}, got {arr.shape}; {WHERE_TO_GET}")
    _check_length(key, len(arr), frames, where)
    _check_finite(arr, key, where)
    return arr


def _check_length(key: str, length: int, frames: int | None, where: str) -> None:
    if frames is not None and length != frames:
        raise DataError(f"{where} '{key}': expected {frames} frames (the length of 'joint_2d'), got {length}; "
                        f"every per-frame array must have the same length: {WHERE_TO_GET}")


def _check_finite(arr: np.ndarray, key: str, where: str) -> None:
    if arr.dtype.kind != "f" or np.isfinite(arr).all():
        return
    bad = ~np.isfinite(arr).reshape(len(arr), -1).all(axis=1)
    i = int(np.flatnonzero(bad)[0])
    raise DataError(f"{where} '{key}': expected finite values, {int(bad.sum())} frames hold NaN/inf, first at "
                    f"frame {i}; repair or drop those frames: {WHERE_TO_GET}")


def _confidence(arrays: dict[str, Any], dataset: str, frames: int, where: str) -> np.ndarray:
    """(F, 17, 1) detector confidence; H36M files without one get ones (as the original reader)."""
    if "confidence" not in arrays:
        if dataset == "h36m":
            return np.ones((frames, H36M_NUM_JOINTS, 1), dtype=np.float32)
        _missing("confidence", arrays, where)
    conf = np.asarray(arrays["confidence"])
    if conf.ndim not in (2, 3) or (conf.ndim == 3 and conf.shape[2] != 1):
        raise DataError(f"{where} 'confidence': expected shape (F, {H36M_NUM_JOINTS}) or (F, {H36M_NUM_JOINTS}, 1), "
                        f"got {conf.shape}; {WHERE_TO_GET}")
    if conf.ndim == 2:
        return _numeric(conf, "confidence", (H36M_NUM_JOINTS,), frames, where)[..., None]  # (F, 17, 1) view
    return _numeric(conf, "confidence", (H36M_NUM_JOINTS, 1), frames, where)


def _strings(arrays: dict[str, Any], key: str, frames: int, where: str) -> np.ndarray:
    """A per-frame id (list or array of str / bytes / int) as a (F,) numpy array of str."""
    if key not in arrays:
        _missing(key, arrays, where)
    value = arrays[key]
    arr = value if isinstance(value, np.ndarray) else np.asarray(value, dtype=object)
    if arr.ndim != 1:
        raise DataError(f"{where} '{key}': expected shape (F,) of str or int, got {arr.shape}; {WHERE_TO_GET}")
    _check_length(key, len(arr), frames, where)
    if arr.dtype.kind == "U":
        return arr
    if arr.dtype.kind in "iu":
        return arr.astype(str)
    if arr.dtype.kind == "S":
        return np.char.decode(arr, "latin1")
    items = []
    for i, item in enumerate(arr):
        if isinstance(item, bytes):
            item = item.decode("latin1")
        elif isinstance(item, (int, np.integer)) and not isinstance(item, bool):
            item = str(item)
        if not isinstance(item, str):
            raise DataError(f"{where} '{key}': expected str or int ids, got {type(item).__name__} at frame {i}; "
                            f"{WHERE_TO_GET}")
        items.append(item)
    return np.asarray(items, dtype=str)

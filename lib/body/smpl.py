"""The SMPL boundary: chumpy-free loading of the licensed files, the joint regressors, our batched LBS.

Units: SMPL works in **metres** (rest mesh, blend shapes, joints, vertices); rotations are matrices
or axis-angle in radians. Nothing here converts to millimetres.

Files, all under ``data_root`` (the user supplies them; this project never ships them):

* ``SMPL_NEUTRAL.pkl``: SMPLify's ``basicModel_neutral_lbs_10_207_0_v1.0.0.pkl`` from
  https://smplify.is.tue.mpg.de, renamed, or under its original name (as HybrIK's ``model_files/``
  holds it; a folder is searched for ``SMPL_NEUTRAL.pkl``, ``SMPL_NEUTRAL.npz``, then the original
  name). The original stores ``shapedirs`` as a ``chumpy`` object and ``J_regressor`` as a
  ``scipy.sparse`` matrix; it is read here by a restricted unpickler that needs neither chumpy nor
  scipy and refuses any other global. A cleaned plain-numpy pickle or an ``SMPL_NEUTRAL.npz`` with the
  same keys works too.
* ``J_regressor_h36m_correct.npy`` (17, 6890) and ``J_regressor_extra.npy`` (9, 6890, optional):
  SPIN's regressors, shipped with MotionBERT's mesh data (``data/mesh``).
* ``J_regressor_h36m.npy`` (17, 6890): HybrIK's own H36M regressor (HybrIK's ``model_files``), used by
  the HybrIK stage only (``BodyModel(..., h36m_regressor_file=HYBRIK_H36M_REGRESSOR_FILE)``), which
  therefore runs on HybrIK's ``model_files/`` as they are, without SPIN's files.

``BodyModel`` builds ``smplx.SMPL`` once from the loaded arrays (smplx is the loader and the test
reference) and keeps its arrays as non-persistent buffers: they never enter a checkpoint. Its
forward is our own LBS, written from the published SMPL equations (Loper et al. 2015), with
Python-int parents and elementwise skinning so that it exports to ONNX with both exporters.
"""

from __future__ import annotations

import collections
import contextlib
import copyreg
import importlib
import io
import logging
import os
import pickle
import zipfile
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import smplx
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from lib.body.joint_names import (
    H36M_NUM_JOINTS,
    H36M_ROOT,
    SMPL_NUM_BETAS,
    SMPL_NUM_FACES,
    SMPL_NUM_JOINTS,
    SMPL_NUM_VERTICES,
    SMPL_PARENTS,
)
from lib.errors import AssetError
from lib.geometry.rotation import axis_angle_to_matrix

logger = logging.getLogger(__name__)

SMPL_MODEL_FILE = "SMPL_NEUTRAL.pkl"
SMPL_NPZ_FILE = "SMPL_NEUTRAL.npz"
SMPL_ORIGINAL_FILE = "basicModel_neutral_lbs_10_207_0_v1.0.0.pkl"  # SMPLify's name, kept by HybrIK's model_files
SMPL_FOLDER_FILES = (SMPL_MODEL_FILE, SMPL_NPZ_FILE, SMPL_ORIGINAL_FILE)  # searched in this order in a folder
H36M_REGRESSOR_FILE = "J_regressor_h36m_correct.npy"
EXTRA_REGRESSOR_FILE = "J_regressor_extra.npy"
HYBRIK_H36M_REGRESSOR_FILE = "J_regressor_h36m.npy"
HYBRIK_MEAN_BETA_FILE = "h36m_mean_beta.npy"  # HybrIK's mean betas (10,), read by lib.hybrik.model
EXTRA_NUM_JOINTS = 9
NUM_POSE_BASIS = (SMPL_NUM_JOINTS - 1) * 9  # 207: entries of (R - I) of the 23 non-root joints
KINTREE_ROOT = 4294967295  # uint32(-1): the root's parent in kintree_table

SMPL_SOURCE = (f"SMPLify's {SMPL_ORIGINAL_FILE} from https://smplify.is.tue.mpg.de, renamed to {SMPL_MODEL_FILE} "
               "or under its own name (HybrIK users: the one in HybrIK's model_files/), in data_root")
_REGRESSOR_SOURCES = {
    H36M_REGRESSOR_FILE: "it comes with MotionBERT's mesh data (data/mesh; SPIN's regressor, "
                         "https://github.com/nkolot/SPIN/tree/master/data), put it in data_root",
    EXTRA_REGRESSOR_FILE: "it comes with MotionBERT's mesh data (data/mesh; SPIN's regressor, "
                          "https://github.com/nkolot/SPIN/tree/master/data), put it in data_root",
    HYBRIK_H36M_REGRESSOR_FILE: "it comes with HybrIK's model_files/ (https://github.com/Jeff-sjtu/HybrIK); "
                                "point --hybrik_model_files (or data_root) at that folder",
}
_REGRESSOR_SOURCE_DEFAULT = "a .npy array of that shape, e.g. SPIN's regressors from MotionBERT's mesh data"

# Keys the loader returns; float arrays are float64, integer arrays int64. Shapes for SMPL.
_FLOAT_SHAPES = {
    "v_template": (SMPL_NUM_VERTICES, 3),
    "posedirs": (SMPL_NUM_VERTICES, 3, NUM_POSE_BASIS),
    "J_regressor": (SMPL_NUM_JOINTS, SMPL_NUM_VERTICES),
    "weights": (SMPL_NUM_VERTICES, SMPL_NUM_JOINTS),
}
_INT_SHAPES = {"kintree_table": (2, SMPL_NUM_JOINTS), "f": (SMPL_NUM_FACES, 3)}
SMPL_KEYS = ("v_template", "shapedirs", "posedirs", "J_regressor", "weights", "kintree_table", "f")


MM_PER_M = 1000.0  # metres -> millimetres (posed_mesh_mm)


class SMPLOutput(NamedTuple):
    """What ``BodyModel`` returns (fixed fields, so it exports to ONNX)."""

    vertices: Tensor  # (B, 6890, 3) m
    joints: Tensor  # (B, 24, 3) m, the posed SMPL joints


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _relative_note(path: Path) -> str:
    return " (relative paths resolve against the current directory)" if not path.is_absolute() else ""


def _smpl_error(path: Path, detail: str) -> AssetError:
    return AssetError(_one_line(f"{path.resolve()}: {detail}; the file must be {SMPL_SOURCE}"))


# ----------------------------------------------------------------------------------------------
# The restricted unpickler
class _ChumpyObject:
    """Stands for a chumpy class in a pickle; keeps the pickled state (a Ch keeps its value in 'x')."""

    pickled_name = "chumpy"

    def __new__(cls, *args: Any, **kwargs: Any) -> "_ChumpyObject":
        return super().__new__(cls)

    def __setstate__(self, state: Any) -> None:
        self.state = state


class _SparseObject:
    """Stands for a scipy.sparse matrix in a pickle; keeps the pickled state (data, indices, ...)."""

    pickled_name = "scipy.sparse"
    sparse_format = "csc"

    def __new__(cls, *args: Any, **kwargs: Any) -> "_SparseObject":
        return super().__new__(cls)

    def __setstate__(self, state: Any) -> None:
        self.state = state


def _numpy_global(submodule: str, name: str) -> Any:
    """numpy's own object behind a pickled numpy global, found in numpy 2 (_core) or numpy 1 (core)."""
    for package in ("numpy._core", "numpy.core"):
        with contextlib.suppress(ImportError, AttributeError):
            return getattr(importlib.import_module(f"{package}.{submodule}"), name)
    raise ImportError(f"numpy has no {submodule}.{name}")


def _latin1_encode(text: str, encoding: str = "latin1") -> bytes:
    """What Python 3 protocol-2 pickles call to rebuild bytes (``_codecs.encode(text, 'latin1')``)."""
    if encoding.replace("-", "").replace("_", "").lower() not in ("latin1", "iso88591"):
        raise pickle.UnpicklingError(f"refusing _codecs.encode with encoding {encoding!r}")
    return text.encode("latin1")


_SPARSE_MODULES = ("scipy.sparse", "scipy.sparse.csc", "scipy.sparse._csc", "scipy.sparse.csr",
                   "scipy.sparse._csr", "scipy.sparse.coo", "scipy.sparse._coo", "scipy.sparse._arrays")
_SPARSE_NAMES = {"csc_matrix": "csc", "csr_matrix": "csr", "coo_matrix": "coo",
                 "csc_array": "csc", "csr_array": "csr", "coo_array": "coo"}


def _allowed_globals() -> dict[tuple[str, str], Any]:
    """Every global a SMPL pickle may reference besides chumpy and scipy.sparse classes."""
    allowed: dict[tuple[str, str], Any] = {}
    for package in ("numpy.core", "numpy._core"):
        allowed[(f"{package}.multiarray", "_reconstruct")] = _numpy_global("multiarray", "_reconstruct")
        allowed[(f"{package}.multiarray", "scalar")] = _numpy_global("multiarray", "scalar")
        allowed[(f"{package}.numeric", "_frombuffer")] = _numpy_global("numeric", "_frombuffer")
    allowed[("numpy", "ndarray")] = np.ndarray
    allowed[("numpy", "dtype")] = np.dtype
    for builtins_name in ("__builtin__", "builtins"):
        for name, obj in (("set", set), ("frozenset", frozenset), ("object", object), ("bytearray", bytearray)):
            allowed[(builtins_name, name)] = obj
    for copyreg_name in ("copy_reg", "copyreg"):
        allowed[(copyreg_name, "_reconstructor")] = copyreg._reconstructor
    allowed[("_codecs", "encode")] = _latin1_encode
    allowed[("collections", "OrderedDict")] = collections.OrderedDict
    return allowed


class _RefusedGlobal(pickle.UnpicklingError):
    """A pickle referenced a global outside the allow-list."""


class _RestrictedUnpickler(pickle.Unpickler):
    """Unpickles SMPL files: numpy arrays, chumpy / scipy.sparse stand-ins, a few builtins; nothing else."""

    _allowed: dict[tuple[str, str], Any] | None = None

    def find_class(self, module: str, name: str) -> Any:
        if module == "chumpy" or module.startswith("chumpy."):
            return type(name, (_ChumpyObject,), {"pickled_name": f"{module}.{name}"})
        if module in _SPARSE_MODULES and name in _SPARSE_NAMES:
            return type(name, (_SparseObject,), {"pickled_name": f"{module}.{name}",
                                                  "sparse_format": _SPARSE_NAMES[name]})
        if _RestrictedUnpickler._allowed is None:
            _RestrictedUnpickler._allowed = _allowed_globals()
        try:
            return _RestrictedUnpickler._allowed[(module, name)]
        except KeyError:
            raise _RefusedGlobal(f"{module}.{name}") from None


def _densify_sparse(obj: _SparseObject, key: str, path: Path) -> np.ndarray:
    """Dense float64 array from a pickled csc / csr / coo matrix's state."""
    state = obj.state if isinstance(obj.state, dict) else {}
    shape = state.get("_shape", state.get("shape"))
    try:
        n_rows, n_cols = (int(n) for n in shape)
        data = np.asarray(state["data"], dtype=np.float64).ravel()
        dense = np.zeros((n_rows, n_cols))
        if obj.sparse_format == "coo":
            coords = state.get("coords", (state.get("row"), state.get("col")))
            rows, cols = (np.asarray(c, dtype=np.int64).ravel() for c in coords)
        else:
            indices = np.asarray(state["indices"], dtype=np.int64).ravel()
            indptr = np.asarray(state["indptr"], dtype=np.int64).ravel()
            n_major = n_cols if obj.sparse_format == "csc" else n_rows
            if indptr.shape != (n_major + 1,) or indptr[-1] != indices.size:
                raise ValueError("indptr does not match indices")
            major = np.repeat(np.arange(n_major), np.diff(indptr))
            rows, cols = (indices, major) if obj.sparse_format == "csc" else (major, indices)
        np.add.at(dense, (rows, cols), data)  # duplicates add up, as in scipy
    except (KeyError, TypeError, ValueError, IndexError) as exc:
        raise _smpl_error(path, f"key '{key}' is a malformed {obj.pickled_name} ({exc})") from None
    return dense


def _plain_value(value: Any, key: str, path: Path, depth: int = 0) -> Any:
    """Replace chumpy / sparse stand-ins by numpy arrays (a Ch's value is its state's 'x')."""
    if depth > 8:
        raise _smpl_error(path, f"key '{key}' nests chumpy objects too deeply")
    if isinstance(value, _ChumpyObject):
        state = value.state if isinstance(getattr(value, "state", None), dict) else {}
        if "x" not in state:
            raise _smpl_error(path, f"key '{key}' is a chumpy expression ({value.pickled_name}) without a stored "
                                    "value; convert the file once with smplx's tools/clean_ch.py")
        return _plain_value(state["x"], key, path, depth + 1)
    if isinstance(value, _SparseObject):
        return _densify_sparse(value, key, path)
    return value


def _read_pickle(path: Path) -> dict[str, Any]:
    try:
        with open(path, "rb") as handle:
            content = _RestrictedUnpickler(handle, encoding="latin1").load()
    except _RefusedGlobal as exc:
        raise _smpl_error(path, f"refusing to unpickle global '{exc}' (only numpy arrays, chumpy and "
                                "scipy.sparse objects are allowed in a SMPL model file)") from None
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, ImportError,
            IndexError, KeyError, MemoryError, OSError) as exc:
        raise _smpl_error(path, f"not a readable SMPL pickle ({type(exc).__name__}: {exc})") from None
    if not isinstance(content, dict):
        raise _smpl_error(path, f"the pickle holds a {type(content).__name__}, expected a dict of arrays")
    return content


def _read_npz(path: Path) -> dict[str, Any]:
    if not zipfile.is_zipfile(path):
        raise _smpl_error(path, "not a .npz (zip) archive")
    try:
        with np.load(path, allow_pickle=False) as archive:
            return {key: archive[key] for key in archive.files}
    except ValueError as exc:
        raise _smpl_error(path, f"the npz holds pickled objects, expected plain arrays ({exc})") from None
    except (OSError, zipfile.BadZipFile, EOFError, KeyError) as exc:
        raise _smpl_error(path, f"not a readable .npz ({type(exc).__name__}: {exc})") from None


def _resolve_model_file(path: Path) -> Path:
    """The model file behind ``path``: the file itself, or the first of ``SMPL_FOLDER_FILES`` in a folder."""
    if path.is_file():
        return path
    if path.suffix.lower() in (".pkl", ".pickle", ".npz"):
        raise AssetError(_one_line(f"{path.resolve()}: SMPL model file not found{_relative_note(path)}; "
                                   f"the file must be {SMPL_SOURCE}"))
    for name in SMPL_FOLDER_FILES:
        if (path / name).is_file():
            return path / name
    where = "in the folder" if path.is_dir() else "(the folder does not exist)"
    raise AssetError(_one_line(f"{(path / SMPL_MODEL_FILE).resolve()}: SMPL model not found, nor {SMPL_NPZ_FILE} "
                               f"or {SMPL_ORIGINAL_FILE}, {where}{_relative_note(path)}; the file must be {SMPL_SOURCE}"))


def _checked_array(raw: dict[str, Any], key: str, path: Path) -> np.ndarray:
    if key not in raw:
        expected = _FLOAT_SHAPES.get(key) or _INT_SHAPES.get(key) or (SMPL_NUM_VERTICES, 3, SMPL_NUM_BETAS)
        raise _smpl_error(path, f"key '{key}' missing (expected an array of shape {expected}); "
                                f"found keys {sorted(raw)}")
    value = _plain_value(raw[key], key, path)
    try:
        array = np.asarray(value)
    except (TypeError, ValueError) as exc:
        raise _smpl_error(path, f"key '{key}' is not an array ({exc})") from None
    if key == "shapedirs":
        ok = array.ndim == 3 and array.shape[:2] == (SMPL_NUM_VERTICES, 3) and array.shape[2] >= SMPL_NUM_BETAS
        expected: Any = f"({SMPL_NUM_VERTICES}, 3, >={SMPL_NUM_BETAS})"
    else:
        expected = _FLOAT_SHAPES.get(key, _INT_SHAPES.get(key))
        ok = array.shape == expected
    if not ok:
        raise _smpl_error(path, f"key '{key}' has shape {array.shape}, expected {expected}")
    if not (np.issubdtype(array.dtype, np.number) or array.dtype == np.bool_):
        raise _smpl_error(path, f"key '{key}' has dtype {array.dtype}, expected numbers")
    if key in _INT_SHAPES:
        if not np.issubdtype(array.dtype, np.integer) and not np.array_equal(array, np.round(array)):
            raise _smpl_error(path, f"key '{key}' holds non-integer values, expected indices")
        return array.astype(np.int64)
    array = array.astype(np.float64)
    if not np.isfinite(array).all():
        raise _smpl_error(path, f"key '{key}' holds non-finite values")
    return array[:, :, :SMPL_NUM_BETAS] if key == "shapedirs" else array


def load_smpl_arrays(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """Load an SMPL model from any of its file forms, without chumpy or scipy.

    Args:
        path: a folder (holding ``SMPL_NEUTRAL.pkl``, else ``SMPL_NEUTRAL.npz``, else
            ``basicModel_neutral_lbs_10_207_0_v1.0.0.pkl``) or a file: the original chumpy pickle, a
            plain-numpy pickle or an ``.npz``.
    Returns:
        v_template (6890, 3) float64 m, shapedirs (6890, 3, 10) float64 m (the first 10 betas),
        posedirs (6890, 3, 207) float64 m, J_regressor (24, 6890) float64 (dense), weights (6890, 24)
        float64, kintree_table (2, 24) int64 (root parent 4294967295), f (13776, 3) int64.
    Raises:
        AssetError: a missing or unreadable file, a refused pickle global, a missing or ill-shaped key;
            one line naming the path, the key, expected vs actual and where to get the file.
    """
    model_file = _resolve_model_file(Path(path))
    raw = _read_npz(model_file) if model_file.suffix == ".npz" else _read_pickle(model_file)
    arrays = {key: _checked_array(raw, key, model_file) for key in SMPL_KEYS}
    parents = arrays["kintree_table"][0].copy()
    parents[0] = -1 if parents[0] == KINTREE_ROOT else parents[0]
    if tuple(int(p) for p in parents) != SMPL_PARENTS:
        raise _smpl_error(model_file, f"key 'kintree_table' has parents {parents.tolist()}, expected SMPL's "
                                      f"{list(SMPL_PARENTS)} (root {KINTREE_ROOT})")
    faces = arrays["f"]
    if faces.min() < 0 or faces.max() >= SMPL_NUM_VERTICES:
        raise _smpl_error(model_file, f"key 'f' has vertex ids in [{faces.min()}, {faces.max()}], "
                                      f"expected [0, {SMPL_NUM_VERTICES - 1}]")
    return arrays


def load_joint_regressor(path: str | os.PathLike, num_joints: int) -> np.ndarray:
    """Load a joint regressor ``.npy`` (num_joints, 6890) as float64 (joints = regressor @ vertices).

    Raises:
        AssetError: missing, unreadable or ill-shaped file; one line with the path, expected vs actual
            shape and where users get the file.
    """
    path = Path(path)
    source = _REGRESSOR_SOURCES.get(path.name, _REGRESSOR_SOURCE_DEFAULT)
    expected = (num_joints, SMPL_NUM_VERTICES)
    if not path.is_file():
        raise AssetError(_one_line(f"{path.resolve()}: joint regressor not found{_relative_note(path)}; "
                                   f"expected an array of shape {expected}: {source}"))
    try:
        array = np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError) as exc:
        raise AssetError(_one_line(f"{path.resolve()}: not a readable .npy ({type(exc).__name__}: {exc}); "
                                   f"expected an array of shape {expected}: {source}")) from None
    if not isinstance(array, np.ndarray) or array.shape != expected or not np.issubdtype(array.dtype, np.number):
        got = getattr(array, "shape", type(array).__name__)
        raise AssetError(_one_line(f"{path.resolve()}: joint regressor has shape {got}, dtype "
                                   f"{getattr(array, 'dtype', None)}; expected a numeric array of shape {expected}: {source}"))
    array = array.astype(np.float64)
    if not np.isfinite(array).all():
        raise AssetError(_one_line(f"{path.resolve()}: joint regressor holds non-finite values: {source}"))
    return array


# ----------------------------------------------------------------------------------------------
# The body model
def _smplx_model(arrays: dict[str, np.ndarray], dtype: torch.dtype, **options: Any) -> smplx.SMPL:
    """smplx.SMPL built from loaded arrays, with its 'only 10 shape coefficients' print silenced."""
    with contextlib.redirect_stdout(io.StringIO()):
        return smplx.SMPL(model_path="", data_struct=smplx.utils.Struct(**arrays), num_betas=SMPL_NUM_BETAS,
                          dtype=dtype, **options)


def _model_path(data_root: str | os.PathLike, model_file: str | os.PathLike | None) -> Path:
    root = Path(data_root)
    if model_file is None:
        return root
    model = Path(model_file)
    return model if model.is_absolute() else root / model


def kinematic_levels(parents: tuple[int, ...]) -> tuple[tuple[tuple[int, ...], tuple[int, ...]], ...]:
    """The kinematic tree cut into levels of equal depth, root first.

    Args:
        parents: parent of each joint, -1 for the root (SMPL's ``SMPL_PARENTS``).
    Returns:
        one ``(joints, parent_slots)`` per depth d >= 1: the joints at depth d and, for each, the index of
        its parent among the joints of depth d - 1 (the root level ``((0,), ())`` comes first). Every
        level is one batched product in ``BodyModel``'s kinematic chain instead of one per joint.
    """
    depth = [0] * len(parents)
    for joint, parent in enumerate(parents):
        if parent >= joint and parent != -1:
            raise ValueError(f"parents must be listed before their children; joint {joint} has parent {parent}")
        depth[joint] = 0 if parent == -1 else depth[parent] + 1
    levels = [tuple(j for j, d in enumerate(depth) if d == level) for level in range(max(depth) + 1)]
    slots = [()] + [tuple(levels[d - 1].index(parents[j]) for j in levels[d]) for d in range(1, len(levels))]
    return tuple(zip(levels, slots))


class BodyModel(nn.Module):
    """SMPL (neutral, 10 betas) with our batched LBS; all SMPL arrays are non-persistent buffers.

    Buffers (float32 unless the module is cast): v_template (6890, 3) m, shapedirs (6890, 3, 10) m,
    lbs_weights (6890, 24), J_template (24, 3) m, J_shapedirs (24, 3, 10) m (the rest joints as a
    linear function of betas: exact, since J_regressor is linear), J_regressor_h36m (17, 6890) and
    J_regressor_extra (9, 6890) or None when its file is absent. For the forward pass, in the layouts
    it reads (component-major: x of every vertex, then y, then z): template_cm (3 * 6890,) m = the rest
    mesh, blend_basis (217, 3 * 6890) m = the 10 shape blend shapes then the 207 pose blend shapes (one
    matrix product gives the blended rest mesh), lbs_weights_t (24, 6890) and J_regressor_h36m_t (6890, 17).

    Args:
        data_root: folder holding the SMPL model (``SMPL_NEUTRAL.pkl`` or .npz, or SMPLify's original
            name) and the H36M regressor (J_regressor_extra.npy optional).
        model_file: another SMPL model file; a relative path is taken inside data_root.
        h36m_regressor_file: the (17, 6890) regressor in data_root behind ``J_regressor_h36m`` and
            ``h36m_joints``: SPIN's ``J_regressor_h36m_correct.npy`` (the refiner, its metrics) by
            default; the HybrIK stage passes HybrIK's ``J_regressor_h36m.npy``.
        dtype: of the buffers (default: torch's default dtype). The arrays are precomputed in float64
            and rounded once, so ``dtype=torch.float64`` is exact where ``.double()`` after a float32
            build would keep float32 rounding.
    Raises:
        AssetError: a missing or malformed file (one line: path, key, expected vs actual, the source).
    """

    NUM_JOINTS = SMPL_NUM_JOINTS
    NUM_BETAS = SMPL_NUM_BETAS
    NUM_VERTICES = SMPL_NUM_VERTICES

    def __init__(self, data_root: str | os.PathLike, model_file: str | os.PathLike | None = None, *,
                 dtype: torch.dtype | None = None, h36m_regressor_file: str = H36M_REGRESSOR_FILE) -> None:
        super().__init__()
        root = Path(data_root)
        arrays = load_smpl_arrays(_model_path(root, model_file))
        h36m = load_joint_regressor(root / h36m_regressor_file, H36M_NUM_JOINTS)
        extra_path = root / EXTRA_REGRESSOR_FILE
        extra = load_joint_regressor(extra_path, EXTRA_NUM_JOINTS) if extra_path.exists() else None

        # smplx loads the arrays (float64, so nothing is rounded before our own precomputation).
        reference = _smplx_model(arrays, torch.float64, create_betas=False, create_global_orient=False,
                                 create_body_pose=False, create_transl=False)
        v_template = reference.v_template  # (V, 3)
        shapedirs = reference.shapedirs  # (V, 3, 10)
        j_regressor = reference.J_regressor  # (24, V)
        self.parents: tuple[int, ...] = tuple(int(p) for p in reference.parents.tolist())
        self.levels = kinematic_levels(self.parents)
        self._faces = np.ascontiguousarray(reference.faces_tensor.numpy(), dtype=np.int64)
        self._faces.flags.writeable = False

        n_vertices = SMPL_NUM_VERTICES
        shape_basis = shapedirs.permute(2, 1, 0).reshape(SMPL_NUM_BETAS, 3 * n_vertices)  # (10, 3 * V)
        pose_basis = reference.posedirs.reshape(NUM_POSE_BASIS, n_vertices, 3).transpose(1, 2)  # (207, 3, V)
        dtype = torch.get_default_dtype() if dtype is None else dtype
        buffers = {
            "v_template": v_template,
            "shapedirs": shapedirs,
            "lbs_weights": reference.lbs_weights,  # (V, 24)
            "J_template": j_regressor @ v_template,  # (24, 3)
            "J_shapedirs": torch.einsum("jv,vcl->jcl", j_regressor, shapedirs),  # (24, 3, 10)
            "J_regressor_h36m": torch.from_numpy(h36m),  # (17, V)
            # The same arrays in the layouts forward() multiplies with (precomputed once, float64).
            "template_cm": v_template.T.reshape(3 * n_vertices),  # (3 * V,)
            "blend_basis": torch.cat([shape_basis, pose_basis.reshape(NUM_POSE_BASIS, 3 * n_vertices)]),  # (217, 3V)
            "lbs_weights_t": reference.lbs_weights.T,  # (24, V)
            "J_regressor_h36m_t": torch.from_numpy(h36m).T,  # (V, 17)
        }
        for name, value in buffers.items():
            self.register_buffer(name, value.to(dtype).contiguous(), persistent=False)
        self.register_buffer("J_regressor_extra", None if extra is None else torch.from_numpy(extra).to(dtype),
                             persistent=False)
        self._h36m_lbs: dict[tuple[torch.device, torch.dtype], tuple[Tensor, Tensor, Tensor]] = {}
        logger.debug("SMPL loaded from %s (%d vertices, extra regressor: %s)", root, SMPL_NUM_VERTICES,
                     extra is not None)

    def pose_blend_shapes(self) -> Tensor:
        """(207, 6890, 3) m: SMPL's pose blend shapes (its ``posedirs``), one per entry of R - I of the 23 body
        joints in SMPL's order, read back from ``blend_basis``."""
        return self.blend_basis[SMPL_NUM_BETAS:].unflatten(1, (3, SMPL_NUM_VERTICES)).transpose(1, 2)

    @property
    def faces(self) -> np.ndarray:
        """(13776, 3) int64 vertex ids, read-only."""
        return self._faces

    def forward(self, rot_mat: Tensor, betas: Tensor) -> SMPLOutput:
        """Posed SMPL meshes from joint rotations and shape.

        Args:
            rot_mat: (B, 24, 3, 3) local joint rotations (joint 0 = global orientation).
            betas: (B, 10) shape coefficients.
        Returns:
            SMPLOutput(vertices (B, 6890, 3) m, joints (B, 24, 3) m), no translation applied.
        """
        vertices, joints = self.skin(rot_mat, betas)
        # Contiguous, so callers may .view() it like any other (B, V, 3) tensor.
        return SMPLOutput(vertices=vertices.transpose(1, 2).contiguous(), joints=joints)

    def skin(self, rot_mat: Tensor, betas: Tensor, scale: float = 1.0) -> tuple[Tensor, Tensor]:
        """The LBS of ``forward``, with the vertices component-major and optionally scaled.

        Args:
            rot_mat: (B, 24, 3, 3) local joint rotations.
            betas: (B, 10).
            scale: multiplies the vertices (1000: millimetres) at no cost (it scales the 24 blended
                transforms, not the 6890 vertices).
        Returns:
            vertices (B, 3, 6890) m * scale (x of every vertex, then y, then z), joints (B, 24, 3) m.
        """
        n_joints, n_vertices = self.NUM_JOINTS, self.NUM_VERTICES
        # Shape and pose blend shapes in one product: [betas, (R - I) of the 23 non-root joints] @ basis.
        identity = torch.eye(3, dtype=rot_mat.dtype, device=rot_mat.device)
        pose_feature = (rot_mat[:, 1:] - identity).flatten(1)  # (B, 207)
        blend_input = torch.cat([betas, pose_feature], dim=1)  # (B, 217)
        points = torch.addmm(self.template_cm, blend_input, self.blend_basis).unflatten(1, (3, n_vertices))  # (B, 3, V)
        joints = self.J_template + (betas @ self.J_shapedirs.flatten(0, 1).T).unflatten(1, (n_joints, 3))  # (B, 24, 3)

        world_rot, world_pos = self._kinematic_chain(rot_mat, joints)  # (B, 24, 3, 3), (B, 24, 3)
        # Relative transforms x -> rot_j (x - J_j) + posed_j = rot_j x + shift_j, scaled.
        shift = world_pos - (world_rot @ joints.unsqueeze(-1)).squeeze(-1)  # (B, 24, 3)
        # The rotations' 9 entries blended per vertex by one product (B, 9, 24) @ (24, V), rows k-major
        # (column k of rot, then its 3 components), the translation by another; then x_v's rotated
        # point is sum_k column_k(v) * point_k(v): one broadcast product and one sum over k, elementwise
        # over the vertices (what vectorises best; no per-vertex matrix product, no split copies).
        rot_rows = (world_rot * scale).permute(0, 3, 2, 1).flatten(1, 2)  # (B, 24, c, k) -> (B, 9 = [k, c], 24)
        rot = (rot_rows @ self.lbs_weights_t).unflatten(1, (3, 3))  # (B, 3 k, 3 c, V)
        offset = (shift * scale).transpose(1, 2) @ self.lbs_weights_t  # (B, 3, V)
        vertices = (rot * points.unsqueeze(2)).sum(dim=1) + offset  # (B, 3, V)
        return vertices, world_pos

    def h36m_joints_of_pose(self, rot_mat: Tensor, betas: Tensor) -> Tensor:
        """The H36M-17 joints of ``h36m_joints(forward(rot_mat, betas).vertices)``, without the mesh.

        Exact, not an approximation: LBS is linear in the rest-pose vertices for given joint transforms,
        so the regressor can be applied before the skinning. With r the (17, V) regressor, W the (V, 24)
        skinning weights and p_v = t_v + B_v f the blended rest vertex (f = [betas, pose feature]),
        ``J_j = sum_i R_i (T_ji + Q_ji f) + A_ji shift_i`` with A = r W (17, 24), T_ji = sum_v r_jv W_vi t_v
        and Q_ji = sum_v r_jv W_vi B_v (17, 24, 3, 217), precomputed once per device and dtype: about 20x
        fewer FLOPs than the mesh (what a fit that only needs the joints, ``lib.eval.fit2d``, runs in its
        every iteration).

        Args:
            rot_mat: (B, 24, 3, 3) local joint rotations; betas: (B, 10).
        Returns:
            (B, 17, 3) m, not centred (as ``h36m_joints`` of the mesh).
        """
        area, rest, basis = self._h36m_skinning(rot_mat.device, rot_mat.dtype)
        identity = torch.eye(3, dtype=rot_mat.dtype, device=rot_mat.device)
        blend_input = torch.cat([betas, (rot_mat[:, 1:] - identity).flatten(1)], dim=1)  # (B, 217)
        points = rest + (blend_input @ basis.flatten(0, 2).T).unflatten(1, rest.shape)  # (B, 17, 24, 3)
        joints = self.J_template + (betas @ self.J_shapedirs.flatten(0, 1).T).unflatten(1, (self.NUM_JOINTS, 3))
        world_rot, world_pos = self._kinematic_chain(rot_mat, joints)  # (B, 24, 3, 3), (B, 24, 3)
        shift = world_pos - (world_rot @ joints.unsqueeze(-1)).squeeze(-1)  # (B, 24, 3)
        rotated = torch.einsum("bick,bjik->bjc", world_rot, points)  # (B, 17, 3)
        return rotated + area @ shift  # (17, 24) @ (B, 24, 3)

    def _h36m_skinning(self, device: torch.device, dtype: torch.dtype) -> tuple[Tensor, Tensor, Tensor]:
        """(A (17, 24), T (17, 24, 3), Q (17, 24, 3, 217)) of ``h36m_joints_of_pose``, computed in float64
        from the buffers on first use and kept per (device, dtype)."""
        key = (device, dtype)
        if key not in self._h36m_lbs:
            regressor = self.J_regressor_h36m.double()  # (17, V)
            per_pair = regressor[:, None, :] * self.lbs_weights_t.double()[None]  # (17, 24, V): r_jv W_vi
            template = self.template_cm.double().unflatten(0, (3, self.NUM_VERTICES))  # (3, V)
            basis = self.blend_basis.double().unflatten(1, (3, self.NUM_VERTICES))  # (217, 3, V)
            area = per_pair.sum(dim=-1)  # (17, 24)
            rest = torch.einsum("jiv,cv->jic", per_pair, template)  # (17, 24, 3)
            blend = torch.einsum("jiv,fcv->jicf", per_pair, basis)  # (17, 24, 3, 217)
            self._h36m_lbs[key] = tuple(t.to(device=device, dtype=dtype).contiguous() for t in (area, rest, blend))
        return self._h36m_lbs[key]

    def _kinematic_chain(self, rot_mat: Tensor, joints: Tensor) -> tuple[Tensor, Tensor]:
        """World rotation and position of every joint, one batched product per tree level.

        Args:
            rot_mat: (B, 24, 3, 3) local rotations; joints: (B, 24, 3) rest joints.
        Returns:
            world rotations (B, 24, 3, 3), posed joints (B, 24, 3).
        """
        # Each joint's offset from its parent (the root's: its rest position).
        bones = torch.cat([joints[:, :1], joints[:, 1:] - joints[:, list(self.parents[1:])]], dim=1)  # (B, 24, 3)
        # Homogeneous local transforms [R_j | bone_j; 0 0 0 1]: composing two is one 4 x 4 product.
        corner = torch.zeros(4, 4, dtype=rot_mat.dtype, device=rot_mat.device)
        corner[3, 3] = 1.0
        local = F.pad(torch.cat([rot_mat, bones.unsqueeze(-1)], dim=-1), (0, 0, 0, 1)) + corner  # (B, 24, 4, 4)
        levels = [local[:, :1]]  # the root's world transform is its local one
        for level_joints, slots in self.levels[1:]:
            levels.append(levels[-1][:, list(slots)] @ local[:, list(level_joints)])  # (B, k, 4, 4)
        order = [j for level_joints, _ in self.levels for j in level_joints]
        world = torch.cat(levels, dim=1)[:, [order.index(j) for j in range(len(order))]]  # (B, 24, 4, 4)
        return world[..., :3, :3], world[..., :3, 3]

    def forward_axis_angle(self, pose: Tensor, betas: Tensor) -> SMPLOutput:
        """Like ``forward`` with the pose as (B, 72) axis-angle in radians (24 joints x 3)."""
        rot_mat = axis_angle_to_matrix(pose.reshape(-1, self.NUM_JOINTS, 3))  # (B, 24, 3, 3)
        return self.forward(rot_mat, betas)

    def h36m_joints(self, vertices: Tensor) -> Tensor:
        """H36M-17 joints (..., 17, 3) from vertices (..., 6890, 3), in the vertices' units (SPIN's
        J_regressor_h36m_correct unless another ``h36m_regressor_file`` was given)."""
        return torch.matmul(self.J_regressor_h36m, vertices)  # (17, V) @ (..., V, 3)

    def h36m_joints_cm(self, vertices: Tensor) -> Tensor:
        """``h36m_joints`` of component-major vertices (B, 3, 6890) (``skin``): (B, 3, 17), one matrix
        product with B * 3 rows (the (..., 6890, 3) layout multiplies a (17, 6890) by 3 columns per mesh)."""
        return vertices @ self.J_regressor_h36m_t  # (B, 3, V) @ (V, 17)


def posed_mesh_mm(body_model: nn.Module, rot_mat: Tensor, shape: Tensor) -> tuple[Tensor, Tensor]:
    """SMPL mesh and H36M-17 joints in mm, centred on the H36M pelvis of the same mesh.

    Shared by the refiner's outputs, the training targets and the data augmentations, so all follow one
    convention. SMPL
    runs in float32 even under autocast (mixed precision applies to the network only).

    Args:
        body_model: ``BodyModel``.
        rot_mat: (N, T, 24, 3, 3).
        shape: (N, T, 10).
    Returns:
        vertices (N, T, 6890, 3) mm, keypoint_3d (N, T, 17, 3) mm.
    """
    if torch.is_autocast_enabled(rot_mat.device.type):
        with torch.autocast(rot_mat.device.type, enabled=False):
            return posed_mesh_mm(body_model, rot_mat.float(), shape.float())
    # Component-major (x of every vertex, then y, then z) until the end: the regressor is then one
    # matrix product, and the millimetre scale costs nothing (``BodyModel.skin``).
    vertices, _ = body_model.skin(rot_mat.flatten(0, 1), shape.flatten(0, 1), scale=MM_PER_M)  # (N*T, 3, 6890) mm
    keypoints = body_model.h36m_joints_cm(vertices)  # (N*T, 3, 17)
    root = keypoints[..., H36M_ROOT:H36M_ROOT + 1]  # (N*T, 3, 1)
    # Batch axes restored first, the transpose last: it then writes the outputs (a reshape after it
    # would be one more copy of the mesh in onnxruntime).
    vertices = (vertices - root).unflatten(0, rot_mat.shape[:2]).transpose(-1, -2)  # (N, T, 6890, 3)
    keypoints = (keypoints - root).unflatten(0, rot_mat.shape[:2]).transpose(-1, -2)  # (N, T, 17, 3)
    return vertices.contiguous(), keypoints.contiguous()


def smplx_reference(data_root: str | os.PathLike, model_file: str | os.PathLike | None = None,
                    dtype: torch.dtype = torch.float32) -> smplx.SMPL:
    """The reference implementation: ``smplx.SMPL`` built from the same files (stdout silenced).

    For tests and benchmarks; pass ``global_orient``, ``body_pose``, ``betas`` and ``transl``
    explicitly when calling it.
    """
    return _smplx_model(load_smpl_arrays(_model_path(Path(data_root), model_file)), dtype)

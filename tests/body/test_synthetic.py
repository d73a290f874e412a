"""The synthetic SMPL stand-in: a closed human-shaped mesh with SMPL's structure, in the real file forms."""

from __future__ import annotations

import hashlib
import pickle
import pickletools
import sys
import types
from pathlib import Path

import numpy as np
import pytest

from lib.body.joint_names import (
    H36M_JOINT_NAMES,
    SMPL_JOINT_NAMES,
    SMPL_NUM_FACES,
    SMPL_NUM_JOINTS,
    SMPL_NUM_VERTICES,
    SMPL_PARENTS,
)
from lib.body.synthetic import (
    SMPL_PLAIN_FILE,
    _original_module_names,
    build_smpl_standin,
    main,
    write_smpl_assets,
)

ALL_FILES = ("SMPL_NEUTRAL.pkl", SMPL_PLAIN_FILE, "SMPL_NEUTRAL.npz", "J_regressor_h36m_correct.npy",
             "J_regressor_extra.npy", "J_regressor_h36m.npy")


@pytest.fixture(scope="module")
def model() -> dict[str, np.ndarray]:
    return build_smpl_standin(seed=0)


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_mesh_is_closed_oriented_genus_zero(model: dict[str, np.ndarray]) -> None:
    faces = model["f"].astype(np.int64)
    assert model["v_template"].shape == (SMPL_NUM_VERTICES, 3) and faces.shape == (SMPL_NUM_FACES, 3)
    assert np.array_equal(np.unique(faces), np.arange(SMPL_NUM_VERTICES))  # every vertex used
    assert (faces[:, [0, 1, 2]] != faces[:, [1, 2, 0]]).all()  # no degenerate faces
    directed = np.concatenate([faces[:, [0, 1]], faces[:, [1, 2]], faces[:, [2, 0]]])
    # Consistent orientation: each directed edge once, and its reverse present (so every edge has 2 faces).
    assert np.unique(directed, axis=0).shape[0] == directed.shape[0]
    undirected, counts = np.unique(np.sort(directed, axis=1), axis=0, return_counts=True)
    assert (counts == 2).all()
    assert SMPL_NUM_VERTICES - undirected.shape[0] + SMPL_NUM_FACES == 2  # Euler characteristic
    v = model["v_template"]
    a, b, c = v[faces[:, 0]], v[faces[:, 1]], v[faces[:, 2]]
    volume = np.einsum("ij,ij->i", a, np.cross(b, c)).sum() / 6.0  # divergence theorem
    assert 0.04 < volume < 0.09  # m^3, outward normals; a 70 kg person is about 0.07 m^3


def test_arrays_have_smpl_structure(model: dict[str, np.ndarray]) -> None:
    v = model["v_template"]
    assert model["shapedirs"].shape == (SMPL_NUM_VERTICES, 3, 10)
    assert model["posedirs"].shape == (SMPL_NUM_VERTICES, 3, 207)
    assert model["J_regressor"].shape == (SMPL_NUM_JOINTS, SMPL_NUM_VERTICES)
    assert model["weights"].shape == (SMPL_NUM_VERTICES, SMPL_NUM_JOINTS)
    assert model["f"].dtype == np.uint32 and model["kintree_table"].dtype == np.int64
    assert (model["bs_style"], model["bs_type"]) == ("lbs", "lrotmin")
    assert model["kintree_table"][0, 0] == 4294967295
    assert tuple(model["kintree_table"][0, 1:]) == SMPL_PARENTS[1:]
    assert np.array_equal(model["kintree_table"][1], np.arange(SMPL_NUM_JOINTS))
    weights = model["weights"]
    assert (weights >= 0).all() and np.allclose(weights.sum(1), 1.0, atol=1e-12)
    assert ((weights > 0).sum(1) <= 4).all()
    for key, rows in (("J_regressor", 24), ("J_regressor_h36m_correct", 17), ("J_regressor_extra", 9),
                      ("J_regressor_h36m", 17)):
        reg = model[key]
        assert reg.shape == (rows, SMPL_NUM_VERTICES)
        assert (reg >= 0).all() and np.allclose(reg.sum(1), 1.0, atol=1e-12), key
    np.testing.assert_allclose(model["J"], model["J_regressor"] @ v, atol=1e-12)
    # Human proportions: about 1.7 m tall, arms spread in a T, y up.
    height = v[:, 1].max() - v[:, 1].min()
    assert 1.6 < height < 1.85 and 1.5 < np.ptp(v[:, 0]) < 1.9 and np.ptp(v[:, 2]) < 0.4
    joints = model["J"]
    for index, name in enumerate(SMPL_JOINT_NAMES):
        if name.startswith("left_"):
            assert joints[index, 0] > 0.02, name
        if name.startswith("right_"):
            assert joints[index, 0] < -0.02, name
    # Every child joint sits within 0.5 m of its parent, and the head is above the feet.
    bones = np.linalg.norm(joints[1:] - joints[list(SMPL_PARENTS[1:])], axis=1)
    assert (bones > 0.03).all() and (bones < 0.5).all()
    assert joints[SMPL_JOINT_NAMES.index("head"), 1] > joints[SMPL_JOINT_NAMES.index("left_foot"), 1] + 1.3


def test_blend_shapes_have_plausible_magnitudes(model: dict[str, np.ndarray]) -> None:
    shape = np.linalg.norm(model["shapedirs"], axis=1).max(axis=0)  # (10,) m per unit beta
    assert (shape > 1e-3).all() and (shape < 0.06).all()
    assert 0.01 < shape[0] < 0.06  # beta 0 changes the size by centimetres
    pose = np.abs(model["posedirs"]).max()
    assert 1e-4 < pose < 0.01  # millimetres per unit of (R - I)


def test_mesh_is_mirror_symmetric(model: dict[str, np.ndarray]) -> None:
    sym = model["vert_sym_idxs"]
    assert np.array_equal(sym[sym], np.arange(SMPL_NUM_VERTICES))
    np.testing.assert_allclose(model["v_template"][sym] * [-1.0, 1.0, 1.0], model["v_template"], atol=1e-12)


def test_skinning_follows_the_limbs(model: dict[str, np.ndarray]) -> None:
    v, weights = model["v_template"], model["weights"]
    # The outermost vertex of each hand / the lowest-front of each foot is driven by that limb's end.
    assert np.argmax(weights[np.argmax(v[:, 0])]) == SMPL_JOINT_NAMES.index("left_hand")
    assert np.argmax(weights[np.argmin(v[:, 0])]) == SMPL_JOINT_NAMES.index("right_hand")
    head_top = np.argmax(v[:, 1])
    assert np.argmax(weights[head_top]) == SMPL_JOINT_NAMES.index("head")
    # A vertex on the left shin is not influenced by anything on the right side or the arms.
    shin = np.argmin(np.linalg.norm(v - [0.14, -0.85, 0.0], axis=1))
    influences = {SMPL_JOINT_NAMES[j] for j in np.flatnonzero(weights[shin])}
    assert influences <= {"pelvis", "left_hip", "left_knee", "left_ankle", "left_foot"}
    assert "left_knee" in influences


def test_h36m_regressors_put_joints_where_their_names_say(model: dict[str, np.ndarray]) -> None:
    v = model["v_template"]
    h36m = model["J_regressor_h36m_correct"] @ v
    smpl = model["J"]
    name = {n: h36m[i] for i, n in enumerate(H36M_JOINT_NAMES)}
    smpl_at = {n: smpl[i] for i, n in enumerate(SMPL_JOINT_NAMES)}
    for side in ("left", "right"):
        for part in ("knee", "elbow", "wrist", "shoulder"):
            assert np.linalg.norm(name[f"{side}_{part}"] - smpl_at[f"{side}_{part}"]) < 0.03
        assert np.linalg.norm(name[f"{side}_ankle"] - smpl_at[f"{side}_ankle"]) < 0.03
    for left, right in (("left_hip", "right_hip"), ("left_wrist", "right_wrist")):
        assert name[left][0] > 0.05 and name[right][0] < -0.05
    assert name["head_top"][1] == h36m[:, 1].max()
    assert name["nose"][2] > name["head_top"][2]  # the face looks towards +z
    assert name["left_ankle"][1] < name["left_knee"][1] < name["left_hip"][1] < name["spine"][1] < name["thorax"][1]
    np.testing.assert_allclose(name["pelvis"][0], 0.0, atol=1e-9)
    # HybrIK's regressor is a different file that agrees with SPIN's within a centimetre.
    hybrik = model["J_regressor_h36m"] @ v
    gap = np.linalg.norm(hybrik - h36m, axis=1)
    assert gap.max() < 0.01 and gap.max() > 1e-3
    assert not np.array_equal(model["J_regressor_h36m"], model["J_regressor_h36m_correct"])


def test_same_seed_same_bytes(smpl_root: Path, tmp_path: Path) -> None:
    written = write_smpl_assets(tmp_path, seed=0, forms=("chumpy", "plain", "npz"))
    assert sorted(path.name for path in written.values()) == sorted(ALL_FILES)
    for name in ALL_FILES:
        assert _sha256(tmp_path / name) == _sha256(smpl_root / name), name
    assert not [p.name for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temp files left
    other = build_smpl_standin(seed=1)
    assert not np.array_equal(other["shapedirs"], build_smpl_standin(seed=0)["shapedirs"])


def test_chumpy_form_is_laid_out_like_the_original(smpl_root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    data = (smpl_root / "SMPL_NEUTRAL.pkl").read_bytes()
    assert data[:2] == b"\x80\x02"  # protocol 2, as Python 2 wrote it
    globals_used = {arg for op, arg, _ in pickletools.genops(data) if op.name == "GLOBAL"}
    assert globals_used == {"chumpy.ch Ch", "scipy.sparse.csc csc_matrix", "numpy.core.multiarray _reconstruct",
                            "numpy ndarray", "numpy dtype", "__builtin__ set"}
    monkeypatch.setitem(sys.modules, "chumpy", None)  # as on any machine without chumpy
    with pytest.raises(ModuleNotFoundError) as info:
        pickle.loads(data, encoding="latin1")
    assert info.value.name.split(".")[0] == "chumpy"


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # scipy.sparse.csc is a deprecated module path
def test_chumpy_form_reads_back_through_real_scipy(smpl_root: Path, model: dict[str, np.ndarray],
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    scipy_sparse = pytest.importorskip("scipy.sparse")
    chumpy, chumpy_ch = types.ModuleType("chumpy"), types.ModuleType("chumpy.ch")

    class Ch:  # the part of chumpy.ch.Ch that unpickling uses
        def __setstate__(self, state: dict) -> None:
            self.__dict__.update(state)

    Ch.__module__ = "chumpy.ch"
    chumpy_ch.Ch = Ch
    monkeypatch.setitem(sys.modules, "chumpy", chumpy)
    monkeypatch.setitem(sys.modules, "chumpy.ch", chumpy_ch)
    with open(smpl_root / "SMPL_NEUTRAL.pkl", "rb") as handle:
        content = pickle.load(handle, encoding="latin1")
    assert scipy_sparse.isspmatrix_csc(content["J_regressor"])
    np.testing.assert_array_equal(content["J_regressor"].toarray(), model["J_regressor"])
    assert isinstance(content["shapedirs"], Ch) and content["shapedirs"]._dirty_vars == {"x"}
    np.testing.assert_array_equal(content["shapedirs"].x, model["shapedirs"])
    for key in ("v_template", "posedirs", "weights", "kintree_table", "f", "J", "vert_sym_idxs"):
        assert content[key].dtype == model[key].dtype
        np.testing.assert_array_equal(content[key], model[key])


def test_stand_in_modules_are_removed_even_on_error() -> None:
    import scipy.sparse  # noqa: F401  (real scipy must come back exactly)

    names = ("chumpy", "chumpy.ch", "scipy", "scipy.sparse", "scipy.sparse.csc", "numpy.core.multiarray")
    absent = object()
    before = {name: sys.modules.get(name, absent) for name in names}
    with pytest.raises(RuntimeError, match="boom"):
        with _original_module_names():
            assert sys.modules["scipy"] is not before["scipy"]
            assert sys.modules["chumpy.ch"].Ch.__module__ == "chumpy.ch"
            raise RuntimeError("boom")
    assert all(sys.modules.get(name, absent) is before[name] for name in names)


def test_cli_writes_and_reports(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--out", str(tmp_path / "smpl"), "--forms", "npz"]) == 0
    printed = capsys.readouterr().out
    for name in ("SMPL_NEUTRAL.npz", "J_regressor_h36m_correct.npy", "J_regressor_extra.npy", "J_regressor_h36m.npy"):
        assert (tmp_path / "smpl" / name).is_file() and name in printed
    assert not (tmp_path / "smpl" / "SMPL_NEUTRAL.pkl").exists()


def test_unknown_form_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="pickle5"):
        write_smpl_assets(tmp_path, forms=("pickle5",))


def test_hybrik_model_files_layout(smpl_root: Path, hybrik_model_files: Path, tmp_path: Path,
                                   capsys: pytest.CaptureFixture[str]) -> None:
    """HybrIK's model_files/ exactly: the same SMPL bytes under SMPLify's name, HybrIK's regressor, mean betas."""
    assert sorted(p.name for p in hybrik_model_files.iterdir()) == [
        "J_regressor_h36m.npy", "basicModel_neutral_lbs_10_207_0_v1.0.0.pkl", "h36m_mean_beta.npy"]
    assert _sha256(hybrik_model_files / "basicModel_neutral_lbs_10_207_0_v1.0.0.pkl") == \
        _sha256(smpl_root / "SMPL_NEUTRAL.pkl")
    assert _sha256(hybrik_model_files / "J_regressor_h36m.npy") == _sha256(smpl_root / "J_regressor_h36m.npy")
    mean_beta = np.load(hybrik_model_files / "h36m_mean_beta.npy", allow_pickle=False)
    assert mean_beta.shape == (10,) and mean_beta.dtype == np.float64 and 0 < np.abs(mean_beta).max() < 2
    assert main(["--out", str(tmp_path / "mf"), "--layout", "hybrik"]) == 0
    assert "h36m_mean_beta" in capsys.readouterr().out
    assert all(_sha256(tmp_path / "mf" / p.name) == _sha256(p) for p in hybrik_model_files.iterdir())

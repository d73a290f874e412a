"""The SMPL boundary: loading every file form without chumpy / scipy, our LBS against independent ones."""

from __future__ import annotations

import hashlib
import json
import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from scipy.spatial.transform import Rotation

from lib.body.joint_names import SMPL_NUM_FACES, SMPL_PARENTS
from lib.body.smpl import (
    EXTRA_REGRESSOR_FILE,
    H36M_REGRESSOR_FILE,
    SMPL_KEYS,
    BodyModel,
    kinematic_levels,
    load_joint_regressor,
    load_smpl_arrays,
    smplx_reference,
)
from lib.errors import AssetError

REPO_ROOT = Path(__file__).resolve().parents[2]
TOL_M = 1e-6


@pytest.fixture(scope="module")
def arrays(smpl_root: Path) -> dict[str, np.ndarray]:
    return load_smpl_arrays(smpl_root / "SMPL_NEUTRAL.npz")


@pytest.fixture(scope="module")
def body64(smpl_root: Path) -> BodyModel:
    return BodyModel(smpl_root, dtype=torch.float64)


def _random_pose(batch: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Axis-angle (B, 24, 3) rad with realistic ranges and betas (B, 10)."""
    rng = np.random.default_rng(seed)
    return rng.normal(0.0, 0.6, size=(batch, 24, 3)), rng.normal(0.0, 1.0, size=(batch, 10))


def _numpy_lbs(arrays: dict[str, np.ndarray], rot: np.ndarray, betas: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """SMPL's equations in float64 numpy with 4x4 homogeneous transforms: vertices (B, V, 3), joints (B, 24, 3)."""
    out_v, out_j = [], []
    for rot_b, beta in zip(rot, betas):
        v_shaped = arrays["v_template"] + arrays["shapedirs"] @ beta
        rest = arrays["J_regressor"] @ v_shaped
        v_posed = v_shaped + arrays["posedirs"] @ (rot_b[1:] - np.eye(3)).ravel()
        world = np.zeros((24, 4, 4))
        for j, parent in enumerate(SMPL_PARENTS):
            local = np.eye(4)
            local[:3, :3] = rot_b[j]
            local[:3, 3] = rest[j] - (rest[parent] if parent >= 0 else 0.0)
            world[j] = local if parent < 0 else world[parent] @ local
        relative = world.copy()
        relative[:, :3, 3] -= np.einsum("jab,jb->ja", world[:, :3, :3], rest)
        per_vertex = np.einsum("vj,jab->vab", arrays["weights"], relative)
        homogeneous = np.concatenate([v_posed, np.ones((v_posed.shape[0], 1))], axis=1)
        out_v.append(np.einsum("vab,vb->va", per_vertex, homogeneous)[:, :3])
        out_j.append(world[:, :3, 3])
    return np.stack(out_v), np.stack(out_j)


# ----------------------------------------------------------------------------------------------
# Loading
def test_every_file_form_loads_to_the_same_arrays(smpl_root: Path, arrays: dict[str, np.ndarray]) -> None:
    from lib.body.synthetic import build_smpl_standin

    truth = build_smpl_standin(seed=0)
    forms = {name: load_smpl_arrays(smpl_root / name) for name in ("SMPL_NEUTRAL.pkl", "SMPL_NEUTRAL_plain.pkl")}
    forms["directory"] = load_smpl_arrays(smpl_root)
    forms["npz"] = arrays
    for form, loaded in forms.items():
        assert set(loaded) == set(SMPL_KEYS), form
        for key in SMPL_KEYS:
            expected = truth[key] if key != "f" else truth[key].astype(np.int64)
            assert loaded[key].dtype == (np.int64 if key in ("f", "kintree_table") else np.float64), (form, key)
            np.testing.assert_array_equal(loaded[key], expected, err_msg=f"{form}: {key}")


def test_directory_falls_back_to_npz(smpl_root: Path, tmp_path: Path, arrays: dict[str, np.ndarray]) -> None:
    (tmp_path / "SMPL_NEUTRAL.npz").symlink_to(smpl_root / "SMPL_NEUTRAL.npz")
    loaded = load_smpl_arrays(tmp_path)
    np.testing.assert_array_equal(loaded["posedirs"], arrays["posedirs"])


@pytest.mark.parametrize("protocol", [2, 5])
def test_plain_pickles_of_any_protocol_load(tmp_path: Path, arrays: dict[str, np.ndarray], protocol: int) -> None:
    path = tmp_path / "model.pkl"  # protocol 2 from Python 3 rebuilds bytes through _codecs.encode
    path.write_bytes(pickle.dumps({**arrays, "bs_style": "lbs"}, protocol=protocol))
    loaded = load_smpl_arrays(path)
    for key in SMPL_KEYS:
        np.testing.assert_array_equal(loaded[key], arrays[key])


def test_original_pickle_loads_with_neither_chumpy_nor_scipy(smpl_root: Path, arrays: dict[str, np.ndarray]) -> None:
    script = (
        "import hashlib, json, pickle, sys\n"
        "sys.modules['chumpy'] = None\n"
        "sys.modules['scipy'] = None\n"
        "path = sys.argv[1]\n"
        "result = {}\n"
        "try:\n"
        "    with open(path, 'rb') as handle:\n"
        "        pickle.load(handle, encoding='latin1')\n"
        "    result['pickle_load'] = 'loaded'\n"
        "except ModuleNotFoundError as exc:\n"
        "    result['pickle_load'] = 'ModuleNotFoundError ' + str(exc.name)\n"
        "from lib.body.smpl import load_smpl_arrays\n"
        "loaded = load_smpl_arrays(path)\n"
        "result['sha'] = {k: hashlib.sha256(v.tobytes()).hexdigest() for k, v in loaded.items()}\n"
        "result['dtypes'] = {k: str(v.dtype) for k, v in loaded.items()}\n"
        "print(json.dumps(result))\n"
    )
    run = subprocess.run([sys.executable, "-c", script, str(smpl_root / "SMPL_NEUTRAL.pkl")], cwd=REPO_ROOT,
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    result = json.loads(run.stdout.strip().splitlines()[-1])
    assert result["pickle_load"].startswith("ModuleNotFoundError chumpy")
    assert result["sha"] == {k: hashlib.sha256(v.tobytes()).hexdigest() for k, v in arrays.items()}
    assert result["dtypes"] == {k: str(v.dtype) for k, v in arrays.items()}


# ----------------------------------------------------------------------------------------------
# Errors: one line, naming the path and what was expected
def _assert_one_line(exc: pytest.ExceptionInfo[AssetError], *fragments: str) -> None:
    message = str(exc.value)
    assert "\n" not in message
    for fragment in fragments:
        assert fragment in message, (fragment, message)


def test_missing_model_file_names_the_resolved_path(tmp_path: Path) -> None:
    with pytest.raises(AssetError) as info:
        load_smpl_arrays(tmp_path / "nowhere" / "SMPL_NEUTRAL.pkl")
    _assert_one_line(info, str((tmp_path / "nowhere" / "SMPL_NEUTRAL.pkl").resolve()),
                     "basicModel_neutral_lbs_10_207_0_v1.0.0.pkl", "https://smplify.is.tue.mpg.de")
    with pytest.raises(AssetError) as info:
        BodyModel(tmp_path)  # an empty data_root
    _assert_one_line(info, str((tmp_path / "SMPL_NEUTRAL.pkl").resolve()), "SMPL_NEUTRAL.npz")


def test_relative_data_root_is_reported_resolved(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(AssetError) as info:
        load_smpl_arrays("data/mesh")
    _assert_one_line(info, str(tmp_path.resolve() / "data" / "mesh" / "SMPL_NEUTRAL.pkl"), "current directory")


@pytest.mark.parametrize("key, value, expected", [
    ("weights", None, "(6890, 24)"),
    ("posedirs", np.zeros((6890, 3, 200)), "(6890, 3, 200)"),
    ("shapedirs", np.zeros((6890, 3, 8)), ">=10"),
])
def test_missing_or_ill_shaped_key(tmp_path: Path, arrays: dict[str, np.ndarray], key: str,
                                   value: np.ndarray | None, expected: str) -> None:
    broken = {k: v for k, v in arrays.items() if k != key}
    if value is not None:
        broken[key] = value
    path = tmp_path / "SMPL_NEUTRAL.pkl"
    path.write_bytes(pickle.dumps(broken, protocol=4))
    with pytest.raises(AssetError) as info:
        load_smpl_arrays(path)
    _assert_one_line(info, str(path.resolve()), f"'{key}'", expected, "smplify.is.tue.mpg.de")


def test_malicious_pickle_is_refused_without_running(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    for module in ("os", "posix", "builtins"):
        function = "eval" if module == "builtins" else "system"
        argument = f"open({str(marker)!r}, 'w')" if module == "builtins" else f"touch {marker}"
        path = tmp_path / f"{module}.pkl"
        path.write_bytes(f"c{module}\n{function}\n(V{argument}\ntR.".encode())
        with pytest.raises(AssetError) as info:
            load_smpl_arrays(path)
        _assert_one_line(info, str(path.resolve()), f"{module}.{function}", "refusing")
    assert not marker.exists()


def test_truncated_or_wrong_files(tmp_path: Path, smpl_root: Path) -> None:
    truncated = tmp_path / "SMPL_NEUTRAL.pkl"
    truncated.write_bytes((smpl_root / "SMPL_NEUTRAL.pkl").read_bytes()[:5000])
    with pytest.raises(AssetError) as info:
        load_smpl_arrays(truncated)
    _assert_one_line(info, str(truncated.resolve()), "not a readable")
    listed = tmp_path / "list.pkl"
    listed.write_bytes(pickle.dumps([1, 2, 3]))
    with pytest.raises(AssetError) as info:
        load_smpl_arrays(listed)
    _assert_one_line(info, str(listed.resolve()), "dict")
    objects = tmp_path / "objects.npz"
    np.savez(objects, v_template=np.array([{"a": 1}], dtype=object))
    with pytest.raises(AssetError) as info:
        load_smpl_arrays(objects)
    _assert_one_line(info, str(objects.resolve()), "pickled objects")


def test_joint_regressor_errors(tmp_path: Path, smpl_root: Path) -> None:
    wrong = tmp_path / H36M_REGRESSOR_FILE
    np.save(wrong, np.zeros((16, 6890)))
    with pytest.raises(AssetError) as info:
        load_joint_regressor(wrong, 17)
    _assert_one_line(info, str(wrong.resolve()), "(17, 6890)", "(16, 6890)", "MotionBERT")
    with pytest.raises(AssetError) as info:
        load_joint_regressor(tmp_path / "J_regressor_h36m.npy", 17)
    _assert_one_line(info, str((tmp_path / "J_regressor_h36m.npy").resolve()), "not found", "HybrIK")
    # The body model checks its regressor too.
    (tmp_path / "SMPL_NEUTRAL.pkl").symlink_to(smpl_root / "SMPL_NEUTRAL.pkl")
    with pytest.raises(AssetError) as info:
        BodyModel(tmp_path)
    _assert_one_line(info, str(wrong.resolve()), "(17, 6890)")
    extra = smpl_root / EXTRA_REGRESSOR_FILE
    np.testing.assert_array_equal(load_joint_regressor(extra, 9), np.load(extra))


# ----------------------------------------------------------------------------------------------
# The body model
def test_forward_matches_numpy_lbs(body64: BodyModel, arrays: dict[str, np.ndarray]) -> None:
    pose, betas = _random_pose(4, seed=1)
    rot = Rotation.from_rotvec(pose.reshape(-1, 3)).as_matrix().reshape(4, 24, 3, 3)
    expected_v, expected_j = _numpy_lbs(arrays, rot, betas)
    out = body64(torch.from_numpy(rot), torch.from_numpy(betas))
    assert out.vertices.shape == (4, 6890, 3) and out.joints.shape == (4, 24, 3)
    np.testing.assert_allclose(out.vertices.numpy(), expected_v, atol=TOL_M, rtol=0)
    np.testing.assert_allclose(out.joints.numpy(), expected_j, atol=TOL_M, rtol=0)
    # The pose changes the mesh by decimetres, so the comparison is not vacuous.
    assert np.abs(expected_v - arrays["v_template"]).max() > 0.1


def test_forward_matches_smplx(body64: BodyModel, smpl_root: Path) -> None:
    reference = smplx_reference(smpl_root, dtype=torch.float64)
    pose, betas = _random_pose(4, seed=2)
    rot = torch.from_numpy(Rotation.from_rotvec(pose.reshape(-1, 3)).as_matrix().reshape(4, 24, 3, 3))
    betas_t = torch.from_numpy(betas)
    expected = reference(global_orient=rot[:, :1], body_pose=rot[:, 1:], betas=betas_t,
                         transl=torch.zeros(4, 3, dtype=torch.float64), pose2rot=False)
    out = body64(rot, betas_t)
    torch.testing.assert_close(out.vertices, expected.vertices, atol=TOL_M, rtol=0)
    torch.testing.assert_close(out.joints, expected.joints[:, :24], atol=TOL_M, rtol=0)


def test_forward_axis_angle_and_h36m_joints(body64: BodyModel, arrays: dict[str, np.ndarray],
                                            smpl_root: Path) -> None:
    pose, betas = _random_pose(3, seed=3)
    rot = Rotation.from_rotvec(pose.reshape(-1, 3)).as_matrix().reshape(3, 24, 3, 3)
    out = body64.forward_axis_angle(torch.from_numpy(pose.reshape(3, 72)), torch.from_numpy(betas))
    expected_v, _ = _numpy_lbs(arrays, rot, betas)
    np.testing.assert_allclose(out.vertices.numpy(), expected_v, atol=TOL_M, rtol=0)
    regressor = np.load(smpl_root / H36M_REGRESSOR_FILE)
    stacked = out.vertices.reshape(1, 3, 6890, 3)  # any leading dims
    joints = body64.h36m_joints(stacked)
    assert joints.shape == (1, 3, 17, 3)
    np.testing.assert_allclose(joints[0].numpy(), np.einsum("jv,bvc->bjc", regressor, expected_v), atol=TOL_M)


def test_forward_layouts_hold_the_loaded_arrays(body64: BodyModel, arrays: dict[str, np.ndarray]) -> None:
    """The component-major copies the LBS multiplies with are the file's arrays, index by index (up to
    smplx's float32 rounding of the arrays it loads)."""
    v = 6890
    basis = body64.blend_basis.numpy().reshape(217, 3, v)  # (10 shape + 207 pose, component, vertex)
    close = {"rtol": 1e-6, "atol": 1e-12}
    np.testing.assert_allclose(basis[:10], arrays["shapedirs"].transpose(2, 1, 0), **close)
    np.testing.assert_allclose(basis[10:], arrays["posedirs"].transpose(2, 1, 0), **close)
    np.testing.assert_allclose(body64.template_cm.numpy().reshape(3, v), arrays["v_template"].T, **close)
    np.testing.assert_allclose(body64.lbs_weights_t.numpy(), arrays["weights"].T, **close)
    # the pose blend shapes read back in SMPL's (207, V, 3) order (what the animation export writes)
    np.testing.assert_allclose(body64.pose_blend_shapes().numpy(), arrays["posedirs"].transpose(2, 0, 1), **close)


def test_kinematic_levels_group_joints_by_depth() -> None:
    levels = kinematic_levels(SMPL_PARENTS)
    assert [len(joints) for joints, _ in levels] == [1, 3, 3, 3, 5, 3, 2, 2, 2]  # 24 joints, 9 depths
    assert sorted(j for joints, _ in levels for j in joints) == list(range(24))
    for depth, (joints, slots) in enumerate(levels[1:], start=1):
        for joint, slot in zip(joints, slots):
            assert levels[depth - 1][0][slot] == SMPL_PARENTS[joint]
    assert kinematic_levels((-1, 0, 1, 0)) == (((0,), ()), ((1, 3), (0, 0)), ((2,), (0,)))
    with pytest.raises(ValueError, match="before their children"):
        kinematic_levels((-1, 2, 0))


def test_skin_scales_and_regresses_component_major(body64: BodyModel, arrays: dict[str, np.ndarray],
                                                   smpl_root: Path) -> None:
    pose, betas = _random_pose(3, seed=5)
    rot = torch.from_numpy(Rotation.from_rotvec(pose.reshape(-1, 3)).as_matrix().reshape(3, 24, 3, 3))
    expected_v, expected_j = _numpy_lbs(arrays, rot.numpy(), betas)
    vertices, joints = body64.skin(rot, torch.from_numpy(betas), scale=1000.0)
    assert vertices.shape == (3, 3, 6890)
    np.testing.assert_allclose(vertices.numpy(), 1000.0 * expected_v.transpose(0, 2, 1), atol=1000 * TOL_M, rtol=0)
    np.testing.assert_allclose(joints.numpy(), expected_j, atol=TOL_M, rtol=0)  # joints stay in metres
    regressor = np.load(smpl_root / H36M_REGRESSOR_FILE)
    np.testing.assert_allclose(body64.h36m_joints_cm(vertices).numpy(),
                               1000.0 * np.einsum("jv,bvc->bcj", regressor, expected_v), atol=1000 * TOL_M, rtol=0)


def test_h36m_joints_of_pose_match_the_mesh_regressed(body64: BodyModel, arrays: dict[str, np.ndarray],
                                                      smpl_root: Path) -> None:
    """The joints-only LBS (regressor applied before the skinning) gives the numpy mesh's regressed joints,
    in float64 and, through its own float32 precomputation, in float32."""
    pose, betas = _random_pose(4, seed=7)
    rot = Rotation.from_rotvec(pose.reshape(-1, 3)).as_matrix().reshape(4, 24, 3, 3)
    expected_v, _ = _numpy_lbs(arrays, rot, betas)
    expected = np.einsum("jv,bvc->bjc", np.load(smpl_root / H36M_REGRESSOR_FILE), expected_v)  # (4, 17, 3) m
    joints = body64.h36m_joints_of_pose(torch.from_numpy(rot), torch.from_numpy(betas))
    assert joints.shape == (4, 17, 3)
    np.testing.assert_allclose(joints.numpy(), expected, atol=TOL_M, rtol=0)
    body32 = BodyModel(smpl_root)
    joints32 = body32.h36m_joints_of_pose(torch.from_numpy(rot).float(), torch.from_numpy(betas).float())
    np.testing.assert_allclose(joints32.numpy(), expected, atol=1e-5, rtol=0)  # 0.01 mm


def test_buffers_stay_out_of_checkpoints_and_smplx_stays_quiet(smpl_root: Path, arrays: dict[str, np.ndarray],
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    body = BodyModel(smpl_root)
    smplx_reference(smpl_root)
    captured = capsys.readouterr()
    assert captured.out == ""  # smplx prints its "only 10 shape coefficients" warning to stdout
    assert body.state_dict() == {} and list(body.parameters()) == []
    buffers = dict(body.named_buffers())
    assert {"v_template", "shapedirs", "lbs_weights", "J_template", "J_shapedirs", "J_regressor_h36m",
            "J_regressor_extra", "template_cm", "blend_basis", "lbs_weights_t", "J_regressor_h36m_t"} <= set(buffers)
    assert buffers["blend_basis"].shape == (217, 3 * 6890) and buffers["J_shapedirs"].shape == (24, 3, 10)
    assert all(b.dtype == torch.float32 for b in buffers.values())
    assert body.to(torch.float64).v_template.dtype == torch.float64  # buffers follow .to()
    assert body.parents == SMPL_PARENTS and all(type(p) is int for p in body.parents)
    assert body.faces.shape == (SMPL_NUM_FACES, 3) and body.faces.dtype == np.int64
    np.testing.assert_array_equal(body.faces, arrays["f"])


def test_extra_regressor_is_optional(smpl_root: Path, tmp_path: Path) -> None:
    for name in ("SMPL_NEUTRAL.pkl", H36M_REGRESSOR_FILE):
        (tmp_path / name).symlink_to(smpl_root / name)
    body = BodyModel(tmp_path)
    assert body.J_regressor_extra is None
    assert BodyModel(smpl_root, model_file="SMPL_NEUTRAL_plain.pkl").J_regressor_extra.shape == (9, 6890)


@pytest.mark.filterwarnings("ignore::DeprecationWarning", "ignore::torch.jit.TracerWarning")
def test_onnx_export_with_dynamic_batch(smpl_root: Path, tmp_path: Path) -> None:
    onnxruntime = pytest.importorskip("onnxruntime")
    body = BodyModel(smpl_root)

    class Wrapped(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.body = body

        def forward(self, rot_mat: torch.Tensor, betas: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            out = self.body(rot_mat, betas)
            return out.vertices, self.body.h36m_joints(out.vertices)

    def inputs(batch: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
        pose, betas = _random_pose(batch, seed)
        rot = Rotation.from_rotvec(pose.reshape(-1, 3)).as_matrix().reshape(batch, 24, 3, 3)
        return torch.from_numpy(rot).float(), torch.from_numpy(betas).float()

    path = tmp_path / "smpl.onnx"
    names = ["rot_mat", "betas", "vertices", "keypoints"]
    torch.onnx.export(Wrapped().eval(), inputs(3, 4), str(path), dynamo=False, opset_version=17,
                      input_names=names[:2], output_names=names[2:], dynamic_axes={k: {0: "batch"} for k in names})
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = 2
    session = onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    for batch in (1, 5):
        rot, betas = inputs(batch, seed=10 + batch)
        vertices, keypoints = session.run(None, {"rot_mat": rot.numpy(), "betas": betas.numpy()})
        with torch.no_grad():
            expected = Wrapped()(rot, betas)
        assert vertices.shape == (batch, 6890, 3)
        np.testing.assert_allclose(vertices, expected[0].numpy(), atol=1e-5, rtol=0)
        np.testing.assert_allclose(keypoints, expected[1].numpy(), atol=1e-5, rtol=0)

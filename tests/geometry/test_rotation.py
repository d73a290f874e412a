"""Rotation maths against scipy, at generic angles and at the hard ones (0 and pi)."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch
from scipy.spatial.transform import Rotation

from lib.geometry.rotation import (
    axis_angle_to_matrix,
    matrix_to_axis_angle,
    matrix_to_euler_zxy,
    matrix_to_quaternion,
    matrix_to_rot6d,
    project_to_so3,
    project_to_so3_numpy,
    rot6d_to_matrix,
    slerp_matrix,
)

TOL = 1e-12


def _random_axes(n: int, rng: np.random.Generator) -> np.ndarray:
    axes = rng.normal(size=(n, 3))
    return axes / np.linalg.norm(axes, axis=-1, keepdims=True)


def _aa_generic(rng: np.random.Generator) -> np.ndarray:
    """(200, 3) axis-angles with angles spread over [0, pi)."""
    return _random_axes(200, rng) * rng.uniform(0.0, np.pi - 1e-3, size=(200, 1))


def _aa_near_zero(rng: np.random.Generator) -> np.ndarray:
    return _random_axes(50, rng) * np.logspace(-8, -4, 50)[:, None]


def _aa_near_pi(rng: np.random.Generator) -> np.ndarray:
    return _random_axes(50, rng) * (np.pi - np.logspace(-6, -2, 50))[:, None]


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(0)


@pytest.mark.parametrize("sampler", [_aa_generic, _aa_near_zero, _aa_near_pi])
def test_axis_angle_to_matrix_matches_scipy(rng, sampler):
    aa = sampler(rng)
    ours = axis_angle_to_matrix(torch.from_numpy(aa)).numpy()
    np.testing.assert_allclose(ours, Rotation.from_rotvec(aa).as_matrix(), atol=TOL)


def test_axis_angle_to_matrix_batched_leading_dims(rng):
    aa = rng.normal(size=(2, 3, 4, 3))
    ours = axis_angle_to_matrix(torch.from_numpy(aa)).numpy()
    ref = Rotation.from_rotvec(aa.reshape(-1, 3)).as_matrix().reshape(2, 3, 4, 3, 3)
    np.testing.assert_allclose(ours, ref, atol=TOL)
    assert axis_angle_to_matrix(torch.zeros(3, dtype=torch.float64)).numpy() == pytest.approx(np.eye(3))


@pytest.mark.parametrize("sampler", [_aa_generic, _aa_near_zero, _aa_near_pi])
def test_matrix_to_axis_angle_matches_scipy(rng, sampler):
    aa = sampler(rng)
    mats = Rotation.from_rotvec(aa).as_matrix()
    ours = matrix_to_axis_angle(torch.from_numpy(mats)).numpy()
    # Below pi the axis-angle is unique, so it must come back exactly (scipy agrees).
    np.testing.assert_allclose(ours, aa, atol=1e-9)
    np.testing.assert_allclose(ours, Rotation.from_matrix(mats).as_rotvec(), atol=1e-9)


def test_matrix_to_axis_angle_at_pi_gives_same_rotation(rng):
    aa = _random_axes(20, rng) * np.pi
    mats = torch.from_numpy(Rotation.from_rotvec(aa).as_matrix())
    back = matrix_to_axis_angle(mats)
    angle = back.norm(dim=-1).numpy()
    np.testing.assert_allclose(angle, np.pi, atol=1e-7)
    # +axis and -axis are the same rotation at pi: compare matrices, not vectors.
    np.testing.assert_allclose(axis_angle_to_matrix(back).numpy(), mats.numpy(), atol=1e-9)


def test_matrix_to_axis_angle_angle_in_zero_pi(rng):
    mats = Rotation.random(500, random_state=1).as_matrix()
    angle = matrix_to_axis_angle(torch.from_numpy(mats)).norm(dim=-1).numpy()
    assert angle.min() >= 0.0 and angle.max() <= np.pi + 1e-12
    np.testing.assert_allclose(angle, Rotation.from_matrix(mats).magnitude(), atol=1e-9)


def test_rot6d_round_trip_is_exact(rng):
    mats = torch.from_numpy(Rotation.random(100, random_state=2).as_matrix())
    d6 = matrix_to_rot6d(mats)
    expected = np.concatenate([mats.numpy()[:, :, 0], mats.numpy()[:, :, 1]], axis=-1)  # first two columns
    np.testing.assert_array_equal(d6.numpy(), expected)
    np.testing.assert_allclose(rot6d_to_matrix(d6).numpy(), mats.numpy(), atol=TOL)


def test_rot6d_decode_of_arbitrary_input_is_a_rotation(rng):
    d6 = torch.from_numpy(rng.normal(size=(7, 5, 6)) * 3.0)
    mats = rot6d_to_matrix(d6).numpy()
    np.testing.assert_allclose(np.linalg.det(mats), 1.0, atol=TOL)
    np.testing.assert_allclose(np.swapaxes(mats, -1, -2) @ mats, np.broadcast_to(np.eye(3), mats.shape), atol=TOL)
    # Gram-Schmidt: the first column is the normalised first input column.
    a1 = d6.numpy()[..., :3]
    np.testing.assert_allclose(mats[..., :, 0], a1 / np.linalg.norm(a1, axis=-1, keepdims=True), atol=TOL)


def test_project_to_so3_is_nearest_rotation_and_fixes_reflections(rng):
    rots = Rotation.random(30, random_state=3).as_matrix()
    noisy = rots + 0.01 * rng.normal(size=rots.shape)
    projected = project_to_so3(torch.from_numpy(noisy)).numpy()
    np.testing.assert_allclose(np.linalg.det(projected), 1.0, atol=TOL)
    # Independent check: scipy's nearest rotation via Kabsch on the basis vectors (align_vectors).
    for m, p in zip(noisy, projected):
        ref, _ = Rotation.align_vectors(m.T, np.eye(3))
        np.testing.assert_allclose(p, ref.as_matrix(), atol=1e-9)
    reflection = np.diag([1.0, 1.0, -1.0])
    fixed = project_to_so3(torch.from_numpy(reflection)).numpy()
    assert np.linalg.det(fixed) == pytest.approx(1.0)


def test_project_to_so3_averages_rotations():
    # The mean of rotations by +a and -a about z projects back to the identity.
    pair = torch.from_numpy(Rotation.from_rotvec([[0, 0, 0.4], [0, 0, -0.4]]).as_matrix())
    np.testing.assert_allclose(project_to_so3(pair.mean(0)).numpy(), np.eye(3), atol=TOL)


@pytest.mark.parametrize("angle", [0.0, 1e-8, 1e-4, np.pi - 1e-6, np.pi - 1e-3])
def test_gradients_are_finite_and_correct(angle):
    axis = torch.tensor([0.3, -0.5, 0.8], dtype=torch.float64)
    aa = (axis / axis.norm() * angle).requires_grad_(True)
    mats = axis_angle_to_matrix(aa)
    back = matrix_to_axis_angle(mats)
    jac = torch.stack([torch.autograd.grad(back[i], aa, retain_graph=True)[0] for i in range(3)])
    assert torch.isfinite(jac).all()
    # aa -> R -> aa is the identity below pi, so its Jacobian is I.
    np.testing.assert_allclose(jac.numpy(), np.eye(3), atol=1e-5)
    # dR/d(aa) at 0 is the skew generator: dR/da_x = [e_x]_x.
    if angle == 0.0:
        d_r = torch.autograd.grad(mats[2, 1], aa, retain_graph=True)[0]
        np.testing.assert_allclose(d_r.numpy(), [1.0, 0.0, 0.0], atol=TOL)


def test_gradients_finite_through_6d_and_matrix_to_axis_angle_at_identity():
    d6 = torch.tensor([1.0, 0, 0, 0, 1, 0], dtype=torch.float64, requires_grad=True)
    aa = matrix_to_axis_angle(rot6d_to_matrix(d6))
    (grad,) = torch.autograd.grad(aa.sum(), d6)
    assert torch.isfinite(grad).all()
    d6_zero = torch.zeros(6, dtype=torch.float64, requires_grad=True)
    (grad_zero,) = torch.autograd.grad(rot6d_to_matrix(d6_zero).sum(), d6_zero)
    assert torch.isfinite(grad_zero).all()


class _Decoders(torch.nn.Module):
    def forward(self, aa: torch.Tensor, d6: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return axis_angle_to_matrix(aa), rot6d_to_matrix(d6)


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # the TorchScript exporter is what deployment uses
def test_onnx_export_matches_onnxruntime(rng):
    ort = pytest.importorskip("onnxruntime")
    aa = np.concatenate([_aa_generic(rng), _aa_near_zero(rng), np.zeros((2, 3))]).astype(np.float32)
    aa = aa.reshape(1, -1, 3)
    d6 = rng.normal(size=(1, aa.shape[1], 6)).astype(np.float32)
    buf = io.BytesIO()
    torch.onnx.export(_Decoders(), (torch.from_numpy(aa), torch.from_numpy(d6)), buf, dynamo=False,
                      opset_version=17, input_names=["aa", "d6"], output_names=["rot_aa", "rot_d6"],
                      dynamic_axes={"aa": {0: "n", 1: "j"}, "d6": {0: "n", 1: "j"}})
    session = ort.InferenceSession(buf.getvalue(), providers=["CPUExecutionProvider"])
    # A different batch shape than the traced one: nothing was baked in.
    aa2, d62 = aa.reshape(3, -1, 3), d6.reshape(3, -1, 6)
    got_aa, got_d6 = session.run(None, {"aa": aa2, "d6": d62})
    want_aa, want_d6 = _Decoders()(torch.from_numpy(aa2), torch.from_numpy(d62))
    np.testing.assert_allclose(got_aa, want_aa.numpy(), atol=1e-6)
    np.testing.assert_allclose(got_d6, want_d6.numpy(), atol=1e-6)


def test_camera_roll_matches_scipy_and_the_pinhole_projection() -> None:
    from lib.geometry.rotation import roll_keypoints_2d, roll_smpl_axis_angle

    rng = np.random.default_rng(3)
    pose = rng.normal(scale=0.4, size=(5, 72))
    pose[:, :3] = _random_axes(5, rng) * 3.0  # global orientations near pi, as upright people in camera frames
    angle = 0.4
    rolled = roll_smpl_axis_angle(torch.from_numpy(pose), angle).numpy()
    roll = Rotation.from_euler("z", angle)
    expected_root = (roll * Rotation.from_rotvec(pose[:, :3])).as_matrix()
    np.testing.assert_allclose(Rotation.from_rotvec(rolled[:, :3]).as_matrix(), expected_root, atol=1e-10)
    np.testing.assert_array_equal(rolled[:, 3:], pose[:, 3:])  # body joints are relative to their parents
    # a camera point rotated by the same roll projects to the image point rolled about the principal point
    points = np.c_[rng.uniform(-1, 1, (20, 2)), rng.uniform(3, 6, 20)]  # (20, 3) m, camera frame
    focal, principal = 1200.0, np.array([960.0, 540.0])
    uv = focal * points[:, :2] / points[:, 2:] + principal
    uv_rolled_3d = focal * roll.apply(points)[:, :2] / points[:, 2:] + principal
    kp = torch.from_numpy(np.c_[(uv - principal) / 960.0, np.full(20, 0.7)])  # centred on the principal point
    kp_rolled = roll_keypoints_2d(kp, angle).numpy()
    np.testing.assert_allclose(kp_rolled[:, :2] * 960.0 + principal, uv_rolled_3d, atol=1e-9)
    assert np.all(kp_rolled[:, 2] == 0.7)  # the confidence is not a coordinate


def test_slerp_matrix_matches_scipy_slerp(rng) -> None:
    from scipy.spatial.transform import Slerp

    start = Rotation.from_rotvec(_aa_generic(rng))
    end = Rotation.from_rotvec(_aa_generic(rng))
    t = rng.uniform(0.0, 1.0, size=200)
    expected = np.stack([Slerp([0.0, 1.0], Rotation.concatenate([a, b]))(ti).as_matrix()
                         for a, b, ti in zip(start, end, t)])
    got = slerp_matrix(torch.from_numpy(start.as_matrix()), torch.from_numpy(end.as_matrix()), torch.from_numpy(t))
    np.testing.assert_allclose(got.numpy(), expected, atol=1e-10)
    ends = slerp_matrix(torch.from_numpy(start.as_matrix()), torch.from_numpy(end.as_matrix()),
                        torch.tensor([0.0, 1.0], dtype=torch.float64).repeat(100))
    np.testing.assert_allclose(ends[0::2].numpy(), start.as_matrix()[0::2], atol=1e-12)
    np.testing.assert_allclose(ends[1::2].numpy(), end.as_matrix()[1::2], atol=1e-10)


@pytest.mark.parametrize("sampler", [_aa_generic, _aa_near_zero, _aa_near_pi])
def test_matrix_to_quaternion_matches_scipy(rng, sampler) -> None:
    mats = Rotation.from_rotvec(sampler(rng)).as_matrix()
    wxyz = matrix_to_quaternion(torch.from_numpy(mats)).numpy()
    xyzw = Rotation.from_matrix(mats).as_quat()  # scipy: (x, y, z, w), either sign
    xyzw *= np.sign(xyzw[:, 3:])  # ours has w >= 0
    np.testing.assert_allclose(np.c_[wxyz[:, 1:], wxyz[:, :1]], xyzw, atol=1e-9)
    assert np.all(wxyz[:, 0] >= 0)


def test_matrix_to_euler_zxy_matches_scipy_and_survives_gimbal_lock(rng) -> None:
    rotations = Rotation.from_rotvec(_aa_generic(rng))
    angles = matrix_to_euler_zxy(torch.from_numpy(rotations.as_matrix())).numpy()
    np.testing.assert_allclose(angles, rotations.as_euler("ZXY"), atol=1e-9)  # scipy: intrinsic = Rz @ Rx @ Ry
    assert np.all(np.abs(angles[:, 1]) <= np.pi / 2)
    locked = Rotation.from_euler("ZXY", [[0.3, np.pi / 2, 0.2], [-1.0, -np.pi / 2, 2.5]])
    back = matrix_to_euler_zxy(torch.from_numpy(locked.as_matrix())).numpy()
    np.testing.assert_allclose(Rotation.from_euler("ZXY", back).as_matrix(), locked.as_matrix(), atol=1e-9)
    assert np.all(back[:, 2] == 0.0)  # only z +- y is defined there; y = 0 by convention


def test_the_numpy_projection_is_project_to_so3(rng: np.random.Generator) -> None:
    mats = rng.normal(size=(50, 3, 3))  # about half with det < 0: the reflection fix is exercised
    assert (np.linalg.det(mats) < 0).sum() > 10
    got = project_to_so3_numpy(mats)
    np.testing.assert_allclose(got, project_to_so3(torch.from_numpy(mats)).numpy(), atol=1e-12)
    np.testing.assert_allclose(got @ np.swapaxes(got, -1, -2), np.broadcast_to(np.eye(3), got.shape), atol=1e-12)
    np.testing.assert_allclose(np.linalg.det(got), 1.0, atol=1e-12)
    rot = Rotation.random(5, random_state=1).as_matrix()  # a rotation is its own projection
    np.testing.assert_allclose(project_to_so3_numpy(rot), rot, atol=1e-12)


def test_turn_smpl_axis_angle_turns_only_the_global_orientation() -> None:
    from lib.geometry.rotation import turn_smpl_axis_angle

    rng = np.random.default_rng(2)
    pose = rng.normal(0.0, 0.4, (5, 72)).astype(np.float32)
    rot = Rotation.from_euler("YX", [-0.4, 0.2]).as_matrix()  # a camera orbit: pitch 0.2, yaw -0.4
    out = turn_smpl_axis_angle(torch.from_numpy(pose), torch.from_numpy(rot)).numpy()
    np.testing.assert_array_equal(out[:, 3:], pose[:, 3:])
    expected = rot @ Rotation.from_rotvec(pose[:, :3]).as_matrix()  # (5, 3, 3)
    np.testing.assert_allclose(Rotation.from_rotvec(out[:, :3]).as_matrix(), expected, atol=1e-5)

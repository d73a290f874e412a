"""The exportable twist-and-swing IK against independent numpy / scipy computations.

* Kabsch by Horn's method == the SVD solution with HybrIK's determinant fix;
* the full IK == a loop-per-joint numpy re-implementation of HybrIK's algorithm (SVD pelvis, 15 mm rule);
* round trip: SMPL joints of known poses plus their true twist angles give the poses back.

The reference and round-trip cases run twice: through ``hybrik_ik`` and through the public inverse pass
``HybrIKSMPL.hybrik(pose_skeleton, betas, phis)`` (HybrIK's ``smpl.hybrik``, its documented signature),
whose joints, mesh and H36M joints are checked against numpy forward kinematics and LBS as well.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.spatial.transform import Rotation

from lib.body.joint_names import SMPL_PARENTS
from lib.body.smpl import BodyModel, load_smpl_arrays
from lib.hybrik.ik import forward_kinematics, hybrik_ik, kabsch_rotation, swing_rotation
from lib.hybrik.smpl_layer import HybrIKSMPL, rest_skeleton

# Independent copies of HybrIK's tree (SMPL.py): leaves 24..28 hang from 15, 22, 23, 10, 11.
PARENTS_29 = SMPL_PARENTS + (15, 22, 23, 10, 11)
CHILD = {p: min(c for c, q in enumerate(PARENTS_29) if q == p) for p in range(1, 24)}
ROUND_TRIP_TOL_RAD = 1e-4
TWIST_AXIS_FLOOR = 1e-300
ENTRIES = ("hybrik_ik", "public")  # the low-level IK, and HybrIKSMPL.hybrik


def kabsch_svd(rest: np.ndarray, target: np.ndarray) -> np.ndarray:
    """HybrIK's batch_get_pelvis_orient_svd maths: S = rest^T target, R = V diag(1, 1, det(V U^T)) U^T."""
    s = np.einsum("bki,bkj->bij", rest, target)
    u, _, vt = np.linalg.svd(s)
    v = vt.transpose(0, 2, 1)
    fix = np.tile(np.eye(3), (len(s), 1, 1))
    fix[:, 2, 2] = np.linalg.det(v @ u.transpose(0, 2, 1))
    return v @ fix @ u.transpose(0, 2, 1)


def reference_ik(joints: np.ndarray, phis: np.ndarray, rest: np.ndarray) -> tuple[np.ndarray, int]:
    """HybrIK's naive=False IK, one sample and one joint at a time (numpy + scipy, float64).

    Returns:
        rotations (B, 24, 3, 3) and how many (sample, joint) pairs took the rescaled predicted bone.
    """
    batch = len(joints)
    rel_rest = rest.copy()
    rel_rest[:, 1:] -= rest[:, list(PARENTS_29[1:])]
    rel_pred = joints.copy()
    rel_pred[:, 1:] -= joints[:, list(PARENTS_29[1:])]
    final = joints - joints[:, :1] + rest[:, :1]
    phis = phis / (np.linalg.norm(phis, axis=-1, keepdims=True) + 1e-8)
    out = np.zeros((batch, 24, 3, 3))
    replaced = 0
    for b in range(batch):
        kids = [3, 1, 2]
        chain = {0: kabsch_svd(rel_rest[b, kids][None], rel_pred[b, kids][None])[0]}
        posed = {0: rest[b, 0]}
        out[b, 0] = chain[0]
        for j in range(1, 24):
            p, c = PARENTS_29[j], CHILD[j]
            posed[j] = posed[p] + chain[p] @ rel_rest[b, j]
            target = final[b, c] - posed[j]
            rescaled = rel_pred[b, c] * np.linalg.norm(rel_rest[b, c]) / np.linalg.norm(rel_pred[b, c])
            if np.linalg.norm(target - rescaled) > 0.015:
                target = rescaled
                replaced += 1
            local = chain[p].T @ target
            bone = rel_rest[b, c]
            axis = np.cross(bone, local)
            angle = np.arctan2(np.linalg.norm(axis), bone @ local)
            swing = Rotation.from_rotvec(axis / np.linalg.norm(axis) * angle).as_matrix()
            twist = Rotation.from_rotvec(bone / np.linalg.norm(bone) * np.arctan2(phis[b, j - 1, 1], phis[b, j - 1, 0]))
            out[b, j] = swing @ twist.as_matrix()
            chain[j] = chain[p] @ out[b, j]
    return out, replaced


def fk_29(rot: np.ndarray, rest: np.ndarray) -> np.ndarray:
    """Rigid forward kinematics of the 29-joint tree (leaves move with their parent), numpy."""
    world = np.zeros(rot.shape[:1] + (29, 3, 3))
    pos = np.zeros(rot.shape[:1] + (29, 3))
    world[:, 0], pos[:, 0] = rot[:, 0], rest[:, 0]
    for j in range(1, 29):
        p = PARENTS_29[j]
        pos[:, j] = pos[:, p] + np.einsum("bij,bj->bi", world[:, p], rest[:, j] - rest[:, p])
        world[:, j] = world[:, p] @ rot[:, j] if j < 24 else world[:, p]
    return pos


def true_twist(rot: np.ndarray, rest: np.ndarray) -> np.ndarray:
    """Swing-twist decomposition R = swing(bone -> R bone) @ twist(bone, phi); phi as (cos, sin). (B, 23, 2)."""
    phis = np.tile([1.0, 0.0], rot.shape[:1] + (23, 1))
    for j in range(1, 24):
        bone = rest[:, CHILD[j]] - rest[:, j]
        if np.linalg.norm(bone, axis=-1).min() == 0:
            continue  # no bone, no twist axis: leave (1, 0)
        bone = bone / np.linalg.norm(bone, axis=-1, keepdims=True)
        moved = np.einsum("bij,bj->bi", rot[:, j], bone)
        axis = np.cross(bone, moved)
        sin = np.linalg.norm(axis, axis=-1)
        angle = np.arctan2(sin, (bone * moved).sum(-1))
        swing = Rotation.from_rotvec(axis / np.maximum(sin, TWIST_AXIS_FLOOR)[:, None] * angle[:, None]).as_matrix()
        twist = Rotation.from_matrix(np.einsum("bji,bjk->bik", swing, rot[:, j])).as_rotvec()
        phi = (twist * bone).sum(-1)
        phis[:, j - 1] = np.stack([np.cos(phi), np.sin(phi)], axis=-1)
    return phis


def angle_error(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Geodesic angle (rad) between rotation matrices (..., 3, 3)."""
    rel = np.einsum("...ji,...jk->...ik", a, b).reshape(-1, 3, 3)
    return np.linalg.norm(Rotation.from_matrix(rel).as_rotvec(), axis=-1).reshape(a.shape[:-2])


def numpy_lbs(arrays: dict[str, np.ndarray], rot: np.ndarray, betas: np.ndarray) -> np.ndarray:
    """SMPL vertices (B, 6890, 3) m from the published equations in numpy (root joint at its rest position)."""
    v_shaped = arrays["v_template"] + np.einsum("vcl,bl->bvc", arrays["shapedirs"], betas)
    rest = np.einsum("jv,bvc->bjc", arrays["J_regressor"], v_shaped)
    pose_feature = (rot[:, 1:] - np.eye(3)).reshape(len(rot), -1)
    v_posed = v_shaped + np.einsum("vck,bk->bvc", arrays["posedirs"], pose_feature)
    world = np.zeros_like(rot)
    pos = np.zeros_like(rest)
    world[:, 0], pos[:, 0] = rot[:, 0], rest[:, 0]
    for j in range(1, 24):
        p = SMPL_PARENTS[j]
        world[:, j] = world[:, p] @ rot[:, j]
        pos[:, j] = pos[:, p] + np.einsum("bij,bj->bi", world[:, p], rest[:, j] - rest[:, p])
    shift = pos - np.einsum("bjik,bjk->bji", world, rest)  # x -> R_j x + shift_j
    transform = np.einsum("vj,bjik->bvik", arrays["weights"], world)
    return np.einsum("bvik,bvk->bvi", transform, v_posed) + np.einsum("vj,bji->bvi", arrays["weights"], shift)


def solve(entry: str, smpl: HybrIKSMPL, joints: np.ndarray, phis: np.ndarray, rest: np.ndarray,
          betas: np.ndarray, naive: bool = False) -> np.ndarray:
    """(B, 24, 3, 3) rotations from the low-level IK or from the public inverse pass (float32 inputs)."""
    j, p = torch.from_numpy(joints).float(), torch.from_numpy(phis).float()
    if entry == "hybrik_ik":
        return hybrik_ik(j, p, torch.from_numpy(rest).float(), naive=naive).double().numpy()
    with torch.no_grad():
        out = smpl.hybrik(j.reshape(len(j), 87), torch.from_numpy(betas).float(), p, naive=naive)  # (B, 87) as HybrIK
    assert np.abs(smpl.rest_skeleton(torch.from_numpy(betas).float()).double().numpy() - rest).max() < 1e-5
    return out.rot_mats.double().numpy()


def test_kabsch_equals_svd_reference() -> None:
    rng = np.random.default_rng(0)
    rest, target = rng.normal(size=(500, 3, 3)), rng.normal(size=(500, 3, 3))
    reference = kabsch_svd(rest, target)
    got64 = kabsch_rotation(torch.from_numpy(rest), torch.from_numpy(target)).numpy()
    got32 = kabsch_rotation(torch.from_numpy(rest).float(), torch.from_numpy(target).float()).double().numpy()
    assert np.abs(got64 - reference).max() < 1e-10
    assert np.abs(got32 - reference).max() < 5e-5
    assert np.allclose(np.linalg.det(got32), 1.0, atol=1e-5)  # proper rotations even when det(S) < 0


def test_kabsch_recovers_rotation_and_falls_back_per_sample() -> None:
    rng = np.random.default_rng(1)
    true = Rotation.random(4, random_state=2).as_matrix()
    rest = rng.normal(size=(4, 3, 3))
    target = np.einsum("bij,bkj->bki", true, rest)
    target[2] = 0.0  # no evidence for sample 2 only
    got = kabsch_rotation(torch.from_numpy(rest).float(), torch.from_numpy(target).float()).double().numpy()
    assert np.isfinite(got).all()
    assert np.allclose(got[2], np.eye(3))
    keep = [0, 1, 3]
    assert angle_error(got[keep], true[keep]).max() < 1e-5


def test_swing_rotation_edge_cases() -> None:
    rest = torch.tensor([[0.0, -1.0, 0.0], [0.0, -1.0, 0.0], [0.0, -0.2, 0.0], [0.0, 0.0, 0.0]], dtype=torch.float64)
    target = torch.tensor([[0.0, -3.0, 0.0], [0.0, 2.0, 0.0], [1.0, 0.0, 0.0], [1.0, 0.0, 0.0]], dtype=torch.float64)
    rot = swing_rotation(rest, target).numpy()
    assert np.allclose(rot[0], np.eye(3))                       # parallel: identity
    assert np.allclose(rot[1] @ [0, -1, 0], [0, 1, 0])          # opposite: a half turn
    assert np.allclose(rot[1] @ rot[1].T, np.eye(3)) and np.isclose(np.linalg.det(rot[1]), 1.0)
    assert np.allclose(rot[2] @ [0, -1, 0], [1, 0, 0])          # 90 deg
    assert np.allclose(rot[3], np.eye(3))                       # zero-length rest bone: identity, no NaN


def _random_skeletons(body: BodyModel, batch: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    betas = rng.normal(size=(batch, 10)).astype(np.float32)
    rest = rest_skeleton(body, torch.from_numpy(betas)).double().numpy()
    rot = Rotation.from_rotvec(rng.normal(size=(batch * 24, 3)) * 0.4).as_matrix().reshape(batch, 24, 3, 3)
    return betas, rest, rot


@pytest.mark.parametrize("entry", ENTRIES)
def test_ik_equals_loop_reference_with_svd(body: BodyModel, hybrik_smpl: HybrIKSMPL, entry: str) -> None:
    """Inconsistent bone lengths (noise 1..40 mm per joint) exercise both sides of the 15 mm rule."""
    betas, rest, rot = _random_skeletons(body, 24, seed=3)
    rng = np.random.default_rng(4)
    noise = rng.normal(size=(24, 29, 3)) * np.linspace(0.001, 0.04, 24)[:, None, None]
    joints = fk_29(rot, rest) + noise
    joints -= joints[:, :1]
    phis = rng.normal(size=(24, 23, 2))
    expected, replaced = reference_ik(joints, phis, rest)
    assert 0 < replaced < 24 * 23  # both branches of the rule were taken
    if entry == "hybrik_ik":
        got = hybrik_ik(torch.from_numpy(joints), torch.from_numpy(phis), torch.from_numpy(rest)).numpy()
        assert np.abs(got - expected).max() < 1e-8
    got32 = solve(entry, hybrik_smpl, joints, phis, rest, betas)
    assert np.abs(got32 - expected).max() < 1e-3  # float32; the 15 mm decision may not flip for these inputs
    naive = solve(entry, hybrik_smpl, joints, phis, rest, betas, naive=True)
    low_level = hybrik_ik(*(torch.from_numpy(a).float() for a in (joints, phis, rest)), naive=True).double().numpy()
    assert np.abs(naive - low_level).max() < 1e-6 and np.abs(naive - expected).max() > 1e-2  # the other path


def _round_trip(body: BodyModel, betas: np.ndarray, rest: np.ndarray, rot: np.ndarray, naive: bool,
                entry: str = "hybrik_ik", smpl: HybrIKSMPL | None = None) -> float:
    joints = fk_29(rot, rest)
    smpl_joints = body(torch.from_numpy(rot).float(), torch.from_numpy(betas)).joints.double().numpy()
    assert np.abs(smpl_joints - joints[:, :24]).max() < 1e-5  # the test's FK is SMPL's
    phis = true_twist(rot, rest)
    got = solve(entry, smpl, joints - joints[:, :1], phis, rest, betas, naive=naive)
    err = angle_error(got, rot)
    assert err.max() < ROUND_TRIP_TOL_RAD, f"max {err.max():.2e} rad at {np.unravel_index(err.argmax(), err.shape)}"
    verts_true = body(torch.from_numpy(rot).float(), torch.from_numpy(betas)).vertices
    verts_ik = body(torch.from_numpy(got).float(), torch.from_numpy(betas)).vertices
    assert (verts_true - verts_ik).abs().max() < 1e-4  # m
    return float(err.max())


@pytest.mark.parametrize("entry", ENTRIES)
@pytest.mark.parametrize("naive", [False, True])
def test_round_trip_random_poses(body: BodyModel, hybrik_smpl: HybrIKSMPL, naive: bool, entry: str) -> None:
    betas, rest, rot = _random_skeletons(body, 32, seed=5)
    _round_trip(body, betas, rest, rot, naive, entry, hybrik_smpl)


@pytest.mark.parametrize("entry", ENTRIES)
def test_round_trip_near_singular_poses(body: BodyModel, hybrik_smpl: HybrIKSMPL, entry: str) -> None:
    """Straight limbs (exactly and within 1e-6 rad), elbows / knees / spine bent to 3 rad, twists near pi."""
    betas, rest, _ = _random_skeletons(body, 12, seed=6)
    rng = np.random.default_rng(7)
    aa = np.zeros((12, 24, 3))
    aa[1] = rng.normal(size=(24, 3)) * 1e-6
    aa[2] = rng.normal(size=(24, 3)) * 1e-3
    aa[3, [4, 5, 18, 19], 0] = 3.0          # knees and elbows folded almost back on the bone
    aa[4, [18, 19], 1] = 3.0
    aa[5, [3, 6, 9], 0] = 1.5
    for sample in (6, 7):                    # twist of pi - 1e-4 about each joint's own bone
        for j in range(1, 24):
            bone = rest[sample, CHILD[j]] - rest[sample, j]
            aa[sample, j] = bone / np.linalg.norm(bone) * (np.pi - 1e-4) * (1 if sample == 6 else -1)
    aa[8:] = rng.normal(size=(4, 24, 3)) * 1.0
    aa[8:, 0] = rng.normal(size=(4, 3)) * 2.0  # any global orientation
    rot = Rotation.from_rotvec(aa.reshape(-1, 3)).as_matrix().reshape(12, 24, 3, 3)
    _round_trip(body, betas, rest, rot, naive=False, entry=entry, smpl=hybrik_smpl)


@pytest.mark.parametrize("with_transl", [False, True])
def test_public_inverse_pass_outputs(body: BodyModel, hybrik_smpl: HybrIKSMPL, hybrik_model_files,
                                     with_transl: bool) -> None:
    """Joints, mesh and H36M joints of HybrIKSMPL.hybrik against numpy FK / LBS / HybrIK's regressor, in
    HybrIK's frames: centred on the SMPL root / H36M pelvis without transl, raw SMPL + transl with it."""
    betas, rest, rot = _random_skeletons(body, 6, seed=11)
    joints = fk_29(rot, rest)
    transl = np.random.default_rng(12).normal(size=(6, 3)) + [0, 0, 4]
    with torch.no_grad():
        out = hybrik_smpl.hybrik(torch.from_numpy(joints - joints[:, :1]).float(), torch.from_numpy(betas),
                                 torch.from_numpy(true_twist(rot, rest)).float(),
                                 transl=torch.from_numpy(transl).float() if with_transl else None)
    arrays = load_smpl_arrays(hybrik_model_files)  # basicModel_neutral_lbs_10_207_0_v1.0.0.pkl
    regressor = np.load(hybrik_model_files / "J_regressor_h36m.npy")
    verts = numpy_lbs(arrays, rot, betas.astype(np.float64))
    h36m = np.einsum("jv,bvc->bjc", regressor, verts)
    smpl_joints = joints[:, :24]
    if with_transl:
        verts, h36m, smpl_joints = (a + transl[:, None] for a in (verts, h36m, smpl_joints))
    else:
        verts, h36m, smpl_joints = verts - h36m[:, :1], h36m - h36m[:, :1], smpl_joints - smpl_joints[:, :1]
    assert out.rot_mats.shape == (6, 24, 3, 3) and angle_error(out.rot_mats.double().numpy(), rot).max() < 1e-4
    assert np.abs(out.joints.double().numpy() - smpl_joints).max() < 1e-5  # m
    assert np.abs(out.vertices.double().numpy() - verts).max() < 1e-4  # m
    assert np.abs(out.joints_from_verts.double().numpy() - h36m).max() < 1e-4  # m


def test_zero_length_rest_bone_gives_no_nan(body: BodyModel) -> None:
    """HybrIK's defect 3: a model whose hand joints sit on the wrists (bones 20->22, 21->23 of zero length)."""
    betas, rest, rot = _random_skeletons(body, 4, seed=8)
    rest[:, 22], rest[:, 23] = rest[:, 20], rest[:, 21]
    joints = fk_29(rot, rest)
    phis = true_twist(rot, rest)  # the wrists' twist is undefined without a bone: (1, 0)
    got = hybrik_ik(*(torch.from_numpy(a).float() for a in (joints - joints[:, :1], phis, rest))).double().numpy()
    assert np.isfinite(got).all()
    assert np.allclose(got[:, 20], np.eye(3), atol=1e-6) and np.allclose(got[:, 21], np.eye(3), atol=1e-6)
    others = [j for j in range(24) if j not in (20, 21, 22, 23)]
    assert angle_error(got[:, others], rot[:, others]).max() < ROUND_TRIP_TOL_RAD
    assert np.abs(fk_29(got, rest) - joints).max() < 1e-5  # every joint, fingertips included, still reached


def test_batched_equals_one_by_one_and_is_differentiable(body: BodyModel) -> None:
    _, rest, rot = _random_skeletons(body, 3, seed=9)
    joints = torch.from_numpy(fk_29(rot, rest) + np.random.default_rng(1).normal(size=(3, 29, 3)) * 0.01).float()
    joints = (joints - joints[:, :1]).requires_grad_(True)
    phis = torch.randn(3, 23, 2, requires_grad=True)
    rest_t = torch.from_numpy(rest).float()
    together = hybrik_ik(joints, phis, rest_t)
    alone = torch.cat([hybrik_ik(joints[i:i + 1], phis[i:i + 1], rest_t[i:i + 1]) for i in range(3)])
    assert torch.allclose(together, alone, atol=1e-6)
    (together * torch.randn_like(together)).sum().backward()
    assert torch.isfinite(joints.grad).all() and joints.grad.abs().sum() > 0
    assert torch.isfinite(phis.grad).all() and phis.grad.abs().sum() > 0


def test_forward_kinematics_matches_smpl_joints(body: BodyModel) -> None:
    betas, rest, rot = _random_skeletons(body, 2, seed=10)
    got = forward_kinematics(torch.from_numpy(rot).float(), torch.from_numpy(rest[:, :24]).float())
    expected = body(torch.from_numpy(rot).float(), torch.from_numpy(betas)).joints
    assert (got - expected).abs().max() < 1e-5

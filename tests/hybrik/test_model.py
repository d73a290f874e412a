"""HybrIKCam: soft-argmax, flip test, camera and outputs, against hand-worked numbers and numpy."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from lib.body.smpl import BodyModel, load_smpl_arrays
from lib.errors import AssetError
from lib.hybrik.ik import hybrik_ik
from lib.hybrik.model import (
    OUTPUT_KEYS,
    HybrIKCam,
    back_project,
    bbox_offset,
    camera_depth,
    fit_camera_scale,
    flip_heatmap_logits,
    flip_twist,
    heatmap_softmax,
    build_hybrik,
    load_mean_beta,
    soft_argmax_3d,
)
from lib.hybrik.smpl_layer import rest_skeleton

PAIRS_29 = ((1, 2), (4, 5), (7, 8), (10, 11), (13, 14), (16, 17), (18, 19), (20, 21), (22, 23), (25, 26), (27, 28))
PAIRS_TWIST = tuple((a - 1, b - 1) for a, b in PAIRS_29[:9])


def test_soft_argmax_hand_worked() -> None:
    heat = torch.zeros(1, 3, 8, 10, 12)  # (B, J, D, H, W)
    heat[0, 0, 3, 5, 7] = 1.0                                   # one voxel
    heat[0, 1, 0, 0, 2] = heat[0, 1, 0, 0, 4] = 0.5             # two voxels on one row
    heat[0, 2] = 1.0 / (8 * 10 * 12)                            # uniform
    uvd, maxvals = soft_argmax_3d(heat)
    assert torch.allclose(uvd[0, 0], torch.tensor([7 / 12 - 0.5, 5 / 10 - 0.5, 3 / 8 - 0.5]))
    assert torch.allclose(uvd[0, 1], torch.tensor([3 / 12 - 0.5, -0.5, -0.5]))
    assert torch.allclose(uvd[0, 2], torch.tensor([-1 / 24, -1 / 20, -1 / 16]))  # mean index (n-1)/2
    assert torch.allclose(maxvals[0, :, 0], torch.tensor([1.0, 0.5, 1.0 / 960]))
    probs = heatmap_softmax(torch.zeros(1, 1, 2, 3, 4))
    assert torch.allclose(probs, torch.full_like(probs, 1 / 24))  # one softmax over the whole volume


def test_flip_heatmap_shifts_a_copy() -> None:
    """HybrIK's intended flip: mirror u, swap left/right joints, shift one pixel right on a copy."""
    logits = torch.zeros(1, 29, 1, 1, 10)
    logits[0, 0, 0, 0] = torch.arange(10.0)
    logits[0, 1] = 1.0
    logits[0, 2] = 2.0
    logits[0, 27, 0, 0] = torch.arange(10.0) * 10
    out = flip_heatmap_logits(logits)[0, :, 0, 0]
    assert out[0].tolist() == [9, 9, 8, 7, 6, 5, 4, 3, 2, 1]  # the in-place version gives other values
    assert out[1].tolist() == [2.0] * 10 and out[2].tolist() == [1.0] * 10
    assert out[28].tolist() == [90, 90, 80, 70, 60, 50, 40, 30, 20, 10] and out[27].tolist() == [0.0] * 10
    assert logits[0, 0, 0, 0].tolist() == list(range(10))  # input untouched


def test_flip_twist_swaps_rows_and_negates_sin() -> None:
    phis = torch.arange(46.0).reshape(1, 23, 2)
    out = flip_twist(phis)[0]
    expected = phis[0].clone()
    expected[:, 1] *= -1
    for a, b in PAIRS_TWIST:
        expected[[a, b]] = expected[[b, a]]
    assert torch.equal(out, expected)


def test_camera_hand_worked_example() -> None:
    """Box (100, 200)-(500, 600) in a frame centred at (320, 240), scale 0.8, focal 1000 on the 256 crop."""
    bbox = torch.tensor([[100.0, 200.0, 500.0, 600.0]])
    center = torch.tensor([[320.0, 240.0]])
    offset = bbox_offset(bbox, center, bbox)
    assert torch.allclose(offset, torch.tensor([[[-0.05, 0.4]]]))  # ((300-320)/400, (400-240)/400)
    depth = camera_depth(torch.tensor([[0.8]], dtype=torch.float64))
    assert torch.allclose(depth, torch.tensor([[4.8828125]], dtype=torch.float64))  # 1000 / 204.8
    uvd = torch.tensor([[[0.1, -0.2, 0.05], [0.0, 0.1, -0.1]]], dtype=torch.float64)
    xyz = back_project(uvd, depth, offset.double()) * 2.2  # metres
    # root: Z = 0.05 * 2.2 + 4.8828125 = 4.9928125; X = 0.05 * 0.256 * Z; Y = 0.2 * 0.256 * Z
    # joint: Z = -0.22 + 4.8828125 = 4.6628125; X = -0.05 * 0.256 * Z; Y = 0.5 * 0.256 * Z
    expected = torch.tensor([[[0.063908, 0.255632, 0.11], [-0.059684, 0.59684, -0.22]]], dtype=torch.float64)
    assert torch.allclose(xyz, expected, atol=1e-9)
    assert torch.equal(bbox_offset(None, None, bbox), torch.zeros(1, 1, 2))


def test_scale_fit_recovers_scale_and_falls_back_per_sample() -> None:
    """HybrIK's update_scale solve; samples without confident joints (defect 2) keep their scale."""
    rng = np.random.default_rng(0)
    scale_true = np.array([0.75, 1.1, 0.9])
    offset_m = 1000 / (256 * scale_true)  # the depth the fit must find
    joints = rng.normal(size=(3, 24, 3)) * 0.4
    uv = joints[..., :2] * 1000 / 256 / (joints[..., 2:] + offset_m[:, None, None])
    weight = np.ones((3, 24, 1))
    weight[1] = 0.0  # no confident joint
    weight[2, :12] = 0.0  # half of them
    init = torch.tensor([[0.5], [0.6], [0.7]], dtype=torch.float64)
    got = fit_camera_scale(torch.from_numpy(uv), torch.from_numpy(joints), torch.from_numpy(weight), init)
    assert np.allclose(got[[0, 2], 0].numpy(), scale_true[[0, 2]], rtol=1e-9)
    assert got[1, 0] == 0.6


def test_rest_skeleton_matches_numpy(body: BodyModel, smpl_root: Path) -> None:
    arrays = load_smpl_arrays(smpl_root)
    betas = np.random.default_rng(1).normal(size=(2, 10))
    v_shaped = arrays["v_template"][None] + np.einsum("vcl,bl->bvc", arrays["shapedirs"], betas)
    expected = np.concatenate([np.einsum("jv,bvc->bjc", arrays["J_regressor"], v_shaped),
                               v_shaped[:, [411, 2445, 5905, 3216, 6617]]], axis=1)
    got = rest_skeleton(body, torch.from_numpy(betas).float()).double().numpy()
    assert np.abs(got - expected).max() < 1e-5


def test_forward_outputs_are_consistent(hybrik18: HybrIKCam, crops: dict, outputs: dict, body: BodyModel,
                                        hybrik_regressor: np.ndarray) -> None:
    for flip in (False, True):
        out = {k: v.double().numpy() for k, v in outputs[flip].items()}
        assert set(out) == set(OUTPUT_KEYS)
        shapes = {"pred_theta_mats": (3, 216), "pred_uvd_jts": (3, 87), "pred_xyz_jts_29": (3, 87),
                  "pred_xyz_jts_24_struct": (3, 72), "pred_xyz_jts_17": (3, 51), "pred_vertices": (3, 6890, 3),
                  "cam_scale": (3, 1), "cam_root": (3, 3), "transl": (3, 3), "pred_camera": (3, 1),
                  "pred_shape": (3, 10), "pred_phi": (3, 23, 2)}
        assert all(out[k].shape == v for k, v in shapes.items())
        rot = out["pred_theta_mats"].reshape(3, 24, 3, 3)
        assert np.allclose(rot @ rot.transpose(0, 1, 3, 2), np.eye(3), atol=1e-5)
        assert np.allclose(np.linalg.det(rot), 1.0, atol=1e-5)

        # camera, by hand (numpy): xyz from uvd at depth 1000 / (256 * cam_scale), box offset included
        uvd = out["pred_uvd_jts"].reshape(3, 29, 3)
        box, centre = crops["bbox"].double().numpy(), crops["image_center"].double().numpy()
        offset = (((box[:, :2] + box[:, 2:]) / 2 - centre) / (box[:, 2:] - box[:, :2]))[:, None]
        depth = 1000 / (256 * out["cam_scale"])  # (3, 1)
        z_m = uvd[..., 2] * 2.2 + depth
        xy_m = (uvd[..., :2] + offset) * 0.256 * z_m[..., None]
        cam = np.concatenate([xy_m, z_m[..., None]], axis=-1)
        assert np.allclose(out["cam_root"], cam[:, 0], atol=1e-5)
        assert np.allclose(out["transl"], out["cam_root"], atol=1e-6)  # SMPL joints are root-relative
        assert np.allclose(out["pred_xyz_jts_29"].reshape(3, 29, 3), (cam - cam[:, :1]) / 2.2, atol=1e-5)
        assert np.array_equal(out["pred_xyz_jts_24"], out["pred_xyz_jts_29"][:, :72])
        assert not np.allclose(out["cam_scale"], out["pred_camera"])  # the scale fit ran

        # IK and SMPL: rotations from the 29 joints, mesh centred on HybrIK's own H36M pelvis
        shape, phi = torch.from_numpy(out["pred_shape"]).float(), torch.from_numpy(out["pred_phi"]).float()
        xyz_m = torch.from_numpy(out["pred_xyz_jts_29"].reshape(3, 29, 3) * 2.2).float()
        ik = hybrik_ik(xyz_m, phi, rest_skeleton(body, shape)).double().numpy()
        assert np.abs(ik - rot).max() < 1e-4
        h36m = np.einsum("jv,bvc->bjc", hybrik_regressor, out["pred_vertices"])
        assert np.abs(h36m[:, 0]).max() < 1e-5
        assert np.allclose(out["pred_xyz_jts_17"].reshape(3, 17, 3), h36m / 2.2, atol=1e-5)
        joints = body(torch.from_numpy(rot).float(), shape).joints.double().numpy()
        assert np.allclose(out["pred_xyz_jts_24_struct"].reshape(3, 24, 3), (joints - joints[:, :1]) / 2.2, atol=1e-5)


def test_flip_test_is_the_intended_average(hybrik18: HybrIKCam, crops: dict, outputs: dict) -> None:
    """Recompute sample 0's flip test in numpy from the backbone's raw outputs."""
    image = crops["image"][:1]
    size = image.shape[-1] // 4  # heatmap side
    with torch.no_grad():
        logits, feature = hybrik18.preact(torch.cat([image, image.flip(dims=(3,))]))
    logits = logits.double().numpy().reshape(2, 29, 64, size, size)

    def softmax(x: np.ndarray) -> np.ndarray:
        e = np.exp(x - x.max())
        return e / e.sum()

    mirrored = logits[1, :, :, :, ::-1].copy()
    for a, b in PAIRS_29:
        mirrored[[a, b]] = mirrored[[b, a]]
    shifted = np.concatenate([mirrored[..., :1], mirrored[..., :-1]], axis=-1)
    heat = np.stack([(softmax(logits[0, j]) + softmax(shifted[j])) / 2 for j in range(29)])
    u = (heat.sum(axis=(1, 2)) * np.arange(size)).sum(-1) / size - 0.5
    v = (heat.sum(axis=(1, 3)) * np.arange(size)).sum(-1) / size - 0.5
    d = (heat.sum(axis=(2, 3)) * np.arange(64)).sum(-1) / 64 - 0.5
    got = outputs[True]["pred_uvd_jts"][0].double().numpy().reshape(29, 3)
    assert np.abs(got - np.stack([u, v, d], axis=1)).max() < 1e-6

    w = {k: getattr(hybrik18, k) for k in ("decshape", "decphi", "deccam")}
    with torch.no_grad():
        shape = (w["decshape"](feature) + hybrik18.init_shape).double().numpy()
        phi = w["decphi"](feature).double().numpy().reshape(2, 23, 2)
        cam = (w["deccam"](feature) + hybrik18.init_cam).double().numpy()[:, 0]
    phi_f = phi[1] * [1, -1]
    for a, b in PAIRS_TWIST:
        phi_f[[a, b]] = phi_f[[b, a]]
    assert np.allclose(outputs[True]["pred_shape"][0].numpy(), shape.mean(0), atol=1e-6)
    assert np.allclose(outputs[True]["pred_phi"][0].numpy(), (phi[0] + phi_f) / 2, atol=1e-6)
    assert np.isclose(outputs[True]["pred_camera"][0, 0].item(), 2 / (1 / cam[0] + 1 / cam[1]), atol=1e-6)


def test_refine_scale_falls_back_per_sample(hybrik18: HybrIKCam, outputs: dict) -> None:
    """Defect 2: one sample without confident joints keeps its scale; the others are still refined."""
    out = outputs[False]
    sigma = torch.full((3, 29, 1), 0.02)
    sigma[1] = 1.0  # weights max(1 - 10 sigma, 0) = 0
    with torch.no_grad():
        scale = hybrik18.refine_scale(out["pred_uvd_jts"].reshape(3, 29, 3), sigma, out["pred_camera"],
                                      out["pred_shape"], out["pred_phi"], torch.zeros(3, 1, 2))
    assert scale[1, 0] == out["pred_camera"][1, 0]
    assert torch.isfinite(scale).all() and not torch.allclose(scale[[0, 2]], out["pred_camera"][[0, 2]])


def test_missing_mean_beta_is_one_line_asset_error(tmp_path: Path) -> None:
    with pytest.raises(AssetError) as err:
        load_mean_beta(tmp_path)
    assert "h36m_mean_beta.npy" in str(err.value) and "\n" not in str(err.value)
    np.save(tmp_path / "h36m_mean_beta.npy", np.arange(10.0))
    assert np.array_equal(load_mean_beta(tmp_path), np.arange(10.0, dtype=np.float32))


def test_build_hybrik_reads_hybriks_model_files_as_they_are(hybrik_model_files: Path, smpl_root: Path) -> None:
    """HybrIK's folder (original SMPL name, J_regressor_h36m.npy, h36m_mean_beta.npy; no SPIN file) builds
    the network with HybrIK's regressor and mean betas, on the same SMPL arrays as the renamed file."""
    model = build_hybrik(hybrik_model_files, width=18, mean_beta=True)
    np.testing.assert_array_equal(model.init_shape.numpy(),
                                  np.load(hybrik_model_files / "h36m_mean_beta.npy").astype(np.float32))
    np.testing.assert_array_equal(model.smpl.j_regressor_h36m.numpy(),
                                  np.load(hybrik_model_files / "J_regressor_h36m.npy").astype(np.float32))
    reference = load_smpl_arrays(smpl_root / "SMPL_NEUTRAL.pkl")
    np.testing.assert_array_equal(model.smpl.body.v_template.numpy(), reference["v_template"].astype(np.float32))


@pytest.mark.parametrize("missing, fragments", [
    ("J_regressor_h36m.npy", ("J_regressor_h36m.npy", "not found", "HybrIK's model_files/", "--hybrik_model_files")),
    ("basicModel_neutral_lbs_10_207_0_v1.0.0.pkl", ("SMPL model not found", "basicModel_neutral_lbs_10_207_0_v1.0.0.pkl",
                                                    "HybrIK's model_files/", "smplify.is.tue.mpg.de")),
    ("h36m_mean_beta.npy", ("h36m_mean_beta.npy", "HybrIK's model_files/", "--hybrik_model_files")),
])
def test_missing_model_file_is_named_with_its_source(hybrik_model_files: Path, tmp_path: Path, missing: str,
                                                     fragments: tuple[str, ...]) -> None:
    for path in hybrik_model_files.iterdir():
        if path.name != missing:
            (tmp_path / path.name).symlink_to(path)
    with pytest.raises(AssetError) as err:
        build_hybrik(tmp_path, width=18, mean_beta=True)
    message = str(err.value)
    assert "\n" not in message and all(f in message for f in fragments), message

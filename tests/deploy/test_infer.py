"""infer_mesh end to end on a synthetic video, from every input kind, with both refiner back-ends."""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from lib.body.smpl import BodyModel
from lib.data.keypoints2d import coco_to_h36m
from lib.deploy.hybrik_onnx import HybrIKOnnx, run_hybrik_on_frames
from lib.deploy.infer_cli import main

RESULT_KEYS = {"pose_aa", "rot_mat", "betas", "vertices", "keypoints_3d", "transl", "input_pose_aa", "input_rot_mat",
               "input_betas", "input_vertices", "input_keypoints_3d", "input_transl", "keypoints_2d", "pose2d",
               "faces", "fps", "units", "settings", "focal_px", "image_size"}


def _run(argv: list[object]) -> int:
    return main([str(a) for a in argv])


@pytest.fixture(scope="module")
def from_res_pk(synthetic_video, tiny_setup, tmp_path_factory) -> dict[str, np.ndarray]:
    out = tmp_path_factory.mktemp("infer") / "res_ckpt.npz"
    assert _run(["--hybrik", synthetic_video.folder / "res.pk", "--checkpoint_file", tiny_setup.checkpoint,
                 "--out", out]) == 0
    with np.load(out, allow_pickle=False) as npz:
        return dict(npz)


def test_res_pk_result_layout_units_and_camera_placement(from_res_pk, synthetic_video, data_root: Path) -> None:
    r, res = from_res_pk, synthetic_video.res
    frames = synthetic_video.frames
    assert set(r) == RESULT_KEYS
    assert r["vertices"].shape == r["input_vertices"].shape == (frames, 6890, 3)
    assert r["keypoints_3d"].shape == (frames, 17, 3) and r["pose_aa"].shape == (frames, 72)
    assert json.loads(str(r["units"]))["vertices"].startswith("m, camera frame")
    assert float(r["fps"]) == 30.0
    settings = json.loads(str(r["settings"]))
    assert settings["clip_len"] == 16 and settings["sample_stride"] == 2 and settings["flip"] is True
    # HybrIK's input is kept exactly
    np.testing.assert_allclose(r["input_rot_mat"].reshape(frames, 216), res["pred_thetas"], atol=1e-5)
    np.testing.assert_allclose(r["input_transl"], res["transl"])
    # placement as HybrIK's demo: SMPL mesh centred on HybrIK's H36M pelvis, plus transl (metres)
    body = BodyModel(data_root)
    with torch.no_grad():
        raw = body(torch.from_numpy(r["input_rot_mat"]), torch.from_numpy(r["input_betas"])).vertices.double().numpy()
    pelvis_row = np.load(data_root / "J_regressor_h36m.npy")[0]
    expected = raw - np.einsum("v,fvc->fc", pelvis_row, raw)[:, None] + res["transl"][:, None]
    np.testing.assert_allclose(r["input_vertices"], expected, atol=2e-5)
    np.testing.assert_allclose(np.einsum("v,fvc->fc", pelvis_row, r["vertices"].astype(np.float64)), res["transl"],
                               atol=2e-5)  # the refined mesh keeps HybrIK's translation
    # 2D from projecting HybrIK's joints: focal 1000 / 256 * box width, principal point at the image centre
    joints = res["pred_xyz_17"].astype(np.float64) * 2.2 + res["transl"][:, None]
    focal = 1000 / 256 * (res["bbox"][:, 2] - res["bbox"][:, 0])
    uv = focal[:, None, None] * joints[..., :2] / joints[..., 2:] + np.array([960.0, 960.0])
    np.testing.assert_allclose(r["keypoints_2d"][..., :2], uv, rtol=1e-5)
    np.testing.assert_allclose(r["pose2d"][..., :2], uv / 1920 * 2 - 1, atol=1e-5)
    # the refiner did refine
    assert 1e-3 < np.abs(r["rot_mat"] - r["input_rot_mat"]).max() < 0.5


def test_checkpoint_and_onnx_back_ends_agree(from_res_pk, synthetic_video, exported, data_root, tmp_path) -> None:
    out = tmp_path / "res_onnx.npz"
    assert _run(["--hybrik", synthetic_video.folder / "res.pk", "--onnx", exported.path, "--data_root", data_root,
                 "--out", out]) == 0
    with np.load(out) as onnx_result:
        for key in ("rot_mat", "betas", "vertices", "keypoints_3d"):
            tol = 1e-5 if key in ("vertices", "keypoints_3d") else 1e-4  # 1e-5 m = 1e-2 mm
            np.testing.assert_allclose(onnx_result[key], from_res_pk[key], atol=tol, err_msg=key)
        assert json.loads(str(onnx_result["settings"]))["refiner"].startswith("onnx:")


def test_npz_with_axis_angle_or_matrices_and_coco_json_2d(synthetic_video, tiny_setup, tmp_path) -> None:
    res, frames = synthetic_video.res, synthetic_video.frames
    common = {"betas": res["pred_betas"], "transl": res["transl"], "bbox": res["bbox"], "width": 1920, "height": 1920}
    np.savez(tmp_path / "aa.npz", pose_aa=synthetic_video.pose_aa, **common)
    np.savez(tmp_path / "mat.npz", rot_mat=res["pred_thetas"], **common)
    coco = synthetic_video.keypoints_coco
    mmpose = {"instance_info": [{"frame_id": f, "instances": [
        {"keypoints": coco[f, :, :2].tolist(), "keypoint_scores": coco[f, :, 2].tolist()}]} for f in range(frames)]}
    (tmp_path / "vitpose.json").write_text(json.dumps(mmpose))
    results = {}
    for name in ("aa", "mat"):
        out = tmp_path / f"{name}_out.npz"
        assert _run(["--hybrik", tmp_path / f"{name}.npz", "--keypoints2d", tmp_path / "vitpose.json",
                     "--checkpoint_file", tiny_setup.checkpoint, "--out", out]) == 0
        with np.load(out) as npz:
            results[name] = dict(npz)
    np.testing.assert_allclose(results["aa"]["keypoints_2d"], coco_to_h36m(coco), atol=1e-3)
    for key in ("rot_mat", "vertices", "input_vertices"):
        np.testing.assert_allclose(results["aa"][key], results["mat"][key], atol=1e-5, err_msg=key)
    # the detector's 2D (not the projection) drives the refiner
    assert np.abs(results["aa"]["pose2d"][..., :2] - results["aa"]["keypoints_2d"][..., :2] / 960 + 1).max() < 1e-5


def test_without_2d_or_hybrik_joints_the_smpl_joints_are_projected(synthetic_video, tiny_setup, data_root,
                                                                   tmp_path) -> None:
    res = synthetic_video.res
    np.savez(tmp_path / "aa.npz", pose_aa=synthetic_video.pose_aa, betas=res["pred_betas"], transl=res["transl"],
             bbox=res["bbox"], width=1920, height=1920)
    out = tmp_path / "out.npz"
    assert _run(["--hybrik", tmp_path / "aa.npz", "--checkpoint_file", tiny_setup.checkpoint, "--no-flip",
                 "--out", out]) == 0
    with np.load(out) as r:
        regressor = np.load(data_root / "J_regressor_h36m.npy")
        joints = np.einsum("jv,fvc->fjc", regressor, r["input_vertices"].astype(float))
        focal = 1000 / 256 * (res["bbox"][:, 2] - res["bbox"][:, 0])
        uv = focal[:, None, None] * joints[..., :2] / joints[..., 2:] + 960.0
        np.testing.assert_allclose(r["keypoints_2d"][..., :2], uv, rtol=1e-5)
        np.testing.assert_allclose(r["keypoints_2d"][..., 2], 1.0)
        assert json.loads(str(r["settings"]))["flip"] is False


def test_frames_and_boxes_through_a_hybrik_onnx_rendered(hybrik_standin, tiny_setup, tmp_path) -> None:
    frames_dir = tmp_path / "frames"
    frames_dir.mkdir()
    rng = np.random.default_rng(0)
    images = []
    for i in range(5):  # a short clip (fewer frames than a window), each frame a little brighter
        image = (rng.integers(0, 40, (120, 160, 3)) + 30 * i).astype(np.uint8)
        Image.fromarray(image).save(frames_dir / f"{i:06d}.png")
        images.append(image)
    boxes = np.array([[50 + 2 * i, 10, 110 + 2 * i, 115] for i in range(5)], dtype=np.float64)
    np.save(tmp_path / "boxes.npy", boxes)
    out, render = tmp_path / "out.npz", tmp_path / "render"
    assert _run(["--hybrik_onnx", hybrik_standin, "--frames", frames_dir, "--boxes", tmp_path / "boxes.npy",
                 "--checkpoint_file", tiny_setup.checkpoint, "--render", render, "--out", out]) == 0
    expected = run_hybrik_on_frames(HybrIKOnnx(hybrik_standin), images, boxes)
    with np.load(out) as r:
        np.testing.assert_allclose(r["input_rot_mat"].reshape(5, 216), expected["pred_thetas"], atol=1e-5)
        np.testing.assert_allclose(r["input_transl"], expected["transl"], atol=1e-6)
        np.testing.assert_array_equal(r["image_size"], np.tile([160, 120], (5, 1)))
        assert r["vertices"].shape == (5, 6890, 3)
    pngs = sorted(render.glob("frame_*.png"))
    assert len(pngs) == 5 and (render / "render.gif").is_file()
    panel = np.asarray(Image.open(pngs[0]))
    assert panel.shape == (120, 320, 3)
    background = images[0].astype(np.int32)
    for half in (panel[:, :160], panel[:, 160:]):  # a mesh is drawn over the frame in both panels
        changed = np.abs(half.astype(np.int32) - background).sum(-1) > 60
        assert changed[20:].mean() > 0.02


def test_a_sequence_of_one_frame(synthetic_video, tiny_setup, tmp_path) -> None:
    one = {k: (v[:1] if isinstance(v, np.ndarray) else v[:1]) for k, v in synthetic_video.res.items()}
    with (tmp_path / "one.pk").open("wb") as handle:
        pickle.dump(one, handle)
    assert _run(["--hybrik", tmp_path / "one.pk", "--checkpoint_file", tiny_setup.checkpoint,
                 "--out", tmp_path / "one.npz"]) == 0
    with np.load(tmp_path / "one.npz") as r:
        assert r["vertices"].shape == (1, 6890, 3)


def test_user_errors_are_one_line_exit_2(synthetic_video, tiny_setup, hybrik_standin, tmp_path, capsys) -> None:
    res_pk = synthetic_video.folder / "res.pk"
    ckpt = ["--checkpoint_file", tiny_setup.checkpoint]
    out = ["--out", tmp_path / "x.npz"]
    np.save(tmp_path / "short.npy", synthetic_video.keypoints_coco[:10])
    np.savez(tmp_path / "nocam.npz", pose_aa=synthetic_video.pose_aa, betas=synthetic_video.res["pred_betas"])
    cases = [
        (["--hybrik", res_pk, "--keypoints2d", tmp_path / "short.npy", *ckpt, *out],
         "10 frames of 2D keypoints but the HybrIK results have"),
        (["--hybrik", res_pk, "--onnx", hybrik_standin, *out], "is this the HybrIK model"),
        (["--hybrik", tmp_path / "nocam.npz", *ckpt, *out], "cannot be projected"),
        (["--hybrik_onnx", hybrik_standin, *ckpt, *out], "--hybrik_onnx needs --frames"),
        (["--hybrik", res_pk, *ckpt, "--overlap", "16", *out], "expected < clip_len"),
        (["--hybrik", res_pk, *ckpt, "--frames", tmp_path, *out], "no image files"),
    ]
    for argv, message in cases:
        assert _run(argv) == 2, message
        err = capsys.readouterr().err
        assert message in err and err.count("\n") == 1, err
    assert not (tmp_path / "x.npz").exists()

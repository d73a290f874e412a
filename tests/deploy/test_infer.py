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
               "faces", "fps", "units", "settings", "focal_px", "image_size", "valid"}


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
    assert r["valid"].dtype == bool and r["valid"].shape == (frames,) and r["valid"].all()
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


# ------------------------------------------------------------------------------------- invalid frames


def _slerp(rot_a: np.ndarray, rot_b: np.ndarray, t: float) -> np.ndarray:
    """(24, 3, 3): scipy's Slerp from rot_a to rot_b at t, per joint (independent of lib.geometry)."""
    from scipy.spatial.transform import Rotation, Slerp

    return np.stack([Slerp([0.0, 1.0], Rotation.from_matrix(np.stack([a, b])))(t).as_matrix()
                     for a, b in zip(rot_a, rot_b)])


def _matrices(pose_aa: np.ndarray) -> np.ndarray:
    from scipy.spatial.transform import Rotation

    return Rotation.from_rotvec(pose_aa.reshape(-1, 3)).as_matrix().reshape(len(pose_aa), 24, 3, 3)


def _run_summary(argv: list[object], capsys) -> tuple[int, dict, str]:
    code = _run(argv)
    captured = capsys.readouterr()
    lines = [line for line in captured.out.splitlines() if line.startswith("{")]
    return code, (json.loads(lines[-1]) if lines else {}), captured.err


def _npz(path: Path, video, pose_aa: np.ndarray | None = None, betas: np.ndarray | None = None) -> Path:
    res = video.res
    np.savez(path, pose_aa=video.pose_aa if pose_aa is None else pose_aa,
             betas=res["pred_betas"] if betas is None else betas, transl=res["transl"], bbox=res["bbox"],
             width=1920, height=1920)
    return path


def test_nan_in_one_frame_is_bridged_flagged_and_refined(synthetic_video, tiny_setup, tmp_path, capsys) -> None:
    frames, bad = synthetic_video.frames, 40
    pose = synthetic_video.pose_aa.copy()
    pose[bad, 7] = np.nan  # one value of one frame, as HybrIK can return
    ckpt = ["--checkpoint_file", tiny_setup.checkpoint]
    code, summary, _ = _run_summary(["--hybrik", _npz(tmp_path / "nan.npz", synthetic_video, pose), *ckpt,
                                     "--out", tmp_path / "out.npz"], capsys)
    assert code == 0 and summary["invalid_frames"] == 1
    rot, betas = _matrices(synthetic_video.pose_aa), synthetic_video.res["pred_betas"].astype(np.float64)
    with np.load(tmp_path / "out.npz") as r:
        out = dict(r)
    assert out["valid"].tolist() == [f != bad for f in range(frames)]
    np.testing.assert_allclose(out["input_rot_mat"][bad], _slerp(rot[bad - 1], rot[bad + 1], 0.5), atol=1e-5)
    np.testing.assert_allclose(out["input_betas"][bad], (betas[bad - 1] + betas[bad + 1]) / 2, atol=1e-5)
    keep = np.arange(frames) != bad
    np.testing.assert_allclose(out["input_rot_mat"][keep], rot[keep], atol=1e-5)  # the other frames as given
    assert np.isfinite(out["vertices"]).all() and np.isfinite(out["rot_mat"]).all()
    # the refiner ran on the bridged sequence: the same result as from a file holding the bridged frame
    # (the whole frame is bridged: its betas, transl and box too, since HybrIK's estimate of it failed)
    from scipy.spatial.transform import Rotation

    res = synthetic_video.res
    bridged = {"pose_aa": synthetic_video.pose_aa.copy(), "betas": betas.copy(), "width": 1920, "height": 1920,
               "transl": res["transl"].astype(np.float64), "bbox": res["bbox"].astype(np.float64)}
    bridged["pose_aa"][bad] = Rotation.from_matrix(_slerp(rot[bad - 1], rot[bad + 1], 0.5)).as_rotvec().reshape(72)
    for key in ("betas", "transl", "bbox"):
        bridged[key][bad] = (bridged[key][bad - 1] + bridged[key][bad + 1]) / 2
    np.savez(tmp_path / "bridged.npz", **bridged)
    code, summary, _ = _run_summary(["--hybrik", tmp_path / "bridged.npz", *ckpt, "--out", tmp_path / "ref.npz"],
                                    capsys)
    assert code == 0 and summary["invalid_frames"] == 0
    with np.load(tmp_path / "ref.npz") as ref:
        np.testing.assert_allclose(out["rot_mat"], ref["rot_mat"], atol=1e-5)
        np.testing.assert_allclose(out["vertices"], ref["vertices"], atol=1e-5)
    # --on_invalid error: one line naming the file and the frame, no output written
    code, _, err = _run_summary(["--hybrik", tmp_path / "nan.npz", *ckpt, "--on_invalid", "error",
                                 "--out", tmp_path / "err.npz"], capsys)
    assert code == 2 and err.count("\n") == 1 and not (tmp_path / "err.npz").exists()
    assert err.startswith(f"error: {tmp_path / 'nan.npz'}: 1 of {frames} frames invalid (frame {bad}: non-finite "
                          "'pose_aa')")


def test_a_run_of_10_missing_frames_in_res_pk_is_bridged(synthetic_video, tiny_setup, tmp_path, capsys) -> None:
    res, frames = synthetic_video.res, synthetic_video.frames
    gap = np.arange(30, 40)  # HybrIK's demo wrote nothing for these frames (img_path skips 000030-000039)
    keep = np.setdiff1d(np.arange(frames), gap)
    cut = {k: (np.asarray(v)[keep] if len(v) == frames else v) for k, v in res.items()}
    cut["img_path"] = [res["img_path"][f] for f in keep]
    with (tmp_path / "gap.pk").open("wb") as handle:
        pickle.dump(cut, handle)
    code, summary, _ = _run_summary(["--hybrik", tmp_path / "gap.pk", "--checkpoint_file", tiny_setup.checkpoint,
                                     "--out", tmp_path / "out.npz"], capsys)
    assert code == 0 and summary["frames"] == frames and summary["invalid_frames"] == 10
    rot = res["pred_thetas"].astype(np.float64).reshape(frames, 24, 3, 3)
    with np.load(tmp_path / "out.npz") as r:
        assert r["valid"].tolist() == [f not in gap for f in range(frames)]
        for k, f in enumerate(gap):
            t = (k + 1) / 11  # between frames 29 and 40
            np.testing.assert_allclose(r["input_rot_mat"][f], _slerp(rot[29], rot[40], t), atol=1e-5)
            for key, name in (("input_transl", "transl"), ("input_betas", "pred_betas")):
                expected = (1 - t) * res[name][29].astype(np.float64) + t * res[name][40]
                np.testing.assert_allclose(r[key][f], expected, atol=1e-5, err_msg=f"{key} {f}")
        np.testing.assert_allclose(r["input_rot_mat"][keep], rot[keep], atol=1e-5)
        assert np.isfinite(r["vertices"]).all() and np.isfinite(r["keypoints_2d"]).all()
    code, _, err = _run_summary(["--hybrik", tmp_path / "gap.pk", "--checkpoint_file", tiny_setup.checkpoint,
                                 "--on_invalid", "error", "--out", tmp_path / "err.npz"], capsys)
    assert code == 2 and "10 of 85 frames invalid (frames 30-39: missing from 'img_path')" in err
    assert err.count("\n") == 1 and not (tmp_path / "err.npz").exists()


def test_invalid_first_and_last_frames_are_held(synthetic_video, tiny_setup, tmp_path, capsys) -> None:
    frames = synthetic_video.frames
    betas = synthetic_video.res["pred_betas"].astype(np.float64)
    betas[0, 3] = np.inf  # HybrIK's first frame unusable
    kp = synthetic_video.keypoints_h36m.copy()
    kp[-1, :, 2] = 0.0  # the detector lost the person in the last frame
    kp[-1, :, :2] = 0.0
    np.save(tmp_path / "kp.npy", kp)
    code, summary, _ = _run_summary(["--hybrik", _npz(tmp_path / "ends.npz", synthetic_video, betas=betas),
                                     "--keypoints2d", tmp_path / "kp.npy", "--keypoints_layout", "h36m",
                                     "--checkpoint_file", tiny_setup.checkpoint, "--out", tmp_path / "out.npz"], capsys)
    assert code == 0 and summary["invalid_frames"] == 2
    rot = _matrices(synthetic_video.pose_aa)
    with np.load(tmp_path / "out.npz") as r:
        assert r["valid"].tolist() == [False] + [True] * (frames - 2) + [False]
        np.testing.assert_allclose(r["input_rot_mat"][0], rot[1], atol=1e-5)   # held from frame 1
        np.testing.assert_allclose(r["input_betas"][0], betas[1], atol=1e-5)
        np.testing.assert_allclose(r["input_rot_mat"][-1], rot[-1], atol=1e-5)  # HybrIK's last frame is fine
        np.testing.assert_allclose(r["keypoints_2d"][-1], kp[-2], atol=1e-3)   # 2D held from the frame before
        np.testing.assert_allclose(r["keypoints_2d"][:-1], kp[:-1], atol=1e-3)


def test_all_frames_invalid_is_one_line(synthetic_video, tiny_setup, tmp_path, capsys) -> None:
    frames = synthetic_video.frames
    ckpt = ["--checkpoint_file", tiny_setup.checkpoint]
    nan_pose = np.full_like(synthetic_video.pose_aa, np.nan)
    kp = synthetic_video.keypoints_h36m.copy()
    kp[..., 2] = 0.0
    np.save(tmp_path / "nobody.npy", kp)
    cases = [
        (["--hybrik", _npz(tmp_path / "nan.npz", synthetic_video, nan_pose)],
         f"{tmp_path / 'nan.npz'}: all {frames} frames are invalid (frames 0-{frames - 1}: non-finite 'pose_aa')"),
        (["--hybrik", synthetic_video.folder / "res.pk", "--keypoints2d", tmp_path / "nobody.npy",
          "--keypoints_layout", "h36m"],
         f"{tmp_path / 'nobody.npy'}: all {frames} frames are invalid (frames 0-{frames - 1}: no person"),
    ]
    for argv, message in cases:
        for mode in ("bridge", "error"):
            code, _, err = _run_summary([*argv, *ckpt, "--on_invalid", mode, "--out", tmp_path / "x.npz"], capsys)
            assert code == 2 and err.startswith(f"error: {message}") and err.count("\n") == 1, err
    assert not (tmp_path / "x.npz").exists()


def test_empty_boxes_on_the_frames_path_are_bridged(hybrik_standin, tiny_setup, tmp_path, capsys) -> None:
    frames_dir = tmp_path / "frames"
    frames_dir.mkdir()
    rng = np.random.default_rng(0)
    images = []
    for i in range(5):
        image = (rng.integers(0, 40, (120, 160, 3)) + 30 * i).astype(np.uint8)
        Image.fromarray(image).save(frames_dir / f"{i:06d}.png")
        images.append(image)
    boxes = np.array([[50 + 2 * i, 10, 110 + 2 * i, 115] for i in range(5)], dtype=np.float64)
    with_empty = boxes.tolist()
    with_empty[2] = None  # the detector found nobody in frame 2
    (tmp_path / "boxes.json").write_text(json.dumps(with_empty))
    argv = ["--hybrik_onnx", hybrik_standin, "--frames", frames_dir, "--checkpoint_file", tiny_setup.checkpoint]
    code, summary, _ = _run_summary([*argv, "--boxes", tmp_path / "boxes.json", "--out", tmp_path / "out.npz"], capsys)
    assert code == 0 and summary["invalid_frames"] == 1
    expected = run_hybrik_on_frames(HybrIKOnnx(hybrik_standin), images, boxes)  # every frame with its box
    rot = expected["pred_thetas"].astype(np.float64).reshape(5, 24, 3, 3)
    with np.load(tmp_path / "out.npz") as r:
        assert r["valid"].tolist() == [True, True, False, True, True]
        keep = [0, 1, 3, 4]
        np.testing.assert_allclose(r["input_rot_mat"][keep], rot[keep], atol=1e-5)
        np.testing.assert_allclose(r["input_rot_mat"][2], _slerp(rot[1], rot[3], 0.5), atol=1e-5)
        np.testing.assert_allclose(r["input_transl"][2], (expected["transl"][1] + expected["transl"][3]) / 2,
                                   atol=1e-5)
        assert np.isfinite(r["vertices"]).all()
    np.save(tmp_path / "empty.npy", np.zeros((5, 4)))  # zero boxes everywhere
    code, _, err = _run_summary([*argv, "--boxes", tmp_path / "empty.npy", "--out", tmp_path / "x.npz"], capsys)
    assert code == 2 and "HybrIK ran on no frame" in err and err.count("\n") == 1
    assert not (tmp_path / "x.npz").exists()


def test_malformed_inputs_end_in_one_line_naming_the_file(synthetic_video, tiny_setup, tmp_path, capsys) -> None:
    """The issue's list: missing pose key, wrong width, truncated npz, 2D for fewer frames or with 16 joints,
    a checkpoint of random bytes: each one line naming the file, exit 2, nothing written."""
    res_pk = synthetic_video.folder / "res.pk"
    good = _npz(tmp_path / "good.npz", synthetic_video)
    np.savez(tmp_path / "nopose.npz", betas=synthetic_video.res["pred_betas"])
    np.savez(tmp_path / "width.npz", pose_aa=synthetic_video.pose_aa[:, :69], betas=synthetic_video.res["pred_betas"])
    (tmp_path / "truncated.npz").write_bytes(good.read_bytes()[:5000])
    np.save(tmp_path / "short.npy", synthetic_video.keypoints_coco[:10])
    np.save(tmp_path / "j16.npy", synthetic_video.keypoints_coco[:, :16])
    (tmp_path / "random.bin").write_bytes(np.random.default_rng(0).bytes(4096))
    ckpt = ["--checkpoint_file", tiny_setup.checkpoint]
    cases = [
        (["--hybrik", tmp_path / "nopose.npz", *ckpt], "nopose.npz: no pose key"),
        (["--hybrik", tmp_path / "width.npz", *ckpt], "width.npz: key 'pose_aa' has shape"),
        (["--hybrik", tmp_path / "truncated.npz", *ckpt], "truncated.npz: cannot read"),
        (["--hybrik", res_pk, "--keypoints2d", tmp_path / "short.npy", *ckpt], "short.npy: 10 frames of 2D"),
        (["--hybrik", res_pk, "--keypoints2d", tmp_path / "j16.npy", *ckpt], "j16.npy: 16 joints per frame"),
        (["--hybrik", res_pk, "--checkpoint_file", tmp_path / "random.bin"], "random.bin: not a readable checkpoint"),
    ]
    for argv, message in cases:
        code, _, err = _run_summary([*argv, "--out", tmp_path / "x.npz"], capsys)
        assert code == 2 and message in err and err.count("\n") == 1 and "Traceback" not in err, err
    assert not (tmp_path / "x.npz").exists() and not list(tmp_path.glob(".*.tmp"))


def test_an_npz_that_cannot_be_written_is_one_line(synthetic_video, tiny_setup, tmp_path, capsys, monkeypatch) -> None:
    import errno
    import os

    from lib import atomic_write

    out = tmp_path / "refined.npz"
    out.write_bytes(b"yesterday's result")

    def full_disk(src, dst):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(atomic_write.os, "replace", full_disk)
    code, _, err = _run_summary(["--hybrik", synthetic_video.folder / "res.pk", "--checkpoint_file",
                                 tiny_setup.checkpoint, "--out", out], capsys)
    assert code == 2 and err == (f"error: {out}: cannot write (ENOSPC, No space left on device); free disk space or "
                                 "write to another disk; the previous file, if any, is unchanged\n")
    assert out.read_bytes() == b"yesterday's result" and sorted(tmp_path.iterdir()) == [out]

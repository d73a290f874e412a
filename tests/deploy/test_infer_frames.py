"""infer_mesh from a video's frames: HybrIK (our PyTorch port from a checkpoint, or its ONNX export) then
the refiner; image folders and GIFs, per-frame boxes (tight or HybrIK's square ones) or the whole frame,
ready crops, and the one-line user errors.

HybrIK runs as a HybrIK user has it: its ``model_files/`` folder as it is (the SMPL pickle under SMPLify's
name, ``J_regressor_h36m.npy``, ``h36m_mean_beta.npy``; no SPIN file, nothing renamed) and a checkpoint laid
out like ``hybrik_hrnet.pth`` (``smpl.*`` buffers included). The refiner keeps its own data_root."""

from __future__ import annotations

import contextlib
import io
import json
import logging
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from lib.deploy.hybrik_export_cli import main as export_main
from lib.deploy.infer_cli import main
from lib.deploy.inputs import read_video_frames, whole_frame_boxes
from lib.hybrik.preprocess import hybrik_batch
from lib.errors import DataError
from lib.deploy.hybrik_export import EXPORT_OUTPUT_NAMES, onnx_session
from lib.hybrik.model import HybrIKCam, build_hybrik

RESULT_KEYS = {"pose_aa", "rot_mat", "betas", "vertices", "keypoints_3d", "transl", "input_pose_aa", "input_rot_mat",
               "input_betas", "input_vertices", "input_keypoints_3d", "input_transl", "keypoints_2d", "pose2d",
               "faces", "fps", "units", "settings", "focal_px", "image_size", "valid"}
WIDTH = 18                   # reduced HRNet width (HybrIK: 48)
FRAMES, W, H = 5, 64, 48     # a short, small clip
FOCAL_CROP_PX, CROP_PX, SCALE_MULT = 1000.0, 256.0, 1.25  # HybrIK's camera and box expansion


def _run(argv: list[object]) -> int:
    return main([str(a) for a in argv])


@dataclass
class Clip:
    images: list[np.ndarray]   # F (H, W, 3) uint8
    folder: Path               # the same frames as PNGs
    gif: Path                  # ... and as one animated GIF
    boxes: Path                # (F, 4) xyxy px .npy


@dataclass
class HybrIKFiles:
    model: HybrIKCam
    checkpoint: Path           # laid out like HybrIK's hybrik_hrnet.pth
    onnx: Path                 # its export by deployment_hybrik.py (no flip test baked in)
    model_files: Path          # HybrIK's model_files/ layout
    export_stdout: str         # what deployment_hybrik.py printed


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Clip:
    """A bright 'person' (torso + head, three flat colours: GIF-exact) walking right over a dark floor."""
    out = tmp_path_factory.mktemp("clip")
    (out / "frames").mkdir()
    images = []
    for f in range(FRAMES):
        image = np.full((H, W, 3), (30, 40, 50), dtype=np.uint8)
        x = 20 + 3 * f
        image[14:44, x:x + 12] = (200, 170, 140)    # torso and legs
        image[4:13, x + 3:x + 9] = (230, 200, 180)  # head
        Image.fromarray(image).save(out / "frames" / f"{f:06d}.png")
        images.append(image)
    pil = [Image.fromarray(i) for i in images]
    pil[0].save(out / "clip.gif", save_all=True, append_images=pil[1:], duration=40, loop=0)
    boxes = np.array([[18 + 3 * f, 2, 34 + 3 * f, 46] for f in range(FRAMES)], dtype=np.float64)
    np.save(out / "boxes.npy", boxes)
    return Clip(images, out / "frames", out / "clip.gif", out / "boxes.npy")


def save_like_hybrik(model: HybrIKCam, path: Path) -> None:
    """A checkpoint laid out as HybrIK's hybrik_hrnet.pth: the state dict plus HybrIK's 9 smpl.* buffers."""
    smpl = {"faces_tensor": (13776, 3), "v_template": (6890, 3), "shapedirs": (6890, 3, 10), "posedirs": (207, 20670),
            "J_regressor": (24, 6890), "J_regressor_h36m": (17, 6890), "children_map": (29,), "parents": (29,),
            "lbs_weights": (6890, 24)}
    torch.save({**model.state_dict(), **{f"smpl.{k}": torch.zeros(v) for k, v in smpl.items()}}, path)


@pytest.fixture(scope="module")
def hybrik_files(hybrik_model_files: Path, tmp_path_factory: pytest.TempPathFactory) -> HybrIKFiles:
    """A random-init width-18 port built from HybrIK's model_files layout, saved like hybrik_hrnet.pth, and its
    TorchScript-exported ONNX."""
    assert sorted(p.name for p in hybrik_model_files.iterdir()) == [
        "J_regressor_h36m.npy", "basicModel_neutral_lbs_10_207_0_v1.0.0.pkl", "h36m_mean_beta.npy"]  # no SPIN file
    out = tmp_path_factory.mktemp("hybrik18")
    torch.manual_seed(0)
    model = build_hybrik(hybrik_model_files, width=WIDTH, mean_beta=True)
    save_like_hybrik(model, out / "hybrik_hrnet18.pth")
    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer):  # deployment_hybrik.py on HybrIK's own folder and checkpoint layout
        code = export_main(["--hybrik_model_files", str(hybrik_model_files), "--checkpoint", str(out / "hybrik_hrnet18.pth"),
                            "--width", str(WIDTH), "--no-flip_test", "--latency_repeats", "0",
                            "--deployment", str(out / "hybrik18.onnx")])
    assert code == 0, buffer.getvalue()
    return HybrIKFiles(model, out / "hybrik_hrnet18.pth", out / "hybrik18.onnx", hybrik_model_files, buffer.getvalue())


def _load(path: Path) -> dict[str, np.ndarray]:
    with np.load(path, allow_pickle=False) as npz:
        return dict(npz)


@pytest.fixture(scope="module")
def both_paths(clip: Clip, hybrik_files: HybrIKFiles, tiny_setup,
               tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, np.ndarray]]:
    """The same frames and boxes through --hybrik_checkpoint (PyTorch) and --hybrik_onnx."""
    out = tmp_path_factory.mktemp("both")
    common = ["--frames", clip.folder, "--boxes", clip.boxes, "--checkpoint_file", tiny_setup.checkpoint]
    assert _run(["--hybrik_checkpoint", hybrik_files.checkpoint, "--hybrik_width", WIDTH, "--no-hybrik_flip",
                 "--hybrik_model_files", hybrik_files.model_files, *common, "--out", out / "torch.npz"]) == 0
    assert _run(["--hybrik_onnx", hybrik_files.onnx, *common, "--out", out / "onnx.npz"]) == 0
    return {"torch": _load(out / "torch.npz"), "onnx": _load(out / "onnx.npz")}


def test_checkpoint_path_runs_the_port_on_the_frames(both_paths, clip: Clip, hybrik_files: HybrIKFiles) -> None:
    r = both_paths["torch"]
    assert set(r) == RESULT_KEYS
    assert r["vertices"].shape == r["input_vertices"].shape == (FRAMES, 6890, 3)
    assert r["pose_aa"].shape == (FRAMES, 72) and r["keypoints_3d"].shape == (FRAMES, 17, 3)
    # HybrIK's input equals the network run directly on HybrIK's crops of the same frames and boxes
    crops, bbox, center = hybrik_batch(clip.images, np.load(clip.boxes))
    with torch.no_grad():
        out = hybrik_files.model(torch.from_numpy(crops).permute(0, 3, 1, 2), torch.from_numpy(bbox),
                                 torch.from_numpy(center), flip_test=False)
    np.testing.assert_allclose(r["input_rot_mat"].reshape(FRAMES, 216), out["pred_theta_mats"].numpy(), atol=1e-4)
    np.testing.assert_allclose(r["input_betas"], out["pred_shape"].numpy(), atol=1e-5)
    np.testing.assert_allclose(r["input_transl"], out["transl"].numpy(), rtol=1e-5, atol=1e-5)
    # the camera of the frames: size from the images, focal 1000 / 256 * the expanded square box side
    np.testing.assert_array_equal(r["image_size"], np.tile([W, H], (FRAMES, 1)))
    side = np.float64(46 - 2) * SCALE_MULT  # boxes are 16 x 44 px: the taller side, enlarged
    np.testing.assert_allclose(r["focal_px"], FOCAL_CROP_PX / CROP_PX * side, rtol=1e-6)
    settings = json.loads(str(r["settings"]))
    assert settings["hybrik"] == str(hybrik_files.checkpoint) and settings["boxes"] == str(clip.boxes)


def test_deployment_hybrik_runs_on_hybriks_files(hybrik_files: HybrIKFiles) -> None:
    """deployment_hybrik.py exported (fixture) from HybrIK's model_files and checkpoint layout as they are; its
    verification prints every output's max difference at N=1 and N=3, and the export time."""
    printed = hybrik_files.export_stdout
    assert "with the torchscript exporter" in printed  # the default
    assert re.search(r"in \d+\.\d s with the torchscript exporter", printed)
    table = {line.split()[0]: line.split()[1:] for line in printed.splitlines() if line.startswith("  pred_")
             or line.startswith("  cam_") or line.startswith("  transl")}
    assert set(table) == set(EXPORT_OUTPUT_NAMES)
    for name, (n1, n3, tolerance, verdict) in table.items():
        assert verdict == "ok" and float(n1) <= float(tolerance) and float(n3) <= float(tolerance), name


def test_square_boxes_and_ready_crops_give_the_tight_box_result(both_paths, clip: Clip, hybrik_files: HybrIKFiles,
                                                                 tiny_setup, tmp_path: Path) -> None:
    """--boxes of HybrIK's square crop boxes (--box_kind square) and --crops (the HybrIK ONNX's inputs in an
    npz, no frames) give what the tight boxes gave."""
    crops, square, center = hybrik_batch(clip.images, np.load(clip.boxes))  # independent: the tight-box transform
    np.save(tmp_path / "square.npy", square)
    np.savez(tmp_path / "crops.npz", input_image=crops, bbox=square, image_center=center)
    ckpt = ["--checkpoint_file", tiny_setup.checkpoint]
    assert _run(["--hybrik_onnx", hybrik_files.onnx, "--frames", clip.folder, "--boxes", tmp_path / "square.npy",
                 "--box_kind", "square", *ckpt, "--out", tmp_path / "square.npz"]) == 0
    assert _run(["--hybrik_onnx", hybrik_files.onnx, "--crops", tmp_path / "crops.npz", *ckpt,
                 "--out", tmp_path / "crops.npz.out.npz"]) == 0
    reference = both_paths["onnx"]
    for name, tol in (("square.npz", 1e-4), ("crops.npz.out.npz", 1e-6)):
        r = _load(tmp_path / name)
        np.testing.assert_allclose(r["input_rot_mat"], reference["input_rot_mat"], atol=tol, err_msg=name)
        np.testing.assert_allclose(r["input_transl"], reference["input_transl"], atol=tol, err_msg=name)
        np.testing.assert_allclose(r["focal_px"], reference["focal_px"], rtol=1e-6, err_msg=name)
        np.testing.assert_array_equal(r["image_size"], reference["image_size"])
    settings = json.loads(str(_load(tmp_path / "crops.npz.out.npz")["settings"]))
    assert settings["box_kind"] == "square" and "crops.npz" in settings["boxes"]


def test_checkpoint_and_onnx_paths_agree(both_paths) -> None:
    a, b = both_paths["torch"], both_paths["onnx"]
    assert set(b) == RESULT_KEYS
    # An untrained HybrIK puts joints millimetres apart, where the IK turns float32 differences between the
    # runtimes into rotation differences of a few 1e-3 (lib.deploy.hybrik_export widens its check the same way);
    # what the rotations move (vertices, joints) agrees to a millimetre.
    np.testing.assert_allclose(b["input_rot_mat"], a["input_rot_mat"], atol=2e-2)
    np.testing.assert_allclose(b["rot_mat"], a["rot_mat"], atol=2e-2)  # after the refiner
    np.testing.assert_allclose(b["input_betas"], a["input_betas"], atol=1e-5)
    np.testing.assert_allclose(b["input_transl"], a["input_transl"], rtol=1e-5, atol=1e-5)  # m
    np.testing.assert_allclose(b["input_vertices"], a["input_vertices"], atol=1e-3)  # m
    np.testing.assert_allclose(b["vertices"], a["vertices"], atol=1e-3)  # m, after the refiner
    np.testing.assert_allclose(b["keypoints_3d"], a["keypoints_3d"], atol=1e-3)  # m
    np.testing.assert_allclose(b["keypoints_2d"], a["keypoints_2d"], atol=0.05)  # px
    np.testing.assert_array_equal(b["focal_px"], a["focal_px"])


def test_whole_frame_is_the_default_box_and_gif_frames_render(clip: Clip, hybrik_files: HybrIKFiles, tiny_setup,
                                                              tmp_path: Path, caplog) -> None:
    out, render = tmp_path / "gif.npz", tmp_path / "render"
    with caplog.at_level(logging.INFO):
        assert _run(["--hybrik_onnx", hybrik_files.onnx, "--frames", clip.gif, "--checkpoint_file",
                     tiny_setup.checkpoint, "--render", render, "--render_every", 2, "--out", out]) == 0
    assert any("no --boxes: each frame's person box is the whole frame" in m for m in caplog.messages)
    r = _load(out)
    assert json.loads(str(r["settings"]))["boxes"] == "whole frame"
    # whole frame [0, 0, 64, 48]: square side 64 (the wider side) x 1.25
    np.testing.assert_allclose(r["focal_px"], FOCAL_CROP_PX / CROP_PX * W * SCALE_MULT, rtol=1e-6)
    whole = np.tile([0.0, 0.0, W, H], (FRAMES, 1))
    session = onnx_session(hybrik_files.onnx)
    crops, bbox, center = hybrik_batch(clip.images, whole)
    theta, transl = session.run(["pred_theta_mats", "transl"],
                                {"input_image": crops, "bbox": bbox, "image_center": center})
    np.testing.assert_allclose(r["input_rot_mat"].reshape(FRAMES, 216), theta, atol=1e-5)
    np.testing.assert_allclose(r["input_transl"], transl, rtol=1e-5, atol=1e-6)
    pngs = sorted(render.glob("frame_*.png"))
    assert len(pngs) == 3 and (render / "render.gif").is_file()  # frames 0, 2, 4
    panel = np.asarray(Image.open(pngs[0]).convert("RGB"))
    assert panel.shape == (H, 2 * W, 3)
    np.testing.assert_array_equal(panel[0, 0], clip.images[0][0, 0])  # the GIF's first frame is the background


def test_video_frames_from_folder_gif_and_image(clip: Clip, tmp_path: Path) -> None:
    folder = read_video_frames(clip.folder)
    assert folder.names == tuple(f"{f:06d}.png" for f in range(FRAMES))
    np.testing.assert_array_equal(folder.sizes, np.tile([W, H], (FRAMES, 1)))
    gif = read_video_frames(clip.gif)
    assert len(gif) == FRAMES
    for expected, a, b in zip(clip.images, folder.read(), gif.read()):
        np.testing.assert_array_equal(a, expected)
        np.testing.assert_array_equal(b, expected)
    np.testing.assert_array_equal(next(gif.read([3])), clip.images[3])
    single = read_video_frames(clip.folder / "000002.png")
    assert len(single) == 1 and np.array_equal(next(single.read()), clip.images[2])
    np.testing.assert_array_equal(whole_frame_boxes(np.array([[64.0, 48.0], [30.0, 20.0]])),
                                  [[0, 0, 64, 48], [0, 0, 30, 20]])
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="no image files"):
        read_video_frames(tmp_path / "empty")
    with pytest.raises(DataError, match="frames not found"):
        read_video_frames(tmp_path / "missing")


def test_user_errors_are_one_line_exit_2(clip: Clip, hybrik_files: HybrIKFiles, tiny_setup, tmp_path: Path,
                                         capsys) -> None:
    (tmp_path / "clip.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42")
    ckpt, out = ["--checkpoint_file", tiny_setup.checkpoint], ["--out", tmp_path / "x.npz"]
    cases = [
        (["--hybrik_onnx", hybrik_files.onnx, "--frames", tmp_path / "clip.mp4", *ckpt, *out],
         f"a video file goes to --video {tmp_path / 'clip.mp4'}"),
        (["--hybrik_checkpoint", hybrik_files.checkpoint, *ckpt, *out], "--hybrik_checkpoint needs --frames"),
        (["--hybrik_onnx", hybrik_files.onnx, "--frames", clip.folder, "--hybrik_width", 18, *ckpt, *out],
         "apply to --hybrik_checkpoint only"),
        (["--hybrik_checkpoint", hybrik_files.checkpoint, "--frames", clip.folder, *ckpt, *out],
         "tensor(s) with another shape"),  # width 48 by default: the file is a width-18 port
        (["--hybrik_checkpoint", hybrik_files.checkpoint, "--hybrik_width", 18, "--frames", clip.folder,
          "--hybrik_model_files", tmp_path, *ckpt, *out], "basicModel_neutral_lbs_10_207_0_v1.0.0.pkl"),
        (["--hybrik_onnx", hybrik_files.onnx, "--frames", clip.folder, "--box_kind", "square", *ckpt, *out],
         "--box_kind square describes --boxes"),
        (["--hybrik_onnx", hybrik_files.onnx, "--frames", clip.folder, "--boxes", clip.boxes, "--box_kind", "square",
          *ckpt, *out], "not square"),
        (["--hybrik_onnx", hybrik_files.onnx, "--crops", tmp_path / "clip.mp4", *ckpt, *out], "cannot read crops"),
    ]
    for argv, message in cases:
        assert _run(argv) == 2, message
        err = capsys.readouterr().err
        assert message in err and err.count("\n") == 1, err
    assert not (tmp_path / "x.npz").exists()

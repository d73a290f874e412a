"""The ``deployment/infer_mesh.py`` command line: refine HybrIK's predictions of a new video.

``main(argv)`` parses, turns user errors into one line on stderr and returns the exit code:
0 ok, 2 user error (bad flag or file), 130 interrupted. The steps are in ``lib.deploy.pipeline``.

HybrIK's per-frame predictions come from one of three sources: a results file (``--hybrik``), or the
video's frames (``--frames``: an image folder or a GIF; ``--video``: a video file, decoded by
``lib.deploy.video``; with ``--boxes`` or the whole frame as each frame's person box: tight boxes, or
HybrIK's square crop boxes with ``--box_kind square``) or ready crops (``--crops``: the HybrIK ONNX's three
inputs in an npz) through HybrIK, either our PyTorch port loaded from a checkpoint
(``--hybrik_checkpoint``, SMPL and ``J_regressor_h36m.npy`` from HybrIK's ``model_files/`` as they are:
``--hybrik_model_files``) or an exported ONNX (``--hybrik_onnx``). Every frame-based source runs the same
function, ``lib.deploy.hybrik_run.hybrik_predict``.

Frames where HybrIK or the 2D keypoints lost the person are bridged from their neighbours and flagged
in the npz's ``valid`` (``--on_invalid bridge``, default) or refused in one line (``--on_invalid error``);
see ``lib.deploy.invalid_frames``. A file that cannot be written is one ``WriteError`` line (exit 2).
``--export`` writes the motion as animation files too (``lib.deploy.animation``: glTF binary, BVH).

``--online --lookahead K`` streams the frames through the refiner one at a time (``lib.deploy.stream``):
frame f is refined once frame f + K has arrived; the summary adds the delay and the refiner's time per frame.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from tqdm import tqdm

from lib.deploy.inputs import (
    VIDEO_HINT,
    HybrIKCrops,
    HybrIKSequence,
    VideoFrames,
    hybrik_sequence_from_mapping,
    read_boxes,
    read_hybrik_crops,
    read_hybrik_results,
    read_keypoints_2d,
    read_video_frames,
    whole_frame_boxes,
)
from lib.deploy.invalid_frames import ON_INVALID, bridge_linear, check_frames, keypoint_issues
from lib.errors import ConfigError, DataError, RefineError
from lib.hybrik.model import HRNET_WIDTH

if TYPE_CHECKING:
    from lib.deploy.video import VideoFile

log = logging.getLogger("infer_mesh")

EPILOG = """examples:
  # HybrIK's own video results (scripts/demo_video.py --save-pk), 2D from projecting HybrIK's joints
  python deployment/infer_mesh.py --hybrik res.pk --checkpoint_file best_epoch.bin --out refined.npz
  # with ViTPose / mmpose COCO-17 keypoints, from the exported ONNX, rendered next to HybrIK
  python deployment/infer_mesh.py --hybrik res.pk --keypoints2d vitpose.json --onnx refine.onnx \\
      --data_root data/mesh --frames frames/ --render render/ --out refined.npz
  # frames + person boxes through a HybrIK ONNX (input_image, bbox, image_center -> pred_theta_mats, ...)
  python deployment/infer_mesh.py --hybrik_onnx hybrik.onnx --frames frames/ --boxes boxes.npy \\
      --checkpoint_file best_epoch.bin --out refined.npz
  # HybrIK's released weights run in PyTorch, on a GIF, the whole frame as the person box; SMPL and
  # J_regressor_h36m.npy from HybrIK's own model_files/ folder as it is
  python deployment/infer_mesh.py --hybrik_checkpoint pretrained_models/hybrik_hrnet.pth --frames clip.gif \\
      --hybrik_model_files HybrIK/model_files --checkpoint_file best_epoch.bin --render render/ --out refined.npz
  # crops already made the HybrIK way: np.savez('crops.npz', input_image=..., bbox=..., image_center=...)
  python deployment/infer_mesh.py --hybrik_onnx hybrik.onnx --crops crops.npz --checkpoint_file best_epoch.bin \\
      --out refined.npz
  # a video file (fps from the container), the motion also as animation files for Blender / web viewers
  python deployment/infer_mesh.py --hybrik_onnx hybrik.onnx --video clip.mp4 --onnx refine.onnx \\
      --data_root data/mesh --out refined.npz --export refined.glb refined.bvh
  # online: each frame refined 4 frames after it arrives (0 = causal)
  python deployment/infer_mesh.py --hybrik res.pk --onnx refine.onnx --data_root data/mesh --online --lookahead 4 \\
      --out refined.npz"""
DESCRIPTION = ("Refine HybrIK's per-frame SMPL predictions of a video with the temporal refiner (overlapping "
               "windows, stitched), write the meshes in HybrIK's camera frame to an npz, optionally render them.")
AUTO_DEPTH_M = 3.0          # camera distance when the results carry no translation (render only)
AUTO_FOCAL_PER_HEIGHT = 1.2  # focal = this x image height, for the same case
AUTO_SIZE = (512, 512)
DEFAULT_LOOKAHEAD = 4       # --online: frames of delay (133 ms at 30 fps)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="infer_mesh.py", description=DESCRIPTION, epilog=EPILOG,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    source = parser.add_argument_group("HybrIK stage (one of)")
    first = source.add_mutually_exclusive_group(required=True)
    first.add_argument("--hybrik", type=Path, metavar="FILE",
                       help="HybrIK results: res.pk from demo_video.py --save-pk, or .npz / .json with pose_aa "
                            "(F,72) or rot_mat (F,216) plus betas (F,10) [transl, bbox, width, height optional]")
    first.add_argument("--hybrik_onnx", type=Path, metavar="MODEL",
                       help="run this HybrIK ONNX (inputs input_image [N,256,256,3], bbox [N,4], image_center [N,2]) "
                            "on --frames")
    first.add_argument("--hybrik_checkpoint", type=Path, metavar="FILE",
                       help="run HybrIK (HRNet with camera, our PyTorch port) with these weights on --frames: "
                            "HybrIK's released hybrik_hrnet.pth or a state_dict of the port (loaded strictly); "
                            "SMPL and J_regressor_h36m.npy come from --hybrik_model_files")
    source.add_argument("--frames", type=Path, metavar="DIR|GIF",
                        help="the video's frames: a folder of png/jpg (sorted by name), an animated .gif or one "
                             "image; HybrIK's input with --hybrik_onnx / --hybrik_checkpoint, and the background "
                             "of --render. Video files go to --video")
    source.add_argument("--video", type=Path, metavar="FILE",
                        help="the video as a file (.mp4, .mov, .mkv, .avi, .webm, ...: whatever FFmpeg decodes, "
                             "through PyAV), decoded one frame at a time; used as --frames is, and its frame rate "
                             "is the npz's fps unless --fps is given")
    source.add_argument("--crops", type=Path, metavar="FILE.npz",
                        help="instead of --frames / --video: crops already made and normalised the HybrIK way, an "
                             "npz with the HybrIK ONNX's inputs input_image (F,256,256,3), bbox (F,4) square crop "
                             "boxes xyxy px and image_center (F,2) px")
    source.add_argument("--boxes", type=Path, metavar="FILE",
                        help="one person box per frame, xyxy px (.npy, .txt or .json (F, 4)); with --hybrik_onnx "
                             "or --hybrik_checkpoint and --frames (default: the whole frame)")
    source.add_argument("--box_kind", choices=("tight", "square"), default="tight",
                        help="tight: --boxes are person boxes (a detector's), padded to a square and enlarged x1.25 "
                             "as HybrIK does (default); square: --boxes are HybrIK's own crop boxes (res.pk 'bbox'), "
                             "cropped as they are")
    source.add_argument("--hybrik_model_files", type=Path, default=None, metavar="DIR",
                        help="HybrIK's model_files/ as they are (basicModel_neutral_lbs_10_207_0_v1.0.0.pkl, "
                             "J_regressor_h36m.npy) for --hybrik_checkpoint, and HybrIK's pelvis for the placement "
                             "(default: --data_root, which may hold the same files)")
    source.add_argument("--hybrik_width", type=int, default=None, metavar="W",
                        help=f"HRNet width of --hybrik_checkpoint (default {HRNET_WIDTH}, HybrIK's released weights)")
    source.add_argument("--hybrik_flip", action=argparse.BooleanOptionalAction, default=None,
                        help="flip test of --hybrik_checkpoint (default on, as HybrIK's demo; an ONNX has its "
                             "flip test baked in at export)")
    kp = parser.add_argument_group("2D keypoints (optional: default is HybrIK's joints projected with its camera)")
    kp.add_argument("--keypoints2d", type=Path, metavar="FILE",
                    help="2D keypoints per frame: .npy/.npz (F,17,2|3) or mmpose / ViTPose / AlphaPose .json")
    kp.add_argument("--keypoints_layout", choices=("coco", "h36m"), default="coco",
                    help="joint order of --keypoints2d: COCO-17 (mmpose, ViTPose; default) or H36M-17")
    kp.add_argument("--image_size", type=int, nargs=2, metavar=("W", "H"),
                    help="video frame size px, when the HybrIK results do not record it")
    model = parser.add_argument_group("refiner (one of)")
    which = model.add_mutually_exclusive_group(required=True)
    which.add_argument("--checkpoint_file", "--evaluate", dest="checkpoint_file", type=Path, metavar="CKPT",
                       help="a checkpoint written by train_mesh_refine.py (its configs are stored in it); "
                            "--evaluate is accepted as in the seed commands")
    which.add_argument("--onnx", type=Path, metavar="MODEL", help="a refiner exported by deployment_mesh.py")
    model.add_argument("--data_root", type=Path, default=None,
                       help="folder with SMPL_NEUTRAL.pkl and the regressors (default: the checkpoint's data_root; "
                            "data/mesh with --onnx)")
    model.add_argument("--flip", action=argparse.BooleanOptionalAction, default=None,
                       help="flip test-time augmentation (default: as the checkpoint's config)")
    model.add_argument("--overlap", type=int, default=None,
                       help="frames shared by consecutive windows (default clip_len // 2)")
    model.add_argument("--sample_stride", type=int, default=None,
                       help="temporal stride: each of the s phases (frames p, p+s, ...) is refined at the "
                            "training frame rate, then interleaved (default: the checkpoint's sample_stride)")
    model.add_argument("--device", default="cpu", help="torch device for --checkpoint_file (default cpu)")
    model.add_argument("--threads", type=int, default=2, help="onnxruntime threads (default 2)")
    invalid = parser.add_argument_group("invalid frames (HybrIK lost the person, a missing or non-finite estimate, "
                                        "an empty box, 2D with every confidence 0)")
    invalid.add_argument("--on_invalid", choices=ON_INVALID, default="bridge",
                         help="bridge: interpolate them from the nearest valid frames (rotations by slerp, the rest "
                              "linearly, held at the ends) and flag them in the npz's 'valid' (default); error: stop "
                              "with one line naming the file and the first invalid frames")
    add_online_arguments(parser)
    out = parser.add_argument_group("output")
    out.add_argument("--out", type=Path, required=True, metavar="FILE.npz", help="the npz to write")
    out.add_argument("--fps", type=float, default=None, help="frame rate stored in the npz (default: file's, else 30)")
    out.add_argument("--render", type=Path, default=None, metavar="DIR",
                     help="write PNG frames (HybrIK | refined, side by side) and render.gif here")
    out.add_argument("--render_every", type=int, default=1, help="render every k-th frame (default 1)")
    out.add_argument("--render_width", type=int, default=640, help="max width of each rendered panel px (default 640)")
    out.add_argument("--export", type=Path, nargs="+", action="extend", default=[], metavar="FILE",
                     help="also write the motion as animation files: .glb (glTF 2.0 binary: the SMPL mesh skinned to "
                          "its 24 joints, refined and HybrIK input as two characters) and/or .bvh (the refined SMPL "
                          "skeleton); Y up, metres, the camera at the origin looking down -Z")
    return parser


def add_online_arguments(parser: argparse.ArgumentParser) -> None:
    """--online / --lookahead: the refiner run as a stream (``lib.deploy.stream``)."""
    online = parser.add_argument_group("online refinement (frames refined one at a time, as a live source gives them)")
    online.add_argument("--online", action=argparse.BooleanOptionalAction, default=False,
                        help="stream the frames through the refiner one at a time: frame f is refined as soon as "
                             "frame f + K has arrived, with the offline result of the frames seen so far; the "
                             "summary reports the refiner's time per frame (p50 / p99)")
    online.add_argument("--lookahead", type=int, default=None, metavar="K",
                        help=f"with --online: frames each output waits for (0 = causal; default {DEFAULT_LOOKAHEAD}); "
                             "K >= clip_len x sample_stride gives the offline result")


def online_timing(lookahead: int, push_seconds: list[float], fps: float) -> dict[str, Any]:
    """The summary's --online entries: the delay the lookahead adds and the refiner's time per frame."""
    ms = np.asarray(push_seconds) * 1e3
    return {"delay_s": round(lookahead / fps, 4),
            "refiner_ms_per_frame": {q: round(float(np.percentile(ms, int(q[1:]))), 3) if len(ms) else None
                                     for q in ("p50", "p99")}}


def _lookahead(args: argparse.Namespace) -> int | None:
    """K with --online, None offline."""
    if not args.online:
        return None
    return DEFAULT_LOOKAHEAD if args.lookahead is None else args.lookahead


def _hybrik_flag(args: argparse.Namespace) -> str:
    """The HybrIK source flag given (for messages)."""
    return next(f"--{name}" for name in ("hybrik", "hybrik_onnx", "hybrik_checkpoint") if getattr(args, name))


def _check_flags(args: argparse.Namespace) -> None:
    from lib.deploy.animation import check_export_paths

    from_frames = args.hybrik is None
    if args.frames is not None and args.video is not None:
        raise ConfigError(f"--frames {args.frames} and --video {args.video}: give the video's frames once, as an "
                          "image folder / GIF (--frames) or as a video file (--video)")
    if from_frames and args.frames is None and args.video is None and args.crops is None:
        raise ConfigError(f"{_hybrik_flag(args)} needs --frames (a folder of png/jpg frames or a .gif), "
                          f"{VIDEO_HINT.format(path='FILE')} (--boxes FILE is optional, the whole frame by default) "
                          "or --crops FILE.npz")
    check_export_paths(args.export)
    if not from_frames and (args.boxes is not None or args.crops is not None):
        raise ConfigError("--boxes and --crops are only used with --hybrik_onnx or --hybrik_checkpoint; HybrIK's "
                          "res.pk already holds its boxes")
    if args.crops is not None and args.boxes is not None:
        raise ConfigError("--crops holds its square boxes ('bbox'); --boxes goes with --frames or --video")
    if args.box_kind != "tight" and args.boxes is None:
        raise ConfigError(f"--box_kind {args.box_kind} describes --boxes FILE; give --boxes with --frames or --video")
    if args.hybrik_checkpoint is None and (args.hybrik_width is not None or args.hybrik_flip is not None):
        raise ConfigError(f"--hybrik_width and --hybrik_flip apply to --hybrik_checkpoint only, not to "
                          f"{_hybrik_flag(args)}")
    if args.hybrik_width is not None and args.hybrik_width < 1:
        raise ConfigError(f"--hybrik_width {args.hybrik_width}: expected the HRNet width, e.g. {HRNET_WIDTH}")
    if args.out.suffix.lower() != ".npz":
        raise ConfigError(f"--out {args.out}: expected a file name ending in .npz")
    if args.overlap is not None and args.overlap < 0:
        raise ConfigError(f"--overlap {args.overlap}: expected >= 0 (and < clip_len)")
    if args.sample_stride is not None and args.sample_stride < 1:
        raise ConfigError(f"--sample_stride {args.sample_stride}: expected >= 1")
    if args.lookahead is not None and (not args.online or args.lookahead < 0):
        raise ConfigError(f"--lookahead {args.lookahead}: expected K >= 0 together with --online")
    if args.render_every < 1 or args.render_width < 16 or args.threads < 1:
        raise ConfigError("--render_every and --threads must be >= 1, --render_width >= 16")


def _load_refiner(args: argparse.Namespace):
    """(Refiner, BodyModel, data_root)."""
    from lib.body.smpl import BodyModel
    from lib.deploy.model_io import load_refiner_from_checkpoint
    from lib.deploy.pipeline import refiner_from_model, refiner_from_onnx

    if args.onnx is not None:
        data_root = args.data_root if args.data_root is not None else Path("data/mesh")
        return refiner_from_onnx(args.onnx, args.threads), BodyModel(data_root), data_root
    model, task_cfg, _ = load_refiner_from_checkpoint(args.checkpoint_file, args.data_root, args.device)
    refiner = refiner_from_model(model, task_cfg, f"checkpoint:{args.checkpoint_file}", args.device)
    body = model.body_model if str(args.device) == "cpu" else BodyModel(task_cfg.data_root)  # SMPL runs on the CPU
    return refiner, body, Path(task_cfg.data_root)


def _open_video(args: argparse.Namespace) -> VideoFrames | VideoFile | None:
    """The video's frames: an image folder / GIF (``--frames``), a video file (``--video``), or None."""
    if args.frames is not None:
        return read_video_frames(args.frames)
    if args.video is not None:
        from lib.deploy.video import read_video_file

        return read_video_file(args.video)
    return None


def _hybrik_from_frames(args: argparse.Namespace, video: VideoFrames | VideoFile | None, crops: HybrIKCrops | None,
                        model_files: Path) -> HybrIKSequence:
    """The video's frames and person boxes (or ready crops) through HybrIK (PyTorch checkpoint or ONNX) ->
    its predictions.

    The one frame-based path: both sources run ``lib.deploy.hybrik_run.hybrik_predict`` (HybrIK's test
    transform, batches, HybrIK's ``res.pk`` layout); ``model_files`` is HybrIK's folder (SMPL and its regressor).
    """
    from lib.deploy.hybrik_onnx import HybrIKOnnx
    from lib.deploy.hybrik_run import hybrik_predict

    if crops is not None:
        images, boxes, inputs, names = list(crops.images), crops.bbox, "crops", [f"{i:06d}" for i in range(len(crops))]
    elif args.boxes is not None:
        boxes = read_boxes(args.boxes, len(video))
    else:
        boxes = whole_frame_boxes(video.sizes)
        width, height = (int(v) for v in video.sizes[0])
        log.info("no --boxes: each frame's person box is the whole frame (%d x %d px for the first); pass --boxes "
                 "FILE (a person detector's xyxy boxes) when the person fills only part of the frame", width, height)
    if crops is None:
        images, names = video.read(), list(video.names)
        inputs = "square_boxes" if args.box_kind == "square" else "frames"
    if args.hybrik_checkpoint is not None:
        from lib.hybrik.checkpoint import load_hybrik_checkpoint
        from lib.hybrik.model import build_hybrik

        model = build_hybrik(model_files, width=args.hybrik_width or HRNET_WIDTH)
        load_hybrik_checkpoint(model, args.hybrik_checkpoint)
        model = model.to(args.device).eval()
        source = args.hybrik_checkpoint
    else:
        model = HybrIKOnnx(args.hybrik_onnx, args.threads).session  # checked against the seed's I/O
        source = args.hybrik_onnx
    flip = args.hybrik_flip is not False
    # A progress bar over the frames as they are decoded and run, cleared at the end or at an error (so that
    # the error stays one line); position 0: the command's only bar, even if a caller left one open.
    with tqdm(images, total=len(boxes), desc="HybrIK", unit="frame", leave=False, position=0,
              dynamic_ncols=True) as frames:
        res = hybrik_predict(frames, boxes, model, inputs=inputs,
                             image_sizes=None if crops is None else crops.sizes, flip_test=flip, frame_names=names)
    return hybrik_sequence_from_mapping(res, source, frame_indices=False)  # one entry per frame, by construction


def _render(args: argparse.Namespace, arrays: dict[str, np.ndarray], video: VideoFrames | VideoFile | None,
            fps: float) -> list[Path]:
    """PNG frames (HybrIK | refined), written one at a time, then ``render.gif`` from them."""
    from lib.deploy.render import GIF_NAME, PinholeCamera, save_gif, save_png, side_by_side

    frames = len(arrays["vertices"])
    known = "focal_px" in arrays and "image_size" in arrays and np.any(arrays["transl"])
    indices = range(0, frames, args.render_every)
    backgrounds = video.read(indices) if video is not None else (None for _ in indices)
    pngs = []
    for f, background in zip(indices, backgrounds):
        if known:
            width, height = (int(v) for v in arrays["image_size"][f])
            camera = PinholeCamera(float(arrays["focal_px"][f]), width, height)
            shift = np.zeros(3)
        else:  # no camera: a default view of the pelvis-centred meshes
            width, height = (int(v) for v in arrays["image_size"][f]) if "image_size" in arrays else AUTO_SIZE
            camera = PinholeCamera(AUTO_FOCAL_PER_HEIGHT * height, width, height)
            shift = np.array([0.0, 0.0, AUTO_DEPTH_M])
        image = side_by_side(background, camera, arrays["faces"], arrays["input_vertices"][f] + shift,
                             arrays["vertices"][f] + shift, max_panel_width=args.render_width,
                             keypoints_2d=arrays["keypoints_2d"][f] if known else None)
        pngs.append(save_png(image, args.render, f))
    return [*pngs, save_gif(pngs, args.render / GIF_NAME, fps / args.render_every)]


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Run the whole pipeline; returns a summary (frames, paths, settings)."""
    from lib.deploy import pipeline as pl

    _check_flags(args)
    refiner, body, data_root = _load_refiner(args)
    video = _open_video(args)
    model_files = args.hybrik_model_files if args.hybrik_model_files is not None else data_root
    if args.hybrik is None:
        crops = read_hybrik_crops(args.crops) if args.crops is not None else None
        if crops is not None and video is not None and len(video) != len(crops):
            raise DataError(f"{args.crops}: {len(crops)} crops but {video.source} has {len(video)} frames; give the "
                            "crops of the same video")
        seq = _hybrik_from_frames(args, video if crops is None else None, crops, model_files)
    else:
        seq = read_hybrik_results(args.hybrik)
    valid = check_frames(seq.issues or [""] * seq.frames, seq.source, args.on_invalid)  # (F,) HybrIK's frames
    seq = pl.bridge_sequence(seq)
    if video is not None and len(video) != seq.frames:
        raise DataError(f"{video.source}: {len(video)} frames but the HybrIK results have {seq.frames}; "
                        "give the frames of the same video")
    sizes = pl.image_sizes(seq, tuple(args.image_size) if args.image_size else None)
    if sizes is None and video is not None:
        sizes = video.sizes.copy()
    if args.overlap is not None and args.overlap >= refiner.clip_len:
        raise ConfigError(f"--overlap {args.overlap}: expected < clip_len ({refiner.clip_len})")

    regressor = pl.hybrik_pelvis_regressor(body, model_files)
    transl = seq.transl if seq.transl is not None else np.zeros((seq.frames, 3))
    placed_input = pl.place_smpl(body, regressor, seq.rot_mat, seq.betas, transl)
    if args.keypoints2d is not None:
        keypoints = read_keypoints_2d(args.keypoints2d, args.keypoints_layout, seq.frames, seq.bbox)
        valid_2d = check_frames(keypoint_issues(keypoints), str(args.keypoints2d), args.on_invalid)
        keypoints = bridge_linear(keypoints, valid_2d)  # (F, 17, 3) px + confidence
        valid = valid & valid_2d
    else:  # from the bridged HybrIK joints: valid where HybrIK is
        keypoints = pl.projected_keypoints(seq, sizes, placed_input.hybrik_17)
    pose2d = pl.network_pose2d(keypoints, sizes, refiner.in_channels, str(args.keypoints2d or seq.source))
    push_seconds: list[float] = []
    rot, betas = pl.refine(refiner, seq, pose2d, flip=args.flip, overlap=args.overlap, sample_stride=args.sample_stride,
                           lookahead=_lookahead(args), on_push=lambda _, seconds: push_seconds.append(seconds), body=body)
    placed_refined = pl.place_smpl(body, regressor, rot, betas, transl)
    fps = args.fps or getattr(video, "fps", None) or seq.fps or pl.DEFAULT_FPS  # a video file's container rate
    settings = {"refiner": refiner.description, "clip_len": refiner.clip_len,
                "sample_stride": args.sample_stride or refiner.sample_stride,
                "overlap": args.overlap if args.overlap is not None else refiner.clip_len // 2,
                "flip": refiner.flip if args.flip is None else args.flip,
                "keypoints_2d": str(args.keypoints2d) if args.keypoints2d else "projected HybrIK joints",
                "hybrik": str(args.hybrik or args.hybrik_onnx or args.hybrik_checkpoint),
                "on_invalid": args.on_invalid, "fit2d_prior": refiner.fit2d_prior,
                "fit2d_robust": refiner.fit2d_robust}
    if args.online:
        settings.update(online=True, lookahead=_lookahead(args))
    if args.hybrik is None:
        settings["boxes"] = (f"'bbox' of {args.crops}" if args.crops is not None else
                             str(args.boxes) if args.boxes is not None else "whole frame")
        settings["box_kind"] = "tight" if args.boxes is None and args.crops is None else (
            "square" if args.crops is not None else args.box_kind)
    arrays = pl.result_arrays(seq, rot, betas, placed_input, placed_refined, keypoints, pose2d, sizes,
                              body.faces, fps, settings, valid)
    path = pl.write_npz(args.out, arrays)
    exported = pl.export_animation(args.export, arrays, body, regressor)
    rendered = _render(args, arrays, video, fps) if args.render is not None else []
    timing = online_timing(settings["lookahead"], push_seconds, fps) if args.online else {}
    return {"frames": seq.frames, "invalid_frames": int((~valid).sum()), "out": str(path),
            "exported": [str(p) for p in exported], "rendered": [str(p) for p in rendered], **settings, **timing}


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        summary = run(args)
    except RefineError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted: the npz is written last, through a temporary file, so nothing partial is left",
              file=sys.stderr)
        return 130
    rendered = summary.pop("rendered")
    print(json.dumps(summary))
    if rendered:
        print(f"rendered {len(rendered)} files into {Path(rendered[0]).parent}")
    return 0

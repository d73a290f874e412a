"""Video files in, animation files out: decoding speed and memory against the video's length; export
time and file sizes against the number of frames.

    python -m benchmarks.bench_video            # 640 x 360 videos of 150, 600, 2400 frames; exports of 100, 1000
    python -m benchmarks.bench_video --quick    # a check that it runs: small videos, short exports

Decoding: each video is encoded with ``lib.deploy.video.write_video`` (H.264, x264 crf 18) from frames
of a moving figure, then read with ``read_video_file`` + ``VideoFile.read`` (what ``infer_mesh.py
--video`` feeds HybrIK) while the process's resident memory is sampled at every frame: the peak growth
over the memory before decoding, in MB and in decoded RGB frames, shows whether memory is flat in the
video's length (a 10-frame warm-up run first loads the codecs). Export:
``lib.deploy.pipeline.export_animation`` on the synthetic SMPL stand-in (the real model has the same
array sizes) with a random smooth motion: seconds to write a .glb (both characters) and a .bvh, and
their sizes.

Writes ``video.json`` and ``video.md`` under ``--out`` (``--quick``: ``--out``/quick).
"""

from __future__ import annotations

import argparse
import logging
import os
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from benchmarks import common

log = logging.getLogger("benchmarks.video")

LENGTHS, SIZE = (150, 600, 2400), (640, 360)
QUICK_LENGTHS, QUICK_SIZE = (30, 60), (160, 120)
EXPORT_FRAMES, QUICK_EXPORT_FRAMES = (100, 1000), (10,)
FPS = 30.0
MB = 1024 * 1024


def _rss_bytes() -> int:
    with open("/proc/self/statm", encoding="ascii") as handle:
        return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def moving_figure(count: int, width: int, height: int):
    """``count`` RGB frames of a bright block crossing a textured background, one at a time."""
    rng = np.random.default_rng(0)
    background = rng.integers(20, 80, (height, width, 3), dtype=np.uint8)
    for f in range(count):
        frame = background.copy()
        x = int((width - width // 8) * f / max(count - 1, 1))
        frame[height // 4: height - height // 8, x:x + width // 8] = (200, 170, 140)
        yield frame


def measure_decoding(folder: Path, count: int, size: tuple[int, int]) -> dict[str, Any]:
    from lib.deploy.video import read_video_file, write_video

    width, height = size
    start = time.perf_counter()
    path = write_video(moving_figure(count, width, height), folder / f"video_{count}.mp4", FPS)
    encode_s = time.perf_counter() - start
    start = time.perf_counter()
    video = read_video_file(path)
    before = peak = _rss_bytes()
    decoded = 0
    for _ in video.read():
        decoded += 1
        peak = max(peak, _rss_bytes())
    decode_s = time.perf_counter() - start
    growth = peak - before
    return {"frames": decoded, "width": width, "height": height, "file_mb": path.stat().st_size / MB,
            "encode_s": encode_s, "decode_fps": decoded / decode_s, "rss_growth_mb": growth / MB,
            "rss_growth_frames": growth / (width * height * 3)}


def measure_export(folder: Path, body, regressor: np.ndarray, frames: int) -> dict[str, Any]:
    from lib.deploy.pipeline import export_animation
    from lib.geometry.rotation import axis_angle_to_matrix

    rng = np.random.default_rng(frames)
    phases = rng.uniform(0, 2 * np.pi, (1, 24, 3))
    aa = 0.4 * np.sin(np.linspace(0, 8, frames)[:, None, None] + phases)  # (F, 24, 3) smooth motion
    aa[:, 0] += [np.pi, 0.0, 0.0]  # upright in the camera frame
    rot = axis_angle_to_matrix(torch.from_numpy(aa)).numpy()
    transl = np.tile([0.0, 0.2, 4.0], (frames, 1))
    arrays = {"rot_mat": rot, "betas": np.zeros((frames, 10)), "transl": transl, "input_rot_mat": rot,
              "input_betas": np.zeros((frames, 10)), "input_transl": transl, "valid": np.ones(frames, bool),
              "fps": np.float64(FPS)}
    timings = {}
    for suffix in (".glb", ".bvh"):
        path = folder / f"motion_{frames}{suffix}"
        start = time.perf_counter()
        export_animation([path], arrays, body, regressor)
        timings[suffix] = (time.perf_counter() - start, path.stat().st_size / MB)
    return {"frames": frames, "glb_s": timings[".glb"][0], "glb_mb": timings[".glb"][1],
            "bvh_s": timings[".bvh"][0], "bvh_mb": timings[".bvh"][1]}


def run(args: argparse.Namespace) -> dict[str, Any]:
    from lib.body.smpl import HYBRIK_H36M_REGRESSOR_FILE, BodyModel, load_joint_regressor
    from lib.body.synthetic import write_smpl_assets

    common.setup(args.threads)
    lengths, size = (QUICK_LENGTHS, QUICK_SIZE) if args.quick else (LENGTHS, SIZE)
    export_frames = QUICK_EXPORT_FRAMES if args.quick else EXPORT_FRAMES
    with tempfile.TemporaryDirectory(prefix="bench_video_") as tmp:
        folder = Path(tmp)
        measure_decoding(folder, 10, size)  # warm-up: FFmpeg's codecs and the allocator's first pages
        decoding = []
        for count in lengths:
            decoding.append(measure_decoding(folder, count, size))
            (folder / f"video_{count}.mp4").unlink()
            log.info("decoded %d frames: %s", count, decoding[-1])
        write_smpl_assets(folder / "smpl", seed=0, forms=("npz",))
        body = BodyModel(folder / "smpl")
        regressor = load_joint_regressor(folder / "smpl" / HYBRIK_H36M_REGRESSOR_FILE, 17)
        exports = [measure_export(folder, body, regressor, frames) for frames in export_frames]
    info = common.machine_info()
    result = {"decoding": decoding, "export": exports, "machine": info, "quick": args.quick}
    dec_rows = [[f"{d['frames']} frames {d['width']}x{d['height']}", d["file_mb"], d["encode_s"], d["decode_fps"],
                 d["rss_growth_mb"], d["rss_growth_frames"]] for d in decoding]
    dec_head = ["video (H.264 crf 18)", "file MB", "encode s", "decode frames/s", "peak RSS growth MB",
                "= RGB frames"]
    exp_rows = [[f"{e['frames']} frames", e["glb_s"], e["glb_mb"], e["bvh_s"], e["bvh_mb"]] for e in exports]
    exp_head = ["export", ".glb s", ".glb MB", ".bvh s", ".bvh MB"]
    text = (f"{common.text_table(dec_head, dec_rows)}\n\n{common.text_table(exp_head, exp_rows)}\n\n"
            f"{common.machine_line(info)}")
    md = (f"{common.markdown_table(dec_head, dec_rows)}\n\n{common.markdown_table(exp_head, exp_rows)}\n\n"
          f"Machine: {common.machine_line(info)}.\n")
    common.publish(common.results_dir(args.out, args.quick), "video", result, text, md)
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.bench_video", description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=common.RESULTS,
                        help="folder of video.json / video.md (default: benchmarks/results)")
    parser.add_argument("--threads", type=int, default=common.DEFAULT_THREADS, help="torch CPU threads (default 2)")
    parser.add_argument("--quick", action=argparse.BooleanOptionalAction, default=False,
                        help="small videos and a short export: a check that it runs (numbers mean nothing)")
    return common.run_cli(run, parser.parse_args(argv))


if __name__ == "__main__":
    raise SystemExit(main())

"""Video files in (lib.deploy.video, infer_mesh --video): an mp4 made here with PyAV runs end to end, its
frame rate comes from the container, decoding is lazy (memory flat in the length), and a corrupt,
truncated or unsupported file is one line naming it."""

from __future__ import annotations

import io
import json
import os
from pathlib import Path

import av
import numpy as np
import pygltflib
import pytest
from PIL import Image
from tqdm import tqdm

from lib.deploy.infer_cli import main
from lib.deploy.video import VideoFile, read_video_file, write_video
from lib.errors import ConfigError, DataError

FRAMES, W, H, FPS = 12, 64, 48, 24.0
CODEC_TOLERANCE = 4.0  # mean |decoded - source| grey levels of x264 at crf 18 on flat colours


def _run(argv: list[object]) -> int:
    return main([str(a) for a in argv])


def clip_frames(count: int = FRAMES, width: int = W, height: int = H) -> list[np.ndarray]:
    """A bright 'person' walking right over a dark floor (flat colours: little codec loss)."""
    images = []
    for f in range(count):
        image = np.full((height, width, 3), (30, 40, 50), dtype=np.uint8)
        x = 14 + 2 * f
        image[14:44, x:x + 12] = (200, 170, 140)
        image[4:13, x + 3:x + 9] = (230, 200, 180)
        images.append(image)
    return images


@pytest.fixture(scope="module")
def mp4(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_video(clip_frames(), tmp_path_factory.mktemp("video") / "clip.mp4", FPS)


def decode_with_pyav(path: Path) -> tuple[list[np.ndarray], float]:
    """Frames and rate read with PyAV directly (not through lib.deploy.video)."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        frames = [frame.to_ndarray(format="rgb24") for frame in container.decode(stream)]
        return frames, float(stream.average_rate)


def test_read_gives_the_encoded_frames_size_and_rate(mp4: Path) -> None:
    video = read_video_file(mp4)
    assert len(video) == FRAMES and video.fps == FPS and video.names[3] == "clip.mp4:000003"
    np.testing.assert_array_equal(video.sizes, np.tile([W, H], (FRAMES, 1)))
    frames = list(video.read())
    reference, rate = decode_with_pyav(mp4)
    assert rate == FPS and len(frames) == FRAMES
    for ours, theirs, source in zip(frames, reference, clip_frames()):
        np.testing.assert_array_equal(ours, theirs)
        assert np.abs(ours.astype(float) - source).mean() < CODEC_TOLERANCE
    picked = list(video.read([2, 5, 11]))
    for ours, f in zip(picked, (2, 5, 11)):
        np.testing.assert_array_equal(ours, reference[f])


def test_rate_is_the_containers(tmp_path: Path) -> None:
    for fps, path in ((30000 / 1001, tmp_path / "ntsc.mp4"), (12.5, tmp_path / "slow.mkv")):
        video = read_video_file(write_video(clip_frames(4), path, fps))
        assert video.fps == pytest.approx(fps, rel=1e-6) and len(video) == 4  # .mkv records no count: packets


def _rss_bytes() -> int:
    with open("/proc/self/statm", encoding="ascii") as handle:
        return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


@pytest.mark.skipif(not Path("/proc/self/statm").exists(), reason="reads the resident memory from /proc")
def test_decoding_is_lazy_memory_flat_in_length(tmp_path: Path) -> None:
    """Reading every frame of a 90-frame video grows the resident memory by a few frames (the decoder's
    buffers), not by the video: decoded frames live in FFmpeg's memory, so tracemalloc cannot see them."""
    width, height, count = 640, 480, 90
    video = read_video_file(write_video(clip_frames(count, width, height), tmp_path / "long.mp4", FPS))
    before = peak = _rss_bytes()
    decoded = 0
    for _ in video.read():
        decoded += 1
        peak = max(peak, _rss_bytes())
    assert decoded == count
    growth_frames = (peak - before) / (width * height * 3)
    assert growth_frames < 20, growth_frames  # ~7 measured; holding the decoded video would be ~50


def test_corrupt_truncated_unsupported_files_are_one_line(mp4: Path, tmp_path: Path) -> None:
    garbage = tmp_path / "garbage.mp4"
    garbage.write_bytes(b"this is not a video " * 100)
    truncated = tmp_path / "truncated.mp4"  # mp4 writes its index last: half a file has none
    truncated.write_bytes(mp4.read_bytes()[: mp4.stat().st_size // 2])
    audio = tmp_path / "tone.wav"
    with av.open(str(audio), "w") as container:
        stream = container.add_stream("pcm_s16le", rate=8000)
        tone = (3000 * np.sin(np.arange(800) / 5)).astype(np.int16)[None]  # (1, samples)
        frame = av.AudioFrame.from_ndarray(tone, format="s16", layout="mono")
        frame.sample_rate = 8000
        for packet in [*stream.encode(frame), *stream.encode()]:
            container.mux(packet)
    cases = [(garbage, "not a video FFmpeg can read"), (truncated, "not a video FFmpeg can read"),
             (audio, "no video stream (streams: audio)"), (tmp_path / "missing.mp4", "video file not found")]
    for path, message in cases:
        with pytest.raises(DataError) as error:
            read_video_file(path)
        assert str(error.value).startswith(f"{path}: ") and message in str(error.value)
        assert "\n" not in str(error.value)


def test_a_stream_that_breaks_off_is_one_line(mp4: Path) -> None:
    video = read_video_file(mp4)
    longer = VideoFile(source=mp4, names=video.names + ("clip.mp4:000012",), sizes=np.tile([W, H], (13, 1)), fps=FPS)
    with pytest.raises(DataError, match=rf"{mp4}: the stream ends after 12 frames but the container announced 13"):
        list(longer.read())
    with pytest.raises(DataError, match="frame indices must increase"):
        list(video.read([3, 2]))


def test_write_video_checks_its_input(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot write '.gif' video"):
        write_video(clip_frames(2), tmp_path / "x.gif", FPS)
    with pytest.raises(DataError, match="even W, H"):
        write_video([np.zeros((47, 64, 3), np.uint8)], tmp_path / "odd.mp4", FPS)
    assert not list(tmp_path.iterdir())  # nothing half-written


def test_video_runs_end_to_end_as_its_frames_and_exports(mp4: Path, hybrik_standin: Path, tiny_setup,
                                                         tmp_path: Path, capsys) -> None:
    """--video gives exactly what --frames gives on the same decoded frames, with the container's fps,
    a progress bar, and the animation files."""
    out, glb, bvh = tmp_path / "video.npz", tmp_path / "video.glb", tmp_path / "video.bvh"
    common = ["--hybrik_onnx", hybrik_standin, "--checkpoint_file", tiny_setup.checkpoint]
    assert _run([*common, "--video", mp4, "--out", out, "--export", glb, bvh]) == 0
    captured = capsys.readouterr()
    summary = json.loads(captured.out.strip().splitlines()[-1])
    assert summary["frames"] == FRAMES and summary["exported"] == [str(glb), str(bvh)]
    assert f"HybrIK:   0%|          | 0/{FRAMES} [" in captured.err  # the progress bar (cleared at the end)
    folder = tmp_path / "frames"
    folder.mkdir()
    for i, frame in enumerate(decode_with_pyav(mp4)[0]):
        Image.fromarray(frame).save(folder / f"{i:06d}.png")
    assert _run([*common, "--frames", folder, "--out", tmp_path / "frames.npz"]) == 0
    with np.load(out) as from_video, np.load(tmp_path / "frames.npz") as from_frames:
        assert float(from_video["fps"]) == FPS and float(from_frames["fps"]) == 30.0  # the container's rate / default
        assert from_video["vertices"].shape == (FRAMES, 6890, 3)
        for key in ("input_rot_mat", "input_transl", "rot_mat", "betas", "vertices", "image_size"):
            np.testing.assert_array_equal(from_video[key], from_frames[key], err_msg=key)
    gltf = pygltflib.GLTF2().load(str(glb))
    times = gltf.accessors[gltf.animations[0].samplers[0].input]
    assert times.count == FRAMES and times.max[0] == pytest.approx((FRAMES - 1) / FPS)
    assert f"Frames: {FRAMES}" in bvh.read_text() and f"Frame Time: {1 / FPS:.8f}" in bvh.read_text()
    assert _run([*common, "--video", mp4, "--fps", 50, "--out", out]) == 0
    with np.load(out) as r:
        assert float(r["fps"]) == 50.0  # --fps wins


def test_video_user_errors_are_one_line_exit_2(mp4: Path, hybrik_standin: Path, synthetic_video, tiny_setup,
                                               tmp_path: Path, capsys) -> None:
    (tmp_path / "broken.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42" + b"\x00" * 64)
    ckpt, out = ["--checkpoint_file", tiny_setup.checkpoint], ["--out", tmp_path / "x.npz"]
    cases = [
        (["--hybrik_onnx", hybrik_standin, "--video", tmp_path / "broken.mp4", *ckpt, *out],
         f"{tmp_path / 'broken.mp4'}: not a video FFmpeg can read"),
        (["--hybrik_onnx", hybrik_standin, "--video", mp4, "--frames", tmp_path, *ckpt, *out],
         "give the video's frames once"),
        (["--hybrik_onnx", hybrik_standin, "--frames", mp4, *ckpt, *out], f"a video file goes to --video {mp4}"),
        (["--hybrik", synthetic_video.folder / "res.pk", "--video", mp4, *ckpt, *out],
         f"{mp4}: {FRAMES} frames but the HybrIK results have"),
        (["--hybrik_onnx", hybrik_standin, "--video", mp4, *ckpt, *out, "--export", tmp_path / "x.fbx"],
         "expected a file name ending in .glb or .bvh"),
        (["--hybrik_onnx", hybrik_standin, "--video", mp4, "--boxes", tmp_path / "empty.npy", *ckpt, *out],
         "HybrIK ran on no frame"),  # after the progress bar: it is cleared, the error stays one line
    ]
    np.save(tmp_path / "empty.npy", np.zeros((FRAMES, 4)))
    with tqdm(total=1, file=io.StringIO()):  # a bar some caller left open: ours still clears its line
        for argv, message in cases:
            assert _run(argv) == 2, message
            err = capsys.readouterr().err
            assert message in err and err.count("\n") == 1, err
    assert not (tmp_path / "x.npz").exists()

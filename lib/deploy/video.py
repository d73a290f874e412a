"""Video files in: decoding with PyAV (FFmpeg's libraries, bundled in its PyPI wheels), one frame at a time.

``read_video_file`` opens a video (any container and codec FFmpeg reads: .mp4, .mov, .mkv, .avi,
.webm, ...) and reads its frame count, frame size and frame rate from the container (where the
container records no frame count, its packets are counted without decoding them);
``VideoFile.read`` then decodes the frames lazily, so memory stays flat in the video's length (one
decoded frame at a time, plus the decoder's own few reference frames). It has the interface of
``lib.deploy.inputs.VideoFrames`` (image folders, GIFs): ``names``, ``sizes``, ``len``, ``read``, plus
``fps``, so ``infer_mesh.py --video`` runs the same frames path through HybrIK as ``--frames``.

``write_video`` encodes frames to a file with the same library (the tests' clips; the benchmark's).

A file FFmpeg cannot open, one without a video stream, or one whose stream breaks off while decoding
is one ``DataError`` line naming the file.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Iterable, Iterator

import av
import numpy as np

from lib.atomic_write import atomic_open
from lib.errors import ConfigError, DataError

log = logging.getLogger(__name__)

FRAME_NAME = "{stem}:{index:06d}"  # frame names: the file name and the frame index
# Containers ``write_video`` writes, by file suffix (FFmpeg's muxer names).
MUXERS = {".mp4": "mp4", ".mov": "mov", ".mkv": "matroska", ".avi": "avi"}
DEFAULT_CODEC = "libx264"
DEFAULT_CRF = 18  # x264 constant quality: visually lossless
SHORT_STREAM = 0.9  # warn when the frames counted are fewer than this x the container's duration x fps


def _one_line(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {' '.join(str(exc).split())[:160]}"


@dataclass(frozen=True)
class VideoFile:
    """One video file's frames, decoded lazily (``read_video_file``).

    Attributes:
        source: the file.
        names: F frame names (``"<file name>:<index>"``).
        sizes: (F, 2) (W, H) px of each frame (a video has one size).
        fps: frames per second, from the container (the stream's average frame rate).
        stream_index: which video stream of the file (the first).
    """

    source: Path
    names: tuple[str, ...]
    sizes: np.ndarray
    fps: float
    stream_index: int = 0

    def __len__(self) -> int:
        return len(self.names)

    def read(self, indices: Iterable[int] | None = None) -> Iterator[np.ndarray]:
        """(H, W, 3) uint8 RGB frames at ``indices`` (increasing; default: all, in order), one at a time.

        The file is decoded from the start once per call; frames not asked for are decoded and dropped.

        Raises:
            DataError: the stream breaks off (a decoding error, or fewer frames than the container
                announced), a frame of another size, or indices that do not increase.
        """
        wanted = iter(range(len(self)) if indices is None else indices)
        target = next(wanted, None)
        if target is None:
            return
        width, height = (int(v) for v in self.sizes[0])
        index = -1
        with _open(self.source) as container:
            stream = container.streams.video[self.stream_index]
            stream.thread_type = "AUTO"  # FFmpeg's frame threads: decoding keeps pace with HybrIK
            try:
                for frame in container.decode(stream):
                    index += 1
                    if index < target:
                        continue
                    if index > target:
                        raise DataError(f"{self.source}: frame indices must increase (got {target} after "
                                        f"{index - 1})")
                    if (frame.width, frame.height) != (width, height):
                        raise DataError(f"{self.source}: frame {index} is {frame.width} x {frame.height} px, the "
                                        f"first {width} x {height}; re-encode the video at one frame size")
                    yield frame.to_ndarray(format="rgb24")
                    target = next(wanted, None)
                    if target is None:
                        return
            except av.FFmpegError as exc:
                raise DataError(f"{self.source}: cannot decode frame {index + 1} ({_one_line(exc)}); the file is "
                                "corrupt or truncated: re-export or re-download it") from None
        if target < len(self):
            raise DataError(f"{self.source}: the stream ends after {index + 1} frames but the container announced "
                            f"{len(self)} (truncated or corrupt file); re-export or re-download it")
        raise DataError(f"{self.source}: no frame {target} (the video has {len(self)})")


def _open(path: Path) -> av.container.InputContainer:
    try:
        return av.open(str(path), mode="r")
    except av.FFmpegError as exc:
        raise DataError(f"{path}: not a video FFmpeg can read ({_one_line(exc)}); expected a video file such as "
                        ".mp4, .mov, .mkv, .avi or .webm") from None
    except OSError as exc:  # PermissionError, IsADirectoryError, ...
        raise DataError(f"{path}: cannot open ({_one_line(exc)})") from None


def _count_packets(container: av.container.InputContainer, stream: av.VideoStream) -> int:
    """Frames of a stream whose container does not record their number: its packets, demuxed, not decoded."""
    return sum(1 for packet in container.demux(stream) if packet.size)


def read_video_file(path: str | Path) -> VideoFile:
    """Open a video file: frame count, size and rate from the container (only the first frame is decoded,
    for its display rotation).

    Raises:
        DataError: a missing file, a file FFmpeg cannot read (corrupt, unsupported, not a video), no
            video stream, or no frame; one line naming the file.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: video file not found (resolved to {path.resolve()})")
    with _open(path) as container:
        if not container.streams.video:
            kinds = sorted({s.type for s in container.streams}) or ["none"]
            raise DataError(f"{path}: no video stream (streams: {', '.join(kinds)}); expected a video file")
        stream = container.streams.video[0]
        width, height = stream.codec_context.width, stream.codec_context.height
        rate = stream.average_rate or stream.guessed_rate or stream.base_rate
        if not width or not height or not rate or rate <= 0:
            raise DataError(f"{path}: the video stream has no frame size or frame rate "
                            f"({width} x {height} px, {rate} fps); re-encode it, e.g. ffmpeg -i {path} out.mp4")
        codec = stream.codec_context.name
        rotation = _display_rotation(container, stream)
        count = stream.frames  # 0 where the container does not record it
        duration_s = float(container.duration) / av.time_base if container.duration else None
    if not count:
        with _open(path) as container:
            try:
                count = _count_packets(container, container.streams.video[0])
            except av.FFmpegError as exc:
                raise DataError(f"{path}: cannot read the video's packets ({_one_line(exc)}); the file is corrupt "
                                "or truncated") from None
        expected = duration_s * float(rate) if duration_s else count
        if count < SHORT_STREAM * expected:  # a warning: the duration may be an audio stream's
            log.warning("%s: %d video frames, but the container's duration (%.2f s at %.3f fps) suggests %d: "
                        "is the file truncated?", path, count, duration_s, float(rate), round(expected))
    if count < 1:
        raise DataError(f"{path}: the video stream holds no frame")
    if rotation:
        log.warning("%s asks players to rotate it by %d deg; its frames are used as stored (HybrIK sees them "
                    "unrotated): re-encode it upright first (ffmpeg applies the rotation: ffmpeg -i %s upright.mp4)",
                    path, rotation, path.name)
    names = tuple(FRAME_NAME.format(stem=path.name, index=i) for i in range(count))
    sizes = np.tile(np.array([width, height], dtype=np.float64), (count, 1))  # (F, 2)
    log.info("%s: %d frames, %d x %d px, %.3f fps (%s)", path, count, width, height, float(rate), codec)
    return VideoFile(source=path, names=names, sizes=sizes, fps=float(rate))


def _display_rotation(container: av.container.InputContainer, stream: av.VideoStream) -> int:
    """The display rotation (deg) of the first frame's side data, 0 when none or unreadable."""
    try:
        frame = next(container.decode(stream), None)
    except av.FFmpegError:
        return 0  # a broken first frame is reported by VideoFile.read
    return int(round(getattr(frame, "rotation", 0) or 0)) if frame is not None else 0


def write_video(frames: Iterable[np.ndarray], path: str | Path, fps: float, codec: str = DEFAULT_CODEC,
                crf: int = DEFAULT_CRF) -> Path:
    """Encode (H, W, 3) uint8 RGB frames (even W and H) to a video file, through ``lib.atomic_write``.

    Args:
        frames: the frames, consumed one at a time.
        path: the file; its suffix picks the container (``MUXERS``).
        fps: frames per second (stored as a fraction, e.g. 30000/1001 for 29.97).
        codec: FFmpeg encoder name (default H.264 by x264, pixel format yuv420p).
        crf: x264's constant quality (0 lossless luma, 18 visually lossless); ignored by other encoders.
    Raises:
        ConfigError: an unknown suffix or codec. WriteError: the file cannot be written.
        DataError: no frame, or frames of different or odd sizes.
    """
    path = Path(path)
    muxer = MUXERS.get(path.suffix.lower())
    if muxer is None:
        raise ConfigError(f"{path}: cannot write '{path.suffix}' video; expected one of {sorted(MUXERS)}")
    if codec not in av.codecs_available:
        raise ConfigError(f"video codec '{codec}' is not in this PyAV build; e.g. {DEFAULT_CODEC} or mpeg4")
    rate = Fraction(fps).limit_denominator(1001)
    count = 0
    with atomic_open(path, "wb") as handle, av.open(handle, mode="w", format=muxer) as container:
        stream = None
        for image in frames:
            image = np.ascontiguousarray(image, dtype=np.uint8)
            if stream is None:
                height, width = image.shape[:2]
                if image.ndim != 3 or image.shape[2] != 3 or width % 2 or height % 2:
                    raise DataError(f"{path}: frames of shape {image.shape}; expected (H, W, 3) RGB with even W, H")
                stream = container.add_stream(codec, rate=rate)
                stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
                if codec.startswith("libx264"):
                    stream.options = {"crf": str(crf)}
            elif image.shape[:2] != (stream.height, stream.width):
                raise DataError(f"{path}: frame {count} is {image.shape[1]} x {image.shape[0]} px, the first "
                                f"{stream.width} x {stream.height}")
            for packet in stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")):
                container.mux(packet)
            count += 1
        if stream is None:
            raise DataError(f"{path}: no frame to write")
        for packet in stream.encode():  # flush the encoder
            container.mux(packet)
    return path

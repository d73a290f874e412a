"""A small headless CPU mesh renderer (numpy + PIL): flat-shaded overlays, side-by-side frames, GIF.

Painter's algorithm: faces are projected with HybrIK's pinhole camera (``lib.hybrik.camera``),
back faces (facing away from the camera, SMPL's counter-clockwise outward winding) are dropped, the
rest are sorted far to near and filled with PIL, each with a flat colour lit by a light at the camera
(``AMBIENT + DIFFUSE * |cos|``). No GPU, no OpenGL, no pytorch3d: about 0.1 s per mesh at 640 px.
Overlapping depths of one mesh can occasionally be ordered wrongly (a painter's algorithm limitation);
for checking overlays and temporal behaviour that is irrelevant.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
from PIL import Image, ImageDraw

from lib.atomic_write import atomic_open
from lib.hybrik.camera import project

AMBIENT = 0.35
DIFFUSE = 0.65
NEAR_M = 0.05                      # faces with a vertex closer than this are not drawn
MESH_ALPHA = 0.85                  # opacity of the mesh over the frame
HYBRIK_COLOR = (222, 150, 110)     # input mesh (HybrIK)
REFINED_COLOR = (110, 170, 230)    # refined mesh
GT_COLOR = (150, 200, 120)         # ground truth
BACKGROUND_GREY = 40
LABEL_COLOR = (255, 255, 255)
DOT_COLOR = (255, 235, 60)         # 2D keypoints
DOT_RADIUS = 2
MIN_DOT_CONFIDENCE = 0.05
GIF_NAME = "render.gif"
MAX_GIF_FRAMES = 300               # longer renders are subsampled in the GIF (the PNGs keep every frame)
GIF_SCALE = 0.5


@dataclass(frozen=True)
class PinholeCamera:
    """HybrIK's camera for one frame: focal length px, image size px, principal point at the centre."""

    focal: float
    width: int
    height: int

    def scaled(self, factor: float) -> "PinholeCamera":
        return PinholeCamera(self.focal * factor, max(1, round(self.width * factor)),
                             max(1, round(self.height * factor)))


def render_mesh(vertices: np.ndarray, faces: np.ndarray, camera: PinholeCamera, background: np.ndarray,
                color: Sequence[int], alpha: float = MESH_ALPHA, cull_back_faces: bool = True) -> np.ndarray:
    """Draw one mesh over an image.

    Args:
        vertices: (V, 3) m in the camera frame (x right, y down, z forward).
        faces: (K, 3) vertex ids, counter-clockwise seen from outside.
        camera: focal and image size; ``background`` must be (camera.height, camera.width, 3).
        background: (H, W, 3) uint8 RGB.
        color: base RGB of the mesh.
        alpha: opacity of the mesh.
    Returns:
        (H, W, 3) uint8 RGB.
    """
    if background.shape[:2] != (camera.height, camera.width):
        raise ValueError(f"background {background.shape[:2]} does not match the camera {(camera.height, camera.width)}")
    tri = vertices[faces]  # (K, 3, 3)
    normal = np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0])  # (K, 3)
    centre = tri.mean(axis=1)  # (K, 3)
    norm = np.linalg.norm(normal, axis=1) * np.linalg.norm(centre, axis=1)
    facing = -(normal * centre).sum(axis=1) / np.maximum(norm, 1e-12)  # cos between normal and view ray
    keep = (tri[..., 2] > NEAR_M).all(axis=1) & (norm > 0)
    if cull_back_faces:
        keep &= facing > 0
    order = np.flatnonzero(keep)[np.argsort(-centre[keep, 2], kind="stable")]  # far to near
    uv, _ = project(tri[order].reshape(1, -1, 3), np.array([camera.focal]), camera.width, camera.height)
    uv = uv.reshape(-1, 3, 2)
    shade = AMBIENT + DIFFUSE * np.abs(facing[order])
    colors = np.clip(np.asarray(color, dtype=np.float64)[None] * shade[:, None], 0, 255).astype(np.uint8)
    layer = Image.new("RGB", (camera.width, camera.height))
    mask = Image.new("L", (camera.width, camera.height))
    draw, draw_mask = ImageDraw.Draw(layer), ImageDraw.Draw(mask)
    for corners, rgb in zip(uv.tolist(), map(tuple, colors.tolist())):
        polygon = [tuple(p) for p in corners]
        draw.polygon(polygon, fill=rgb, outline=rgb)  # the outline closes hairline cracks between faces
        draw_mask.polygon(polygon, fill=255, outline=255)
    a = (np.asarray(mask, dtype=np.float64) / 255.0 * alpha)[..., None]
    out = background.astype(np.float64) * (1 - a) + np.asarray(layer, dtype=np.float64) * a
    return np.clip(out + 0.5, 0, 255).astype(np.uint8)


def _background(frame: np.ndarray | None, camera: PinholeCamera) -> np.ndarray:
    if frame is None:
        return np.full((camera.height, camera.width, 3), BACKGROUND_GREY, dtype=np.uint8)
    image = Image.fromarray(np.asarray(frame, dtype=np.uint8))
    if image.size != (camera.width, camera.height):
        image = image.resize((camera.width, camera.height), Image.BILINEAR)
    return np.asarray(image.convert("RGB"))


def render_panels(frame: np.ndarray | None, camera: PinholeCamera, faces: np.ndarray,
                  meshes: Sequence[tuple[np.ndarray, Sequence[int], str]], max_panel_width: int = 640,
                  keypoints_2d: np.ndarray | None = None) -> np.ndarray:
    """One panel per mesh, each drawn over the same frame, concatenated left to right.

    Args:
        frame: (H, W, 3) uint8 RGB video frame, or None (grey background of the camera's size).
        camera: the full-resolution camera of this frame.
        meshes: (vertices (V, 3) m in the camera frame, RGB colour, label) per panel.
        max_panel_width: panels wider than this are rendered at a reduced scale.
        keypoints_2d: optional (J, 3) px + confidence (e.g. the refiner's 2D input), drawn as dots on
            every panel (confidence > ``MIN_DOT_CONFIDENCE``).
    Returns:
        (h, len(meshes) * w, 3) uint8 RGB.
    """
    factor = min(1.0, max_panel_width / camera.width)
    cam = camera.scaled(factor) if factor < 1.0 else camera
    base = _background(frame, cam)
    panels = []
    for vertices, color, label in meshes:
        image = Image.fromarray(render_mesh(vertices, faces, cam, base, color))
        draw = ImageDraw.Draw(image)
        draw.text((8, 6), label, fill=LABEL_COLOR)
        if keypoints_2d is not None:
            for x, y, c in np.asarray(keypoints_2d, dtype=np.float64) * [factor, factor, 1.0]:
                if c > MIN_DOT_CONFIDENCE:
                    draw.ellipse([x - DOT_RADIUS, y - DOT_RADIUS, x + DOT_RADIUS, y + DOT_RADIUS], fill=DOT_COLOR)
        panels.append(np.asarray(image))
    return np.concatenate(panels, axis=1)


def side_by_side(frame: np.ndarray | None, camera: PinholeCamera, faces: np.ndarray, input_vertices: np.ndarray,
                 refined_vertices: np.ndarray, max_panel_width: int = 640,
                 keypoints_2d: np.ndarray | None = None) -> np.ndarray:
    """HybrIK's mesh over the frame (left) and the refined mesh (right); see ``render_panels``."""
    return render_panels(frame, camera, faces, [(input_vertices, HYBRIK_COLOR, "HybrIK"),
                                                (refined_vertices, REFINED_COLOR, "refined")],
                         max_panel_width, keypoints_2d)


def save_png(image: np.ndarray, out_dir: str | Path, index: int, prefix: str = "frame") -> Path:
    """Write ``out_dir/prefix_{index:06d}.png``."""
    path = Path(out_dir) / f"{prefix}_{index:06d}.png"
    with atomic_open(path) as handle:
        Image.fromarray(image).save(handle, format="PNG")
    return path


def save_gif(pngs: Sequence[Path], path: str | Path, fps: float, max_frames: int = MAX_GIF_FRAMES,
             scale: float = GIF_SCALE) -> Path:
    """An animated, looping GIF of (at most ``max_frames``, evenly picked) PNG frames, scaled by ``scale``.

    The frame time is stretched when frames are skipped, so the GIF plays at the video's speed.
    """
    picks = np.unique(np.linspace(0, len(pngs) - 1, min(len(pngs), max_frames)).round().astype(int))
    frames = []
    for i in picks:
        with Image.open(pngs[i]) as image:
            size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
            frames.append(image.convert("RGB").resize(size, Image.BILINEAR))
    step = len(pngs) / len(picks)
    path = Path(path)
    with atomic_open(path) as handle:
        frames[0].save(handle, format="GIF", save_all=True, append_images=frames[1:],
                       duration=max(20, round(1000.0 * step / fps)), loop=0)
    return path


def save_frames(images: Sequence[np.ndarray], out_dir: str | Path, fps: float, gif: bool = True,
                prefix: str = "frame") -> list[Path]:
    """Write ``prefix_000000.png`` ... and, with ``gif``, ``render.gif`` (looping, at ``fps``).

    Returns:
        the written paths (PNG frames, then the GIF).
    """
    paths = [save_png(image, out_dir, i, prefix) for i, image in enumerate(images)]
    if gif and paths:
        paths.append(save_gif(paths, Path(out_dir) / GIF_NAME, fps, scale=1.0))
    return paths

"""The headless renderer: coverage of a projected triangle, back-face culling, files, the demo comparison."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from lib.hybrik import camera as cam
from lib.deploy.compare import render_comparison
from lib.deploy.render import PinholeCamera, render_mesh, save_frames


def _inside(p: np.ndarray, tri: np.ndarray) -> np.ndarray:
    """Pixels strictly inside a 2D triangle (by the signs of the three edge functions)."""
    def edge(a, b):
        return (b[0] - a[0]) * (p[..., 1] - a[1]) - (b[1] - a[1]) * (p[..., 0] - a[0])
    e = np.stack([edge(tri[0], tri[1]), edge(tri[1], tri[2]), edge(tri[2], tri[0])])
    return (e > 1e-9).all(0) | (e < -1e-9).all(0)


def test_render_covers_the_projected_triangle_and_culls_its_back(tmp_path) -> None:
    camera = PinholeCamera(focal=100.0, width=64, height=48)
    # a triangle 2 m in front; for faces (0, 1, 2) the normal (v1 - v0) x (v2 - v0) = (0, 0, -0.59)
    # points at the camera (front face), for (0, 2, 1) it points away (back face)
    vertices = np.array([[-0.4, -0.3, 2.0], [0.0, 0.4, 2.0], [0.5, -0.2, 2.0]])
    front = np.array([[0, 1, 2]])
    uv, _ = cam.project(vertices[None], np.array([100.0]), 64, 48)
    ys, xs = np.mgrid[0:48, 0:64]
    inside = _inside(np.stack([xs, ys], -1).astype(np.float64), uv[0])
    grey = np.zeros((48, 64, 3), np.uint8)
    # deep interior pixels are painted, pixels well outside stay background
    image = render_mesh(vertices, front, camera, grey, color=(200, 100, 50), alpha=1.0)
    painted = image.any(-1)
    assert painted[inside].mean() > 0.97
    assert not painted[~inside & ~_grow(inside)].any()
    # the back face is culled: nothing drawn
    assert not render_mesh(vertices, np.array([[0, 2, 1]]), camera, grey, color=(200, 100, 50)).any()
    paths = save_frames([image, image], tmp_path, fps=10)
    assert [p.name for p in paths] == ["frame_000000.png", "frame_000001.png", "render.gif"]


def _grow(mask: np.ndarray) -> np.ndarray:
    """The mask dilated by one pixel in all 8 directions (polygon edges may round either way)."""
    padded = np.pad(mask, 1)
    out = np.zeros_like(mask)
    for dy in range(3):
        for dx in range(3):
            out |= padded[dy:dy + mask.shape[0], dx:dx + mask.shape[1]]
    return out


def test_render_comparison_of_the_demo(tiny_setup, data_root: Path, tmp_path: Path) -> None:
    path = render_comparison(tiny_setup.checkpoint, data_root, tmp_path / "meshes.png", num_frames=2, panel_size=64)
    image = np.asarray(Image.open(path))
    assert image.shape == (2 * 64, 3 * 64, 3)
    for col in range(3):  # a mesh in every panel
        panel = image[:64, col * 64:(col + 1) * 64]
        assert (np.abs(panel.astype(int) - 40).sum(-1) > 60).mean() > 0.03

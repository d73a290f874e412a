"""HybrIK's camera placement and projection, against hand-worked numbers."""

from __future__ import annotations

import numpy as np

from lib.hybrik import camera as cam


def test_focal_length_scales_with_the_expanded_box_width() -> None:
    # HybrIK: focal 1000 px for the 256 px crop -> 1000 / 256 * bbox_w in the frame
    np.testing.assert_allclose(cam.focal_px(np.array([[10, 20, 266, 276], [0, 0, 512, 512]])), [1000, 2000])


def test_placement_puts_the_pelvis_at_transl_and_projection_is_pinhole() -> None:
    points = np.array([[[1.0, 2.0, 3.0], [1.5, 2.0, 3.0]]])  # (1, 2, 3) m, any origin
    placed = cam.place_in_camera(points, pelvis=np.array([[1.0, 2.0, 3.0]]), transl=np.array([[0.1, -0.2, 4.0]]))
    np.testing.assert_allclose(placed, [[[0.1, -0.2, 4.0], [0.6, -0.2, 4.0]]])
    uv, depth = cam.project(placed, focal=np.array([1000.0]), width=640, height=480)
    # u = 1000 * 0.1 / 4 + 320 = 345, v = 1000 * -0.2 / 4 + 240 = 190; second point u = 1000 * 0.6 / 4 + 320
    np.testing.assert_allclose(uv, [[[345.0, 190.0], [470.0, 190.0]]])
    np.testing.assert_allclose(depth, [[4.0, 4.0]])

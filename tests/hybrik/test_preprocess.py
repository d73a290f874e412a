"""HybrIK's crop + normalisation, against hand-worked numbers and scipy's bilinear sampler."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from lib.hybrik import preprocess as pp


def test_box_is_padded_to_a_square_and_enlarged_by_1_25() -> None:
    # 100 x 200 box centred at (60, 120): width padded to 200, both sides x 1.25 = 250.
    centre, scale = pp.box_to_center_scale([10, 20, 110, 220])
    np.testing.assert_allclose(centre, [60, 120])
    np.testing.assert_allclose(scale, [250, 250])
    np.testing.assert_allclose(pp.center_scale_to_box(centre, scale), [-65, -5, 185, 245])
    # a wide box pads its height instead
    _, scale = pp.box_to_center_scale([0, 0, 300, 100])
    np.testing.assert_allclose(scale, [375, 375])


def test_crop_matches_scipy_bilinear_with_zero_border() -> None:
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, size=(120, 90, 3)).astype(np.uint8)
    box = [20.3, 10.7, 70.1, 100.9]  # the crop region reaches outside the image
    crop = pp.hybrik_crop(image, box)
    centre, scale = pp.box_to_center_scale(box)
    k = scale[0] / pp.INPUT_SIZE
    grid = np.arange(pp.INPUT_SIZE)
    ys = (grid[:, None] - 128) * k + centre[1] + 0 * grid[None, :]
    xs = (grid[None, :] - 128) * k + centre[0] + 0 * grid[:, None]
    expected = np.stack([ndimage.map_coordinates(image[..., c].astype(np.float64), [ys, xs], order=1,
                                                 mode="grid-constant", cval=0.0) for c in range(3)], axis=-1)
    expected = (expected / 255.0 - np.array([0.406, 0.457, 0.480])) / np.array([0.225, 0.224, 0.229])
    assert crop.image.shape == (256, 256, 3) and crop.image.dtype == np.float32
    np.testing.assert_allclose(crop.image, expected, atol=1e-4)
    np.testing.assert_allclose(crop.bbox, pp.center_scale_to_box(centre, scale), rtol=1e-6)
    np.testing.assert_allclose(crop.image_center, [45.0, 60.0])


def test_unit_scale_crop_is_an_exact_shift_with_zeros_outside() -> None:
    rng = np.random.default_rng(1)
    image = rng.integers(0, 256, size=(300, 400, 3)).astype(np.uint8)
    side = 256 / 1.25  # expanded side = 256 px: one crop pixel per image pixel
    box = [100 - side / 2, 50 - side / 2, 100 + side / 2, 50 + side / 2]  # centre (100, 50)
    crop = pp.warp_bilinear(image, pp.crop_to_source(*pp.box_to_center_scale(box)))
    # crop (u, v) samples image (u - 128 + 100, v - 128 + 50)
    np.testing.assert_allclose(crop[78:, 28:], image[:178, :228], atol=1e-9)
    assert not crop[:78].any() and not crop[:, :28].any()


def test_channels_are_normalised_in_rgb_order_with_hybrik_statistics() -> None:
    red = np.zeros((64, 64, 3), dtype=np.uint8)
    red[..., 0] = 255
    crop = pp.hybrik_crop(red, [8, 8, 56, 56])
    centre = crop.image[128, 128]
    np.testing.assert_allclose(centre, [(1 - 0.406) / 0.225, -0.457 / 0.224, -0.480 / 0.229], rtol=1e-6)


def test_batch_stacks_the_onnx_inputs() -> None:
    frames = [np.zeros((50, 80, 3), np.uint8), np.zeros((60, 40, 3), np.uint8)]
    images, boxes, centres = pp.hybrik_batch(frames, np.array([[0, 0, 10, 20], [5, 5, 25, 15]]))
    assert images.shape == (2, 256, 256, 3) and boxes.shape == (2, 4) and centres.shape == (2, 2)
    np.testing.assert_allclose(centres, [[40, 25], [20, 30]])


@pytest.mark.parametrize("box", [[10, 10, 5, 20], [0, 0, 0, 10], [0, 0, np.nan, 10]])
def test_degenerate_boxes_are_refused(box: list[float]) -> None:
    with pytest.raises(ValueError, match="xyxy box"):
        pp.hybrik_crop(np.zeros((10, 10, 3), np.uint8), box)


def test_non_rgb_images_are_refused() -> None:
    with pytest.raises(ValueError, match="RGB image"):
        pp.hybrik_crop(np.zeros((10, 10), np.uint8), [0, 0, 5, 5])

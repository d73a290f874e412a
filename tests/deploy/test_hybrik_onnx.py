"""The HybrIK ONNX stage: I/O checks and frames + boxes -> res.pk layout, with a stand-in model."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from lib.deploy.hybrik_onnx import HybrIKOnnx, run_hybrik_on_frames
from lib.hybrik.preprocess import box_to_center_scale, center_scale_to_box, hybrik_crop
from lib.errors import CheckpointError, DataError


def _frames(count: int, seed: int = 0) -> tuple[list[np.ndarray], np.ndarray]:
    rng = np.random.default_rng(seed)
    frames = [np.full((120, 160, 3), 20 * i, dtype=np.uint8) + rng.integers(0, 20, (120, 160, 3), dtype=np.uint8)
              for i in range(count)]
    boxes = np.array([[40 + i, 20, 90 + i, 110] for i in range(count)], dtype=np.float64)
    return frames, boxes


def test_frames_and_boxes_give_the_res_pk_layout(hybrik_standin: Path, synthetic_video) -> None:
    frames, boxes = _frames(7)
    res = run_hybrik_on_frames(HybrIKOnnx(hybrik_standin), frames, boxes, batch_size=3)
    assert res["pred_thetas"].shape == (7, 216) and res["pred_betas"].shape == (7, 10)
    assert res["pred_xyz_17"].shape == (7, 17, 3) and res["transl"].shape == (7, 3)
    np.testing.assert_array_equal(res["height"], 120)
    np.testing.assert_array_equal(res["width"], 160)
    expanded = np.stack([center_scale_to_box(*box_to_center_scale(b)) for b in boxes])
    np.testing.assert_allclose(res["bbox"], expanded, rtol=1e-6)
    # the stand-in's betas follow each frame's crop brightness, in frame order
    brightness = np.array([hybrik_crop(f, b).image.mean() for f, b in zip(frames, boxes)])
    base = synthetic_video.res["pred_betas"][0]
    np.testing.assert_allclose(res["pred_betas"], base + 0.1 * brightness[:, None], atol=1e-4)
    # transl: 4 m behind the expanded box centre, HybrIK's focal 1000 / 256 * box width, centre (80, 60)
    focal = 1000 / 256 * (expanded[:, 2] - expanded[:, 0])
    centre = (expanded[:, :2] + expanded[:, 2:]) / 2
    np.testing.assert_allclose(res["transl"][:, :2], (centre - [80, 60]) * 4.0 / focal[:, None], atol=1e-5)
    np.testing.assert_allclose(res["pred_cam_root"], res["transl"])
    again = run_hybrik_on_frames(HybrIKOnnx(hybrik_standin), iter(frames), boxes, batch_size=8)
    np.testing.assert_allclose(again["pred_thetas"], res["pred_thetas"], atol=1e-6)


def test_frame_and_box_counts_must_agree(hybrik_standin: Path) -> None:
    frames, boxes = _frames(3)
    with pytest.raises(DataError, match="3 frames but 4 boxes"):
        run_hybrik_on_frames(HybrIKOnnx(hybrik_standin), frames, np.vstack([boxes, boxes[:1]]))
    with pytest.raises(DataError, match="more frames than boxes"):
        run_hybrik_on_frames(HybrIKOnnx(hybrik_standin), frames, boxes[:2])


class _Plain(torch.nn.Module):
    def forward(self, a, b, c):
        n = a.shape[0]
        z = a.reshape(n, -1)[:, :1] * 0 + b[:, :1] * 0 + c[:, :1] * 0
        return z.expand(n, 10), z.expand(n, 216), z.expand(n, 3), z.expand(n, 51)


@pytest.mark.parametrize("inputs, outputs, shape, message", [
    (("image", "bbox", "image_center"), None, (2, 256, 256, 3), "expected \\['input_image', 'bbox', 'image_center'\\]"),
    (None, None, (2, 3, 256, 256), "input 'input_image' has shape \\[.*3, 256, 256\\]"),
    (None, ("pred_shape", "pred_theta_mats", "cam_root", "pred_xyz_jts_17"), (2, 256, 256, 3),
     "lacks output\\(s\\) \\['transl'\\]"),
])
def test_onnx_with_another_signature_is_refused(tmp_path: Path, export_standin, inputs, outputs, shape,
                                                message: str) -> None:
    names = inputs or ("input_image", "bbox", "image_center")
    outs = outputs or ("pred_shape", "pred_theta_mats", "transl", "pred_xyz_jts_17")
    path = export_standin(_Plain(), tmp_path / "bad.onnx", input_names=names, output_names=outs, image_shape=shape)
    with pytest.raises(CheckpointError, match=message) as err:
        HybrIKOnnx(path)
    assert "\n" not in str(err.value)


def test_missing_or_broken_model_file(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match="not found"):
        HybrIKOnnx(tmp_path / "none.onnx")
    (tmp_path / "junk.onnx").write_bytes(b"not a model")
    with pytest.raises(CheckpointError, match="not a loadable ONNX"):
        HybrIKOnnx(tmp_path / "junk.onnx")

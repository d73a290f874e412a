"""hybrik_predict: frames + boxes -> HybrIK's res.pk arrays, through PyTorch and through the exported ONNX."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from torch.nn import functional as F

from lib.hybrik.preprocess import hybrik_batch
from lib.errors import DataError
from lib.deploy.hybrik_export import onnx_session
from lib.hybrik.model import HybrIKCam
from lib.deploy.hybrik_run import hybrik_predict

POOL = 4  # the test network takes 64 x 64 crops; preprocessing makes 256 x 256 ones


def _frames() -> tuple[list[np.ndarray], np.ndarray]:
    rng = np.random.default_rng(3)
    frames = [rng.integers(0, 256, size=shape, dtype=np.uint8) for shape in ((120, 160, 3), (90, 90, 3), (120, 160, 3))]
    boxes = np.array([[40.0, 10.0, 100.0, 110.0], [0.0, 0.0, 90.0, 90.0], [60.0, 20.0, 90.0, 100.0]])
    return frames, boxes


class PooledSession:
    """An onnxruntime session of the 64 x 64 test export that accepts 256 x 256 crops (average-pooled)."""

    def __init__(self, path: Path) -> None:
        self.session = onnx_session(path)

    def get_outputs(self) -> Any:
        return self.session.get_outputs()

    def run(self, names: list[str], feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        image = torch.from_numpy(feeds["input_image"]).permute(0, 3, 1, 2)
        pooled = F.avg_pool2d(image, POOL).permute(0, 2, 3, 1).contiguous().numpy()
        return self.session.run(names, dict(feeds, input_image=pooled))


def test_pytorch_path_gives_res_pk_layout(hybrik18: HybrIKCam) -> None:
    frames, boxes = _frames()
    res = hybrik_predict(iter(frames), boxes, hybrik18, flip_test=False, batch_size=2, frame_names=["a", "b", "c"])
    shapes = {"pred_uvd": (3, 29, 3), "pred_xyz_17": (3, 17, 3), "pred_xyz_29": (3, 29, 3),
              "pred_xyz_24_struct": (3, 24, 3), "pred_scores": (3, 29), "pred_camera": (3, 1), "pred_betas": (3, 10),
              "pred_thetas": (3, 216), "pred_phi": (3, 23, 2), "pred_cam_root": (3, 3), "transl": (3, 3),
              "transl_camsys": (3, 3), "bbox": (3, 4), "height": (3,), "width": (3,), "img_path": (3,)}
    assert {k: v.shape for k, v in res.items()} == shapes
    _, expanded, _ = hybrik_batch(frames, boxes)
    assert np.allclose(res["bbox"], expanded)  # the expanded square boxes HybrIK's camera uses
    assert res["height"].tolist() == [120, 90, 120] and res["width"].tolist() == [160, 90, 160]
    assert res["img_path"].tolist() == ["a", "b", "c"]
    box_w = expanded[:, 2] - expanded[:, 0]
    assert np.allclose(res["transl_camsys"], res["transl"] * 256 / box_w[:, None])  # HybrIK's demo formula


def test_onnx_path_matches_pytorch(hybrik18: HybrIKCam, hybrik18_onnx: Path) -> None:
    frames, boxes = _frames()
    res = hybrik_predict(frames, boxes, PooledSession(hybrik18_onnx), batch_size=2)
    assert "pred_scores" not in res and "pred_phi" not in res  # not among the seed's ONNX outputs
    crops, bbox, center = hybrik_batch(frames, boxes)
    image = F.avg_pool2d(torch.from_numpy(crops).permute(0, 3, 1, 2), POOL)
    with torch.no_grad():
        out = hybrik18(image, torch.from_numpy(bbox), torch.from_numpy(center), flip_test=True)
    assert np.allclose(res["pred_thetas"], out["pred_theta_mats"].numpy(), atol=1e-3)
    assert np.allclose(res["pred_betas"], out["pred_shape"].numpy(), atol=1e-4)
    assert np.allclose(res["transl"], out["transl"].numpy(), atol=1e-3)
    assert np.allclose(res["pred_xyz_17"], out["pred_xyz_jts_17"].numpy().reshape(3, 17, 3), atol=1e-3)


def test_frame_and_box_counts_must_match(hybrik18: HybrIKCam) -> None:
    frames, boxes = _frames()
    with pytest.raises(DataError, match="more frames than boxes"):
        hybrik_predict(frames, boxes[:2], hybrik18, flip_test=False, batch_size=8)
    with pytest.raises(DataError, match="2 frames but 3 boxes"):
        hybrik_predict(frames[:2], boxes, hybrik18, flip_test=False, batch_size=8)


def test_square_boxes_and_ready_crops_give_the_frames_result(hybrik18: HybrIKCam) -> None:
    """The three inputs of the same frames agree: tight boxes; HybrIK's square boxes (res.pk 'bbox');
    HybrIK's normalised crops with their square boxes and the frame sizes."""
    frames, boxes = _frames()
    tight = hybrik_predict(frames, boxes, hybrik18, flip_test=False)
    crops, square, _ = hybrik_batch(frames, boxes)  # independent: the tight-box transform, batched
    from_square = hybrik_predict(frames, tight["bbox"], hybrik18, inputs="square_boxes", flip_test=False)
    sizes = np.array([f.shape[1::-1] for f in frames])
    from_crops = hybrik_predict(list(crops), square, hybrik18, inputs="crops", image_sizes=sizes, flip_test=False)
    for res in (from_square, from_crops):
        assert set(res) == set(tight)
        np.testing.assert_allclose(res["bbox"], square, rtol=1e-6)
        np.testing.assert_array_equal(res["width"], tight["width"])
        np.testing.assert_array_equal(res["height"], tight["height"])
        for key in ("pred_thetas", "pred_betas", "transl", "pred_uvd", "pred_xyz_17"):
            np.testing.assert_allclose(res[key], tight[key], atol=1e-4, err_msg=key)
    np.testing.assert_array_equal(from_crops["pred_thetas"], tight["pred_thetas"])  # the very same crops


def test_input_kinds_refuse_what_does_not_fit(hybrik18: HybrIKCam) -> None:
    frames, boxes = _frames()
    with pytest.raises(DataError, match=r"frame 0: box .* not square.*inputs='frames'"):
        hybrik_predict(frames, boxes, hybrik18, inputs="square_boxes")
    crops, square, _ = hybrik_batch(frames, boxes)
    with pytest.raises(DataError, match=r"needs image_sizes.*\(3, 2\)"):
        hybrik_predict(list(crops), square, hybrik18, inputs="crops")
    raw = [np.full((256, 256, 3), 200, dtype=np.uint8)] * 3  # pixels, not HybrIK's normalised values
    with pytest.raises(DataError, match="ran on no frame.*normalised input"):
        hybrik_predict(raw, square, hybrik18, inputs="crops", image_sizes=np.full((3, 2), 160))
    with pytest.raises(DataError, match="inputs='tight'"):
        hybrik_predict(frames, boxes, hybrik18, inputs="tight")

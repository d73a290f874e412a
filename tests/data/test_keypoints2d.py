"""2D normalisation (the contract's formula), the network input, and COCO-17 -> H36M-17."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from lib.body.joint_names import COCO_JOINT_NAMES, H36M_JOINT_NAMES
from lib.data.keypoints2d import (DATASET_CANVAS, H36M_CAMERA_RES, HEAD_TOP_EXTRAPOLATION, coco_to_h36m,
                                  denormalize_2d, normalize_2d, pose2d_input)


def test_canvases_are_the_documented_ones() -> None:
    assert DATASET_CANVAS == {"pw3d": (1920, 1920), "coco": (640, 640)}
    assert H36M_CAMERA_RES == {"54138969": (1000, 1002), "55011271": (1000, 1000),
                               "58860488": (1000, 1000), "60457274": (1000, 1002)}


def test_normalize_hand_worked_corners_and_centre() -> None:
    # W = 1000, H = 1002: x / 500 - 1, y / 500 - 1.002.
    xy = np.array([[0.0, 0.0], [1000.0, 1002.0], [500.0, 501.0], [250.0, 100.0]])
    expected = np.array([[-1.0, -1.002], [1.0, 1.002], [0.0, 0.0], [-0.5, -0.802]])
    np.testing.assert_allclose(normalize_2d(xy, 1000, 1002), expected, atol=1e-12)


@pytest.mark.parametrize("width,height", [(1920, 1920), (1000, 1002), (1280, 720)])
def test_normalize_matches_contract_formula_and_round_trips(width: int, height: int) -> None:
    rng = np.random.default_rng(0)
    xy = rng.uniform(-50, 2000, size=(4, 5, 17, 2))
    out = normalize_2d(xy, width, height)
    np.testing.assert_allclose(out[..., 0], xy[..., 0] / width * 2 - 1, rtol=0, atol=1e-12)
    np.testing.assert_allclose(out[..., 1], xy[..., 1] / width * 2 - height / width, rtol=0, atol=1e-12)
    np.testing.assert_allclose(denormalize_2d(out, width, height), xy, atol=1e-9)


def test_torch_and_numpy_agree_and_keep_their_type() -> None:
    xy = np.random.default_rng(1).uniform(0, 640, size=(3, 17, 2)).astype(np.float32)
    out_np = normalize_2d(xy, 640, 480)
    out_t = normalize_2d(torch.from_numpy(xy), 640, 480)
    assert isinstance(out_np, np.ndarray) and out_np.dtype == np.float32
    assert isinstance(out_t, torch.Tensor) and out_t.dtype == torch.float32
    np.testing.assert_allclose(out_t.numpy(), out_np, atol=1e-6)
    back = denormalize_2d(out_t, 640, 480)
    assert isinstance(back, torch.Tensor)
    np.testing.assert_allclose(back.numpy(), xy, atol=1e-3)


def test_pose2d_input_channels_confidence_shapes_and_clipping() -> None:
    rng = np.random.default_rng(2)
    xy = rng.uniform(0, 1920, size=(6, 17, 2))
    conf = rng.uniform(-0.5, 1.5, size=(6, 17))
    flat = pose2d_input(xy, conf, 1920, 1920)
    column = pose2d_input(xy, conf[..., None], 1920, 1920)
    assert flat.shape == (6, 17, 3) and flat.dtype == np.float32
    np.testing.assert_array_equal(flat, column)
    np.testing.assert_allclose(flat[..., :2], xy / 960 - 1, atol=1e-6)
    np.testing.assert_allclose(flat[..., 2], np.minimum(np.maximum(conf, 0), 1), atol=1e-7)
    # joint_2d with a third channel: only x, y are read.
    np.testing.assert_array_equal(pose2d_input(np.concatenate([xy, xy[..., :1]], -1), conf, 1920, 1920), flat)
    out_t = pose2d_input(torch.from_numpy(xy), torch.from_numpy(conf), 1920, 1920)
    assert isinstance(out_t, torch.Tensor) and out_t.dtype == torch.float32
    np.testing.assert_allclose(out_t.numpy(), flat, atol=1e-6)
    with pytest.raises(ValueError, match="confidence shape"):
        pose2d_input(xy, conf[:, :16], 1920, 1920)


def _coco_skeleton() -> np.ndarray:
    """A hand-built upright COCO-17 figure in pixels (y down) with distinct confidences."""
    pts = {
        "nose": (100, 40), "left_eye": (105, 35), "right_eye": (95, 35), "left_ear": (112, 40),
        "right_ear": (88, 40), "left_shoulder": (130, 70), "right_shoulder": (70, 70),
        "left_elbow": (140, 110), "right_elbow": (60, 110), "left_wrist": (145, 150),
        "right_wrist": (55, 150), "left_hip": (120, 160), "right_hip": (80, 160),
        "left_knee": (122, 220), "right_knee": (78, 220), "left_ankle": (124, 280), "right_ankle": (76, 280),
    }
    kp = np.zeros((17, 3))
    for i, name in enumerate(COCO_JOINT_NAMES):
        kp[i, :2] = pts[name]
        kp[i, 2] = 0.5 + 0.025 * i          # distinct confidences: min is identifiable
    return kp


def test_coco_to_h36m_hand_built_skeleton() -> None:
    coco = _coco_skeleton()
    h36m = coco_to_h36m(coco)
    c = {name: coco[i] for i, name in enumerate(COCO_JOINT_NAMES)}
    h = {name: h36m[i] for i, name in enumerate(H36M_JOINT_NAMES)}
    np.testing.assert_allclose(h["pelvis"][:2], [100, 160])
    np.testing.assert_allclose(h["thorax"][:2], [100, 70])
    np.testing.assert_allclose(h["spine"][:2], [100, 115])
    # Mid-ear (100, 40), mid-shoulder (100, 70): the head top is 0.7 * 30 px above the ears.
    assert HEAD_TOP_EXTRAPOLATION == 0.7
    np.testing.assert_allclose(h["head_top"][:2], [100, 40 - 0.7 * 30])
    for name in ("nose", "left_shoulder", "right_elbow", "left_wrist", "right_hip", "left_knee", "right_ankle"):
        np.testing.assert_array_equal(h[name], c[name])
    # Confidence of a derived joint = min of the joints used.
    assert h["pelvis"][2] == min(c["left_hip"][2], c["right_hip"][2])
    assert h["thorax"][2] == min(c["left_shoulder"][2], c["right_shoulder"][2])
    assert h["spine"][2] == min(c[n][2] for n in ("left_hip", "right_hip", "left_shoulder", "right_shoulder"))
    assert h["head_top"][2] == min(c[n][2] for n in ("left_ear", "right_ear", "left_shoulder", "right_shoulder"))


def test_coco_to_h36m_batched_torch_and_positions_only() -> None:
    rng = np.random.default_rng(3)
    coco = rng.uniform(0, 640, size=(2, 5, 17, 3))
    out = coco_to_h36m(coco)
    assert out.shape == (2, 5, 17, 3)
    np.testing.assert_allclose(coco_to_h36m(torch.from_numpy(coco)).numpy(), out, atol=1e-9)
    # 3D positions: no confidence channel, every channel converted linearly.
    pos = coco_to_h36m(coco, has_confidence=False)
    np.testing.assert_allclose(pos[..., :2], out[..., :2])
    np.testing.assert_allclose(pos[..., 0, 2], (coco[..., 11, 2] + coco[..., 12, 2]) / 2)
    assert coco_to_h36m(coco[..., :2]).shape == (2, 5, 17, 2)

"""Refine head: a true residual around HybrIK (one 6D convention), temporal reach, shape residual."""

from __future__ import annotations

import numpy as np
import torch
from scipy.spatial.transform import Rotation

from lib.model.head import RefineHead

N, T, J, C, HIDDEN = 2, 12, 17, 32, 64


def _inputs(seed: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    gen = np.random.default_rng(seed)
    rot = Rotation.from_rotvec(gen.normal(scale=0.8, size=(N * T * 24, 3))).as_matrix()
    feat = torch.from_numpy(gen.normal(size=(N, T, J, C))).float()
    init_rot = torch.from_numpy(rot.reshape(N, T, 24, 3, 3)).float()
    init_shape = torch.from_numpy(gen.normal(size=(N, T, 10))).float()
    return feat, init_rot, init_shape


def test_untrained_head_returns_hybrik_exactly() -> None:
    feat, init_rot, init_shape = _inputs(0)
    head = RefineHead(J, C, HIDDEN, dropout=0.1)
    for mode in (head.train, head.eval):
        mode()
        rot, shape = head(feat, init_rot, init_shape)
        assert rot.shape == (N, T, 24, 3, 3)
        assert (rot - init_rot).abs().max().item() < 1e-6
        assert torch.equal(shape, init_shape)


def _gram_schmidt_columns(d6: np.ndarray) -> np.ndarray:
    """6D = [first column, second column] -> rotation, in numpy."""
    a1, a2 = d6[:3], d6[3:]
    b1 = a1 / np.linalg.norm(a1)
    b2 = a2 - b1 @ a2 * b1
    b2 /= np.linalg.norm(b2)
    return np.stack([b1, b2, np.cross(b1, b2)], axis=1)


def test_residual_is_added_in_the_column_6d_convention() -> None:
    feat, init_rot, init_shape = _inputs(1)
    head = RefineHead(J, C, HIDDEN, dropout=0.0).eval()
    delta = np.array([0.1, -0.2, 0.05, 0.3, 0.0, -0.1])
    with torch.no_grad():
        head.head_pose.bias[6 * 3:6 * 4] = torch.from_numpy(delta).float()  # SMPL joint 3 only
    rot, _ = head(feat, init_rot, init_shape)
    r0 = init_rot[1, 4, 3].double().numpy()
    expected = _gram_schmidt_columns(np.concatenate([r0[:, 0], r0[:, 1]]) + delta)
    np.testing.assert_allclose(rot[1, 4, 3].detach().numpy(), expected, atol=1e-5)
    others = [j for j in range(24) if j != 3]
    assert (rot[:, :, others] - init_rot[:, :, others]).abs().max().item() < 1e-6


def test_temporal_reach_is_nine_frames() -> None:
    """Two kernel-5 convolutions: a change at frame t reaches frames t-4..t+4 only."""
    torch.manual_seed(2)
    feat, init_rot, init_shape = _inputs(2)
    head = RefineHead(J, C, HIDDEN, dropout=0.0).eval()
    with torch.no_grad():
        head.head_pose.weight.normal_(0.0, 0.01)
    rot, _ = head(feat, init_rot, init_shape)
    changed = init_rot.clone()
    changed[0, 6] = init_rot[0, 6].flip(-1)  # another rotation-like input at frame 6 of clip 0
    rot2, _ = head(feat, changed, init_shape)
    moved = (rot2 - rot).abs().amax(dim=(2, 3, 4))[0] > 1e-7  # per frame of clip 0
    assert moved.tolist() == [t in range(2, 11) for t in range(T)]


def test_shape_residual_is_clip_level() -> None:
    feat, init_rot, init_shape = _inputs(3)
    head = RefineHead(J, C, HIDDEN, dropout=0.0, refine_shape=True).eval()
    _, shape = head(feat, init_rot, init_shape)
    assert torch.equal(shape, init_shape)  # zero-initialised: pass-through
    with torch.no_grad():
        head.head_shape.weight.normal_()
    _, shape = head(feat, init_rot, init_shape)
    residual = shape - init_shape  # (N, T, 10): one residual per clip, the same on every frame
    torch.testing.assert_close(residual, residual[:, :1].expand_as(residual))
    assert residual.abs().max() > 0
    assert not hasattr(RefineHead(J, C, HIDDEN, 0.1), "head_shape")


def test_parameter_count_of_default_sizes_matches_reference() -> None:
    """Reference section 3.6: 4,451,600 including 5,248 unused smplx parameters."""
    head = RefineHead(17, 128, 1024, 0.1)
    assert sum(p.numel() for p in head.parameters()) == 4_451_600 - 5_248

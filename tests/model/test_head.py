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
    clip_mean = init_shape.double().mean(dim=1, keepdim=True).expand_as(init_shape)
    for clip_shape in (True, False):
        head = RefineHead(J, C, HIDDEN, dropout=0.1, clip_shape=clip_shape)
        for mode in (head.train, head.eval):
            mode()
            rot, shape = head(feat, init_rot, init_shape)
            assert rot.shape == (N, T, 24, 3, 3)
            assert (rot - init_rot).abs().max().item() < 1e-6
            if clip_shape:  # one shape per clip: the mean of HybrIK's betas over its frames
                assert (shape.double() - clip_mean).abs().max().item() < 1e-6
            else:  # the original's pass-through
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
    head = RefineHead(J, C, HIDDEN, dropout=0.0, refine_shape=True, clip_shape=False).eval()
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


def _smooth_reference(signal: np.ndarray, kernel: int) -> np.ndarray:
    """(T, C) -> (T, C): edge-padded Gaussian (sigma kernel / 4) filter written with np.convolve."""
    x = np.arange(kernel) - kernel // 2
    taps = np.exp(-0.5 * (x / (kernel / 4.0)) ** 2)
    taps /= taps.sum()
    padded = np.pad(signal, ((kernel // 2, kernel // 2), (0, 0)), mode="edge")
    return np.stack([np.convolve(padded[:, c], taps[::-1], mode="valid") for c in range(signal.shape[1])], axis=1)


def test_untrained_head_with_smoother_returns_filtered_hybrik() -> None:
    feat, init_rot, init_shape = _inputs(3)
    kernel = 7
    head = RefineHead(J, C, HIDDEN, dropout=0.0, smooth_kernel=kernel).eval()
    rot, shape = head(feat, init_rot, init_shape)
    r = init_rot[0].double().numpy()  # (T, 24, 3, 3)
    d6 = np.concatenate([r[..., :, 0], r[..., :, 1]], axis=-1).reshape(T, 144)  # columns, as the head
    smoothed = _smooth_reference(d6, kernel).reshape(T, 24, 6)
    expected = np.stack([[_gram_schmidt_columns(smoothed[t, j]) for j in range(24)] for t in range(T)])
    np.testing.assert_allclose(rot[0].detach().numpy(), expected, atol=1e-5)
    np.testing.assert_allclose(shape[0].numpy(), np.repeat(init_shape[0].numpy().mean(0, keepdims=True), T, 0),
                               atol=1e-6)
    assert (rot - init_rot).abs().max().item() > 0.1  # it did smooth the random rotations


def test_smoother_keeps_a_static_pose_and_a_single_frame() -> None:
    feat, init_rot, init_shape = _inputs(4)
    head = RefineHead(J, C, HIDDEN, dropout=0.0, smooth_kernel=9).eval()
    static = init_rot[:, :1].expand(N, T, 24, 3, 3)
    rot, _ = head(feat, static, init_shape)
    assert (rot - static).abs().max().item() < 1e-5  # replicate padding + taps summing to 1
    rot1, _ = head(feat[:, :1], init_rot[:, :1], init_shape[:, :1])  # COCO images: T = 1
    assert (rot1 - init_rot[:, :1]).abs().max().item() < 1e-5


def test_smoother_taps_are_learnable_and_rejects_even_kernels() -> None:
    import pytest

    from lib.model.head import PriorSmoother

    head = RefineHead(J, C, HIDDEN, dropout=0.0, smooth_kernel=5)
    assert head.smoother.weight.shape == (144, 1, 5)
    assert head.smoother.weight.requires_grad
    np.testing.assert_allclose(head.smoother.weight.sum(-1).detach().numpy(), 1.0, atol=1e-6)
    with pytest.raises(ValueError, match="odd and >= 3"):
        PriorSmoother(144, 4)


def test_layer_norm_head_has_no_batch_statistics() -> None:
    """With ``norm="layer"`` a clip's output does not depend on the other clips of its batch, in
    training mode too (BatchNorm's does), and the head keeps no running statistics."""
    feat, init_rot, init_shape = _inputs(4)
    torch.manual_seed(0)
    heads = {norm: RefineHead(J, C, HIDDEN, dropout=0.0, norm=norm).train() for norm in ("batch", "layer")}
    for head in heads.values():
        torch.nn.init.normal_(head.head_pose.weight, std=0.01)  # a trained head: the residual is not zero
    alone = heads["layer"](feat[:1], init_rot[:1], init_shape[:1])[0]
    together = heads["layer"](feat, init_rot, init_shape)[0][:1]
    torch.testing.assert_close(alone, together, atol=1e-6, rtol=1e-6)
    assert not torch.allclose(heads["batch"](feat[:1], init_rot[:1], init_shape[:1])[0],
                              heads["batch"](feat, init_rot, init_shape)[0][:1], atol=1e-4)
    assert not any("running" in name for name, _ in heads["layer"].named_buffers())
    # per frame: LayerNorm over the hidden channels of each frame (numpy reference)
    x = torch.randn(2, HIDDEN, 5)
    ref = x.numpy().transpose(0, 2, 1)
    ref = (ref - ref.mean(-1, keepdims=True)) / np.sqrt(ref.var(-1, keepdims=True) + 1e-5)
    torch.testing.assert_close(heads["layer"].bn1(x), torch.from_numpy(ref.transpose(0, 2, 1)).float(),
                               atol=1e-5, rtol=1e-5)

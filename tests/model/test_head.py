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


def _noise_to_motion_reference(clip: np.ndarray) -> float:
    """(T, C) -> log(mean squared 2nd difference / mean squared 1st difference of the sigma-3 smoothed clip)."""
    from scipy.ndimage import gaussian_filter1d

    second = np.mean(np.diff(clip, n=2, axis=0) ** 2)
    smoothed = gaussian_filter1d(clip, 3.0, axis=0, mode="nearest", truncate=2.0)  # 13 taps, edge-replicated
    return float(np.log(max(second, 1e-8) / max(np.mean(np.diff(smoothed, axis=0) ** 2), 1e-8)))


def test_noise_to_motion_matches_a_numpy_computation_and_separates_jitter_from_motion() -> None:
    from lib.model.head import noise_to_motion

    gen = np.random.default_rng(5)
    time_axis = np.arange(16)[:, None]
    slow_jittery = 0.05 * time_axis / 16 + gen.normal(scale=0.05, size=(16, 6))  # little motion, much noise
    fast_clean = np.sin(time_axis / 2.0 + np.arange(6)) + gen.normal(scale=0.005, size=(16, 6))
    clips = np.stack([slow_jittery, fast_clean])
    got = noise_to_motion(torch.from_numpy(clips)).numpy()
    np.testing.assert_allclose(got, [_noise_to_motion_reference(c) for c in clips], rtol=1e-6)
    assert got[0] > got[1] + 3.0
    assert noise_to_motion(torch.zeros(1, 1, 6)).item() == 0.0  # one frame: no statistic, no NaN


def test_gaussian_filter_clip_filters_each_clip_with_its_own_width() -> None:
    from scipy.ndimage import gaussian_filter1d

    from lib.model.head import gaussian_filter_clip, gaussian_taps_sigma

    clips = np.random.default_rng(6).normal(size=(3, 10, 4))
    sigmas, kernel = np.array([0.5, 1.3, 2.75]), 11
    taps = gaussian_taps_sigma(kernel, torch.from_numpy(sigmas), torch.zeros((), dtype=torch.float64))
    got = gaussian_filter_clip(torch.from_numpy(clips), taps).numpy()
    for clip, sigma, out in zip(clips, sigmas, got):  # truncated at kernel // 2 frames, edges replicated
        expected = gaussian_filter1d(clip, sigma, axis=0, mode="nearest", truncate=(kernel // 2) / sigma)
        np.testing.assert_allclose(out, expected, atol=1e-12)


def test_adaptive_smoother_picks_each_clips_width_from_its_jitter_and_motion() -> None:
    from lib.model.head import (INIT_INTERCEPT, INIT_SLOPE, SIGMA_MIN, AdaptivePriorSmoother, gaussian_filter_clip,
                                gaussian_taps_sigma, noise_to_motion)

    gen = np.random.default_rng(7)
    time_axis = np.arange(T)[:, None]
    jittery = np.full((T, 144), 0.3) + gen.normal(scale=0.05, size=(T, 144))
    moving = np.sin(time_axis / 1.5 + np.linspace(0, 3, 144)) + gen.normal(scale=0.01, size=(T, 144))
    clips = torch.from_numpy(np.stack([jittery, moving])).float()
    smoother = AdaptivePriorSmoother(15)
    sigma = smoother.sigma(clips)
    expected = np.clip(np.exp(INIT_SLOPE * noise_to_motion(clips).numpy() + INIT_INTERCEPT), SIGMA_MIN, 15 / 4)
    np.testing.assert_allclose(sigma.detach().numpy(), expected, rtol=1e-5)
    assert sigma[0] > 3.0 and sigma[1] < 1.0  # the jittery still clip smoothed hard, the moving one barely
    out = smoother(clips)
    np.testing.assert_allclose(out.detach().numpy(),
                               gaussian_filter_clip(clips, gaussian_taps_sigma(15, sigma, clips)).detach().numpy())
    static = clips[:1, :1].expand(1, T, 144)
    assert (smoother(static) - static).abs().max() < 1e-6  # replicate padding, taps summing to 1
    assert (smoother(clips[:, :1]) - clips[:, :1]).abs().max() < 1e-6  # COCO images: T = 1
    sigma.sum().backward()  # the rule's slope and intercept are learnt
    assert smoother.slope.grad is not None and smoother.intercept.grad is not None


def test_untrained_head_with_adaptive_smoother_returns_hybrik_filtered_at_the_clips_width() -> None:
    from scipy.ndimage import gaussian_filter1d

    feat, _, init_shape = _inputs(8)
    gen = np.random.default_rng(8)
    phase = np.arange(T)[:, None, None] / np.array([3.0, 12.0])[None, :, None]  # clip 0 moves 4x faster than clip 1
    rotvec = 0.8 * np.sin(phase[..., None] + gen.uniform(0, 6, (24, 3))) + gen.normal(scale=0.03, size=(T, N, 24, 3))
    init_rot = torch.from_numpy(Rotation.from_rotvec(rotvec.transpose(1, 0, 2, 3).reshape(-1, 3)).as_matrix()
                                .reshape(N, T, 24, 3, 3)).float()
    head = RefineHead(J, C, HIDDEN, dropout=0.0, smooth_kernel=9, smooth_adaptive=True).eval()
    rot, _ = head(feat, init_rot, init_shape)
    r = init_rot.double().numpy()
    d6 = np.concatenate([r[..., :, 0], r[..., :, 1]], axis=-1).reshape(N, T, 144)
    sigmas = [float(np.clip(np.exp(0.39 * _noise_to_motion_reference(d6[n]) - 0.86), 0.3, 9 / 4)) for n in range(N)]
    assert 0.3 < sigmas[0] < sigmas[1] < 9 / 4  # neither clamped: the fast clip gets the narrower filter
    for n, sigma in enumerate(sigmas):
        smoothed = gaussian_filter1d(d6[n], sigma, axis=0, mode="nearest", truncate=4 / sigma).reshape(T, 24, 6)
        expected = np.stack([[_gram_schmidt_columns(smoothed[t, j]) for j in range(24)] for t in range(T)])
        np.testing.assert_allclose(rot[n].detach().numpy(), expected, atol=1e-4)

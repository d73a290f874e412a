"""Backbone: shapes over clip lengths, layer composition per mode, initialisation, input checks."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from lib.model.backbone import Backbone

LABEL1 = (0, 1, 1, 1, 2, 2, 2, 0, 0, 3, 3, 4, 4, 4, 5, 5, 5)
TINY = dict(in_channels=3, dim=32, depth=2, num_heads=4, mlp_ratio=2.0, maxlen=27)


@pytest.mark.parametrize("frames", [1, 8, 16, 27])
@pytest.mark.parametrize("batch", [1, 3])
def test_output_shape(frames: int, batch: int) -> None:
    model = Backbone(**TINY, partitions=(LABEL1,)).eval()
    assert model(torch.randn(batch, frames, 17, 3)).shape == (batch, frames, 17, 32)


def test_clips_are_independent_and_frames_mix() -> None:
    torch.manual_seed(0)
    model = Backbone(**TINY, partitions=(LABEL1,)).eval()
    x = torch.randn(3, 8, 17, 3)
    out = model(x)
    torch.testing.assert_close(model(x[[2, 0, 1]]), out[[2, 0, 1]], atol=1e-5, rtol=1e-5)
    x2 = x.clone()
    x2[0, 5] += 1.0  # change one frame of clip 0
    out2 = model(x2)
    assert torch.equal(out2[1:], out[1:])
    assert not torch.allclose(out2[0, 0], out[0, 0])  # temporal attention carries it to other frames


def _names(model: nn.Module) -> set[str]:
    return {n for n, _ in model.named_parameters()}


def test_layer_composition_per_mode() -> None:
    both = _names(Backbone(**TINY, partitions=(LABEL1,)))
    common = _names(Backbone(**TINY))
    hyper = _names(Backbone(**TINY, use_common=False, partitions=(LABEL1,)))
    assert any(".hyper." in n for n in both) and any(".common." in n for n in both)
    assert not any(".hyper." in n for n in common)
    assert not any(".common." in n for n in hyper)
    assert both == common | hyper
    with pytest.raises(ValueError, match="spatial block"):
        Backbone(**TINY, use_common=False)


def test_switches_change_parameter_set() -> None:
    full = _names(Backbone(**TINY, partitions=(LABEL1,)))
    no_adj = _names(Backbone(**TINY, partitions=(LABEL1,), j2j_adjacency=False))
    no_bias = _names(Backbone(**TINY, partitions=(LABEL1,), j2e_bias=False))
    assert full - no_adj == {f"spatial_layers.{i}.common.attn.{p}"
                             for i in range(2) for p in ("skeleton_bias", "alpha")}
    assert full - no_bias == {f"spatial_layers.{i}.hyper.attns.0.w1" for i in range(2)}
    assert _names(Backbone(**TINY, partitions=(LABEL1,), j2e_main=False)) == full


def test_j2e_main_changes_output() -> None:
    torch.manual_seed(1)
    full = Backbone(**TINY, partitions=(LABEL1,)).eval()
    no_main = Backbone(**TINY, partitions=(LABEL1,), j2e_main=False).eval()
    no_main.load_state_dict(full.state_dict())
    x = torch.randn(2, 4, 17, 3)
    assert not torch.allclose(full(x), no_main(x))


def test_initialisation_and_schedule() -> None:
    model = Backbone(**TINY, partitions=(LABEL1,))
    assert model.temporal_pos.shape == (27, 32) and not model.temporal_pos.any()
    assert model.spatial_pos.shape == (17, 32) and not model.spatial_pos.any()
    rates = [layer.common.drop_path.drop_prob for layer in model.spatial_layers]
    np.testing.assert_allclose(rates, [0.0, 0.1])
    np.testing.assert_allclose([layer.drop_path.drop_prob for layer in model.temporal_layers], [0.0, 0.1])
    assert not any(isinstance(m, nn.Dropout) for m in model.modules())
    assert all(m.eps == 1e-6 for m in model.modules() if isinstance(m, nn.LayerNorm))
    depth6 = Backbone(**{**TINY, "depth": 6})
    np.testing.assert_allclose([t.drop_path.drop_prob for t in depth6.temporal_layers],
                               [0.0, 0.02, 0.04, 0.06, 0.08, 0.1], atol=1e-7)


def test_relation_bias_none_is_identity() -> None:
    model = Backbone(**TINY, relation_bias="none")
    bias = model.spatial_layers[0].common.attn.skeleton_bias.detach()
    torch.testing.assert_close(bias, torch.eye(17).expand(4, 17, 17))


def test_input_checks() -> None:
    model = Backbone(**TINY)
    with pytest.raises(ValueError, match="maxlen = 27"):
        model(torch.randn(1, 28, 17, 3))
    with pytest.raises(ValueError, match="no_conf"):
        model(torch.randn(1, 4, 17, 2))
    two = Backbone(**{**TINY, "in_channels": 2})
    assert two(torch.randn(1, 4, 17, 2)).shape == (1, 4, 17, 32)


def test_clip_centered_2d_matches_weighted_statistics_and_is_invariant() -> None:
    from lib.model.backbone import clip_centered_2d

    rng = np.random.default_rng(0)
    x = np.concatenate([rng.normal(size=(2, 5, 17, 2)), rng.uniform(0, 1, size=(2, 5, 17, 1))], axis=-1)
    x[0, 1, 3, 2] = 0.0  # a missing joint: weight 0, whatever its coordinates
    x[0, 1, 3, :2] = 50.0
    out = clip_centered_2d(torch.from_numpy(x)).numpy()
    for n in range(2):  # hand-worked, per clip
        w = x[n, ..., 2:].reshape(-1, 1)
        xy = x[n, ..., :2].reshape(-1, 2)
        centre = (w * xy).sum(0) / w.sum()
        scale = np.sqrt((w * (xy - centre) ** 2).sum() / w.sum())
        expected = np.where(w > 0, (xy - centre) / scale, 0.0)  # an undetected joint sits at the centre
        np.testing.assert_allclose(out[n, ..., :2].reshape(-1, 2), expected, rtol=1e-10)
    np.testing.assert_array_equal(out[0, 1, 3, :2], [0.0, 0.0])
    np.testing.assert_array_equal(out[..., 2], x[..., 2])
    # where the person stands, the canvas and the camera distance do not matter
    moved = x.copy()
    moved[..., :2] = moved[..., :2] * 0.37 + np.array([0.6, -0.2])
    np.testing.assert_allclose(clip_centered_2d(torch.from_numpy(moved)).numpy(), out, atol=1e-10)
    # without confidence every joint weighs 1
    xy_only = torch.from_numpy(x[..., :2])
    flat = x[..., :2].reshape(2, -1, 2)
    expected = (flat - flat.mean(1, keepdims=True)) / np.sqrt(((flat - flat.mean(1, keepdims=True)) ** 2)
                                                              .sum(-1).mean(1))[:, None, None]
    np.testing.assert_allclose(clip_centered_2d(xy_only).numpy().reshape(2, -1, 2), expected, rtol=1e-10)


def test_backbone_with_clip_input_norm_ignores_translation_and_scale() -> None:
    torch.manual_seed(0)
    model = Backbone(**TINY, partitions=(LABEL1,), input_norm="clip").eval()
    x = torch.randn(2, 8, 17, 3)
    x[..., 2] = x[..., 2].abs()
    moved = x.clone()
    moved[..., :2] = moved[..., :2] * 2.5 + 0.3
    torch.testing.assert_close(model(moved), model(x), atol=1e-5, rtol=1e-5)
    canvas = Backbone(**TINY, partitions=(LABEL1,)).eval()
    canvas.load_state_dict(model.state_dict())
    assert not torch.allclose(canvas(moved), canvas(x), atol=1e-3)

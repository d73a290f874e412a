"""The HRNet backbone: HybrIK's W48 sizes, the width parameter, output shapes."""

from __future__ import annotations

import torch

from lib.hybrik.hrnet import HRNet

# HybrIK's HRNetSMPLCam holds 989 learned tensors (75,688,022 values) and 977 checkpoint buffers
# (reference motionbert_hybrik.md 3.1); its heads are 4 Linear layers on the 2048-d feature
# (10, 46, 1, 29 outputs) and two buffers (init_shape, init_cam).
HEAD_OUTPUTS = (10, 46, 1, 29)


def test_w48_backbone_sizes_match_hybrik() -> None:
    with torch.device("meta"):
        net = HRNet(width=48, heatmap_channels=29 * 64)
    head_values = sum(2048 * n + n for n in HEAD_OUTPUTS)
    params = list(net.parameters())
    assert len(params) == 989 - 2 * len(HEAD_OUTPUTS)
    assert sum(p.numel() for p in params) == 75_688_022 - head_values
    assert len(list(net.buffers())) == 977 - 2


def test_reduced_width_shapes() -> None:
    torch.manual_seed(0)
    net = HRNet(width=18, heatmap_channels=29 * 64).eval()
    branch_widths = [m[-1][0].out_channels for m in net.transition3 if m is not None]
    assert branch_widths == [144]  # the new fourth branch: 18 * 8
    assert [block[0].conv1.out_channels for block in net.stage4[0].branches] == [18, 36, 72, 144]
    with torch.no_grad():
        heat, feature = net(torch.randn(2, 3, 64, 96))
    assert heat.shape == (2, 29 * 64, 16, 24) and feature.shape == (2, 2048)
    assert torch.isfinite(heat).all() and (feature >= 0).all()  # pooled after a ReLU

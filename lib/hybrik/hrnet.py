"""HRNet backbone as HybrIK uses it: 3D-heatmap logits from the highest-resolution branch plus a pooled feature.

Structure (Sun et al., "Deep High-Resolution Representation Learning", HRNet-W48 pose config as in
HybrIK's ``w48.yaml``): a stride-4 stem (two 3x3 stride-2 convs, four Bottlenecks to 256 channels),
then stages 2, 3, 4 with 2, 3, 4 parallel branches of widths ``width * (1, 2, 4, 8)`` (1, 4, 3 modules of
four BasicBlocks per branch, every module fusing all branches), then two heads:

* ``final_layer``: a 1x1 conv on branch 0 to ``num_joints * depth_dim`` heatmap channels (stride 4);
* the classification head: per branch a Bottleneck to 128, 256, 512, 1024 channels, strided 3x3 convs
  merging them from high to low resolution, a 1x1 conv to 2048 channels and a global average pool.

Submodule and attribute names mirror the original implementation so that ``state_dict`` keys equal those
of HybrIK's released checkpoints (``preact.`` prefix added by :mod:`lib.hybrik.model`).
"""

from __future__ import annotations

from torch import Tensor, nn

BN_MOMENTUM = 0.1
STEM_CHANNELS = 64
LAYER1_BLOCKS = 4
BLOCKS_PER_BRANCH = 4
# Number of HighResolutionModules in stages 2, 3 and 4 (branches 2, 3, 4).
STAGE_MODULES = (1, 4, 3)
# Bottleneck widths of the classification head per branch (x4 expansion -> 128 ... 1024 channels).
HEAD_CHANNELS = (32, 64, 128, 256)
FEATURE_DIM = 2048
HEATMAP_STRIDE = 4


def _conv3x3(in_ch: int, out_ch: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(in_ch, out_ch, kernel_size=3, stride=stride, padding=1, bias=False)


def _conv_bn(in_ch: int, out_ch: int, kernel: int, stride: int, relu: bool, bias: bool = False,
             momentum: float = BN_MOMENTUM) -> nn.Sequential:
    """conv -> BN (-> ReLU); indices 0, 1 (, 2) as in the original Sequentials."""
    layers: list[nn.Module] = [
        nn.Conv2d(in_ch, out_ch, kernel_size=kernel, stride=stride, padding=kernel // 2, bias=bias),
        nn.BatchNorm2d(out_ch, momentum=momentum),
    ]
    if relu:
        layers.append(nn.ReLU(inplace=True))
    return nn.Sequential(*layers)


class BasicBlock(nn.Module):
    """Two 3x3 convs with a residual connection."""

    expansion = 1

    def __init__(self, in_ch: int, planes: int, stride: int = 1, downsample: nn.Module | None = None) -> None:
        super().__init__()
        self.conv1 = _conv3x3(in_ch, planes, stride)
        self.bn1 = nn.BatchNorm2d(planes, momentum=BN_MOMENTUM)
        self.conv2 = _conv3x3(planes, planes)
        self.bn2 = nn.BatchNorm2d(planes, momentum=BN_MOMENTUM)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x: Tensor) -> Tensor:
        """(N, in_ch, H, W) -> (N, planes, H / stride, W / stride)."""
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + identity)


class Bottleneck(nn.Module):
    """1x1 reduce, 3x3, 1x1 expand (x4) with a residual connection."""

    expansion = 4

    def __init__(self, in_ch: int, planes: int, stride: int = 1, downsample: nn.Module | None = None) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_ch, planes, kernel_size=1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes, momentum=BN_MOMENTUM)
        self.conv2 = _conv3x3(planes, planes, stride)
        self.bn2 = nn.BatchNorm2d(planes, momentum=BN_MOMENTUM)
        self.conv3 = nn.Conv2d(planes, planes * self.expansion, kernel_size=1, bias=False)
        self.bn3 = nn.BatchNorm2d(planes * self.expansion, momentum=BN_MOMENTUM)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x: Tensor) -> Tensor:
        """(N, in_ch, H, W) -> (N, 4 * planes, H / stride, W / stride)."""
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(out + identity)


def _residual_layer(block: type[BasicBlock] | type[Bottleneck], in_ch: int, planes: int,
                    num_blocks: int) -> nn.Sequential:
    """``num_blocks`` blocks; the first gets a 1x1 projection when the channel count changes."""
    out_ch = planes * block.expansion
    downsample = None
    if in_ch != out_ch:
        downsample = _conv_bn(in_ch, out_ch, kernel=1, stride=1, relu=False)
    blocks = [block(in_ch, planes, 1, downsample)]
    blocks += [block(out_ch, planes) for _ in range(1, num_blocks)]
    return nn.Sequential(*blocks)


class HighResolutionModule(nn.Module):
    """Parallel branches of BasicBlocks, then every output resolution sums all branches.

    Fuse path j -> i: identity (i == j); 1x1 conv + BN + nearest upsampling by 2^(j-i) (j > i);
    (i - j) strided 3x3 conv + BN steps, ReLU between them (j < i).
    """

    def __init__(self, channels: tuple[int, ...], num_blocks: int = BLOCKS_PER_BRANCH) -> None:
        super().__init__()
        self.num_branches = len(channels)
        self.branches = nn.ModuleList(
            [_residual_layer(BasicBlock, ch, ch, num_blocks) for ch in channels])
        fuse_layers = []
        for i in range(self.num_branches):
            row: list[nn.Module | None] = []
            for j in range(self.num_branches):
                if j > i:
                    row.append(nn.Sequential(
                        nn.Conv2d(channels[j], channels[i], kernel_size=1, stride=1, padding=0, bias=False),
                        nn.BatchNorm2d(channels[i]),
                        nn.Upsample(scale_factor=2 ** (j - i), mode="nearest"),
                    ))
                elif j == i:
                    row.append(None)
                else:
                    steps = []
                    for k in range(i - j):
                        last = k == i - j - 1
                        out_ch = channels[i] if last else channels[j]
                        steps.append(_conv_bn(channels[j], out_ch, kernel=3, stride=2, relu=not last,
                                              momentum=0.1))
                    row.append(nn.Sequential(*steps))
            fuse_layers.append(nn.ModuleList(row))
        self.fuse_layers = nn.ModuleList(fuse_layers)
        self.relu = nn.ReLU(inplace=False)

    def forward(self, xs: list[Tensor]) -> list[Tensor]:
        """Branch i: (N, C_i, H / 2^i, W / 2^i) in and out."""
        xs = [branch(x) for branch, x in zip(self.branches, xs)]
        fused = []
        for i in range(self.num_branches):
            y = xs[i]
            for j in range(self.num_branches):
                if j != i:
                    y = y + self.fuse_layers[i][j](xs[j])
            fused.append(self.relu(y))
        return fused


def _transition(prev: tuple[int, ...], cur: tuple[int, ...]) -> nn.ModuleList:
    """Adapters from the previous stage's branches to the next stage's.

    An existing branch keeps its tensor (None) or gets a 3x3 conv when the width changes; the new branch
    is a strided 3x3 conv from the previous lowest-resolution branch (inner Sequential index 0).
    """
    layers: list[nn.Module | None] = []
    for i, ch in enumerate(cur):
        if i < len(prev):
            layers.append(None if prev[i] == ch else _conv_bn(prev[i], ch, kernel=3, stride=1, relu=True,
                                                              momentum=0.1))
        else:
            steps = []
            for k in range(i + 1 - len(prev)):
                out_ch = ch if k == i - len(prev) else prev[-1]
                steps.append(_conv_bn(prev[-1], out_ch, kernel=3, stride=2, relu=True, momentum=0.1))
            layers.append(nn.Sequential(*steps))
    return nn.ModuleList(layers)


def branch_channels(width: int, num_branches: int) -> tuple[int, ...]:
    """Widths of the parallel branches: ``width * 2^i``."""
    return tuple(width * 2 ** i for i in range(num_branches))


class HRNet(nn.Module):
    """HRNet-W{width} with HybrIK's 3D-heatmap head and 2048-d pooled-feature head.

    Args:
        width: channels of the highest-resolution branch (48 for HybrIK's released model; the tests use 18).
        heatmap_channels: output channels of ``final_layer`` (``num_joints * depth_dim``, 29 * 64 in HybrIK).
    """

    def __init__(self, width: int = 48, heatmap_channels: int = 29 * 64) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, STEM_CHANNELS, kernel_size=3, stride=2, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(STEM_CHANNELS, momentum=BN_MOMENTUM)
        self.conv2 = nn.Conv2d(STEM_CHANNELS, STEM_CHANNELS, kernel_size=3, stride=2, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(STEM_CHANNELS, momentum=BN_MOMENTUM)
        self.relu = nn.ReLU(inplace=True)
        self.layer1 = _residual_layer(Bottleneck, STEM_CHANNELS, STEM_CHANNELS, LAYER1_BLOCKS)

        prev: tuple[int, ...] = (STEM_CHANNELS * Bottleneck.expansion,)
        for stage, num_modules in enumerate(STAGE_MODULES, start=2):
            cur = branch_channels(width, stage)
            setattr(self, f"transition{stage - 1}", _transition(prev, cur))
            setattr(self, f"stage{stage}", nn.Sequential(*[HighResolutionModule(cur) for _ in range(num_modules)]))
            prev = cur

        self.incre_modules = nn.ModuleList([
            _residual_layer(Bottleneck, ch, head, 1) for ch, head in zip(prev, HEAD_CHANNELS)])
        self.downsamp_modules = nn.ModuleList([
            _conv_bn(HEAD_CHANNELS[i] * Bottleneck.expansion, HEAD_CHANNELS[i + 1] * Bottleneck.expansion,
                     kernel=3, stride=2, relu=True, bias=True)
            for i in range(len(HEAD_CHANNELS) - 1)])
        self.final_feat_layer = _conv_bn(HEAD_CHANNELS[-1] * Bottleneck.expansion, FEATURE_DIM, kernel=1,
                                         stride=1, relu=True, bias=True)
        self.final_layer = nn.Conv2d(prev[0], heatmap_channels, kernel_size=1, stride=1, padding=0)

    def _run_stage(self, transition: nn.ModuleList, stage: nn.Sequential, ys: list[Tensor]) -> list[Tensor]:
        xs = []
        for i, adapter in enumerate(transition):
            # A new branch grows from the previous stage's lowest-resolution output.
            source = ys[i] if i < len(ys) else ys[-1]
            xs.append(source if adapter is None else adapter(source))
        for module in stage:
            xs = module(xs)
        return xs

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """Image (N, 3, H, W) -> heatmap logits (N, heatmap_channels, H / 4, W / 4), feature (N, 2048)."""
        x = self.relu(self.bn1(self.conv1(x)))
        x = self.relu(self.bn2(self.conv2(x)))
        ys = [self.layer1(x)]
        ys = self._run_stage(self.transition1, self.stage2, ys)
        ys = self._run_stage(self.transition2, self.stage3, ys)
        ys = self._run_stage(self.transition3, self.stage4, ys)

        heatmap = self.final_layer(ys[0])
        y = self.incre_modules[0](ys[0])
        for i, down in enumerate(self.downsamp_modules):
            y = self.incre_modules[i + 1](ys[i + 1]) + down(y)
        y = self.final_feat_layer(y)
        feature = y.mean(dim=(2, 3))  # (N, 2048): global average pool
        return heatmap, feature

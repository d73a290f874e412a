"""Hand-written attention equals torch's nn.MultiheadAttention with the same weights; DropPath and
the skeleton bias behave as documented."""

from __future__ import annotations

import torch
from torch import nn

from lib.model.attention import DropPath, SelfAttention, SkeletonAttention, SkeletonBlock
from lib.model.graph import normalized_adjacency

DIM, HEADS = 32, 4


def _reference_mha(attn: SelfAttention) -> nn.MultiheadAttention:
    """torch's implementation carrying the same weights (q, k, v rows of qkv in that order)."""
    mha = nn.MultiheadAttention(DIM, HEADS, batch_first=True)
    with torch.no_grad():
        mha.in_proj_weight.copy_(attn.qkv.weight)
        mha.in_proj_bias.copy_(attn.qkv.bias)
        mha.out_proj.weight.copy_(attn.proj.weight)
        mha.out_proj.bias.copy_(attn.proj.bias)
    return mha.eval()


def test_self_attention_matches_multihead_attention_over_leading_axes() -> None:
    torch.manual_seed(0)
    attn = SelfAttention(DIM, HEADS)
    x = torch.randn(2, 5, 17, DIM)  # (N, T, J, C): attention over J for every (n, t)
    flat = x.reshape(-1, 17, DIM)
    expected, _ = _reference_mha(attn)(flat, flat, flat, need_weights=False)
    torch.testing.assert_close(attn(x), expected.reshape(x.shape), atol=1e-5, rtol=1e-5)


def test_skeleton_bias_is_added_before_scaling() -> None:
    torch.manual_seed(1)
    attn = SkeletonAttention(DIM, HEADS, normalized_adjacency())
    with torch.no_grad():
        attn.skeleton_bias.normal_()
        attn.alpha.fill_(0.7)
    x = torch.randn(6, 17, DIM)
    scale = (DIM // HEADS) ** -0.5
    # MultiheadAttention adds a float mask to the already scaled logits: mask = alpha * B * scale.
    mask = (0.7 * attn.skeleton_bias * scale).repeat(6, 1, 1)  # (N * H, J, J), batch-major
    expected, _ = _reference_mha(attn)(x, x, x, attn_mask=mask, need_weights=False)
    torch.testing.assert_close(attn(x), expected, atol=1e-5, rtol=1e-5)


def test_skeleton_bias_initialisation_and_switch() -> None:
    adj = normalized_adjacency()
    attn = SkeletonAttention(DIM, HEADS, adj)
    assert attn.skeleton_bias.shape == (HEADS, 17, 17)
    for head in range(HEADS):
        torch.testing.assert_close(attn.skeleton_bias[head].detach(), adj)
    assert attn.alpha.item() == 1.0
    plain = SkeletonAttention(DIM, HEADS, adj, use_bias=False)
    assert {n for n, _ in plain.named_parameters()} == {"qkv.weight", "qkv.bias", "proj.weight", "proj.bias"}


def test_drop_path_per_sample_and_identity_in_eval() -> None:
    torch.manual_seed(2)
    drop = DropPath(0.5)
    x = torch.randn(64, 8, 17, 4) + 3.0
    drop.eval()
    assert torch.equal(drop(x), x)
    drop.train()
    y = drop(x)
    ratio = y / x  # 0 (dropped) or 1 / keep = 2, constant over the last two axes of each sample
    per_sample = ratio.reshape(64, 8, -1)
    assert torch.all((per_sample == per_sample[..., :1]))
    assert set(per_sample[..., 0].unique().tolist()) <= {0.0, 2.0}
    assert 0.3 < (per_sample[..., 0] == 0).float().mean().item() < 0.7
    assert torch.equal(DropPath(0.0).train()(x), x)


def test_skeleton_block_has_no_dropout_layers() -> None:
    block = SkeletonBlock(DIM, HEADS, 2.0, 0.1, normalized_adjacency())
    assert not any(isinstance(m, nn.Dropout) for m in block.modules())  # drop-path is not reused as dropout
    assert block.drop_path.drop_prob == 0.1
    assert block.norm1.eps == 1e-6 and block.norm2.eps == 1e-6

"""Hypergraph block: hyperedge features against a numpy re-implementation, permutation behaviour,
the attention's three logit terms, partition merging and the partition check on load."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from lib.errors import CheckpointError
from lib.model.hypergraph import HyperAttention, HyperBlock, HyperEdge, membership_matrix

LABEL1 = (0, 1, 1, 1, 2, 2, 2, 0, 0, 3, 3, 4, 4, 4, 5, 5, 5)
LABEL2 = (0, 0, 0, 0, 0, 0, 0, 1, 2, 2, 2, 2, 2, 2, 2, 2, 2)
DIM, HEADS = 32, 4


def _numpy_edges(x: np.ndarray, labels: tuple[int, ...], weight: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean of member joints, projected; then each joint's own hyperedge. x (B, 17, C)."""
    num_edges = max(labels) + 1
    lab = np.asarray(labels)
    edge = np.stack([x[:, lab == e].mean(axis=1) for e in range(num_edges)], axis=1) @ weight.T  # (B, E, C)
    return edge, edge[:, lab]


def test_membership_counts_and_one_hot() -> None:
    assert membership_matrix(LABEL1).shape == (17, 6)
    assert membership_matrix(LABEL2).shape == (17, 3)
    h = membership_matrix(LABEL1).numpy()
    np.testing.assert_array_equal(h.sum(axis=1), np.ones(17))
    np.testing.assert_array_equal(h.sum(axis=0), [3, 3, 3, 2, 3, 3])
    assert HyperEdge(DIM, LABEL1).num_edges == 6 and HyperEdge(DIM, LABEL2).num_edges == 3


@pytest.mark.parametrize("labels", [LABEL1, LABEL2])
def test_hyperedge_features_match_numpy(labels: tuple[int, ...]) -> None:
    torch.manual_seed(0)
    module = HyperEdge(DIM, labels)
    x = torch.randn(2, 3, 17, DIM)
    edge, joint = module(x)
    ref_edge, ref_joint = _numpy_edges(x.reshape(6, 17, DIM).double().numpy(), labels,
                                       module.proj.weight.detach().double().numpy())
    np.testing.assert_allclose(edge.reshape(6, -1, DIM).detach().numpy(), ref_edge, atol=1e-5)
    np.testing.assert_allclose(joint.reshape(6, 17, DIM).detach().numpy(), ref_joint, atol=1e-5)
    assert [n for n, _ in module.named_parameters()] == ["proj.weight"]  # membership is a buffer
    assert "membership" in module.state_dict()


def test_permuting_within_a_hyperedge_permutes_features_consistently() -> None:
    torch.manual_seed(1)
    module = HyperEdge(DIM, LABEL1)
    x = torch.randn(4, 17, DIM)
    perm = list(range(17))
    perm[1], perm[3] = 3, 1                    # inside the right leg
    perm[11], perm[12], perm[13] = 12, 13, 11  # a cycle inside the left arm
    edge, joint = module(x)
    edge_p, joint_p = module(x[:, perm])
    torch.testing.assert_close(edge_p, edge)             # hyperedge features unchanged
    torch.testing.assert_close(joint_p, joint[:, perm])  # joint features permuted the same way
    across = list(range(17))
    across[1], across[11] = 11, 1              # right hip <-> left shoulder: different hyperedges
    edge_a, _ = module(x[:, across])
    assert not torch.allclose(edge_a, edge)


def _numpy_hyper_attention(attn: HyperAttention, x: np.ndarray, e: np.ndarray) -> np.ndarray:
    """Per-head loop over the three logit terms; x and e (B, 17, C)."""
    w = {name: p.detach().double().numpy() for name, p in attn.named_parameters()}
    q = x @ w["q.weight"].T + w["q.bias"]
    kv = x @ w["kv.weight"].T + w["kv.bias"]
    k, v = kv[..., :DIM], kv[..., DIM:]
    d = DIM // HEADS
    out = np.zeros_like(q)
    for h in range(HEADS):
        sl = slice(h * d, (h + 1) * d)
        logits = q[..., sl] @ np.swapaxes(k[..., sl], -1, -2)
        if attn.j2e_main:
            logits = logits + q[..., sl] @ np.swapaxes(e[..., sl], -1, -2)
        if attn.j2e_bias:
            logits = logits + (e[..., sl] @ w["w1"][h])[:, None, :]
        logits = logits / np.sqrt(d)
        prob = np.exp(logits - logits.max(-1, keepdims=True))
        prob /= prob.sum(-1, keepdims=True)
        out[..., sl] = prob @ v[..., sl]
    return out @ w["proj.weight"].T + w["proj.bias"]


@pytest.mark.parametrize("j2e_main, j2e_bias", [(True, True), (True, False), (False, True), (False, False)])
def test_hyper_attention_matches_numpy(j2e_main: bool, j2e_bias: bool) -> None:
    torch.manual_seed(2)
    attn = HyperAttention(DIM, HEADS, j2e_main, j2e_bias)
    with torch.no_grad():  # larger weights than the 0.02 init so every term matters
        for p in attn.parameters():
            p.normal_(0.0, 0.3)
    x, e = torch.randn(3, 17, DIM), torch.randn(3, 17, DIM)
    expected = _numpy_hyper_attention(attn, x.double().numpy(), e.double().numpy())
    np.testing.assert_allclose(attn(x, e).detach().numpy(), expected, atol=2e-5)
    assert ("w1" in dict(attn.named_parameters())) == j2e_bias
    changed = not torch.allclose(attn(x, e), attn(x, torch.randn(3, 17, DIM)))
    assert changed == (j2e_main or j2e_bias)  # without both terms the hyperedges play no part


def test_hyper_attention_initialisation() -> None:
    attn = HyperAttention(128, 8)
    assert torch.equal(attn.w1, torch.zeros(8, 16))
    assert torch.equal(attn.q.bias, torch.zeros(128)) and torch.equal(attn.kv.bias, torch.zeros(256))
    assert 0.019 < attn.kv.weight.std().item() < 0.021  # normal with std 0.02 (truncated at +-2, as timm)
    assert abs(attn.kv.weight.mean().item()) < 1e-3


def test_merge_modes_against_numpy() -> None:
    torch.manual_seed(3)
    outs = [torch.randn(2, 3, 17, DIM) for _ in range(2)]
    stacked = np.stack([o.numpy() for o in outs])
    for mode, expected in (("mean", stacked.mean(0)), ("max", stacked.max(0))):
        block = HyperBlock(DIM, HEADS, 2.0, 0.0, (LABEL1, LABEL2), mode)
        np.testing.assert_allclose(block._merge(outs).numpy(), expected, atol=1e-6)
    block = HyperBlock(DIM, HEADS, 2.0, 0.0, (LABEL1, LABEL2), "weight_mean")
    with torch.no_grad():
        block.merge_weight.copy_(torch.tensor([0.3, -0.5]))
    w = np.exp([0.3, -0.5]) / np.exp([0.3, -0.5]).sum()
    np.testing.assert_allclose(block._merge(outs).detach().numpy(), w[0] * stacked[0] + w[1] * stacked[1], atol=1e-6)


def test_block_shapes_and_invalid_merge() -> None:
    x = torch.randn(2, 5, 17, DIM)
    for mode in ("mean", "max", "weight_mean"):
        block = HyperBlock(DIM, HEADS, 2.0, 0.1, (LABEL1, LABEL2), mode)
        assert block(x).shape == x.shape
        assert [m.num_edges for m in block.hyper_edges] == [6, 3]
    assert HyperBlock(DIM, HEADS, 2.0, 0.0, (LABEL1,), "none")(x).shape == x.shape
    with pytest.raises(ValueError, match="merge_mode 'none'"):
        HyperBlock(DIM, HEADS, 2.0, 0.0, (LABEL1, LABEL2), "none")


def test_loading_another_partition_is_refused() -> None:
    saved = HyperEdge(DIM, LABEL1).state_dict()
    HyperEdge(DIM, LABEL1).load_state_dict(saved)  # same partition: fine
    relabelled = (1, 0, 0, 0, 2, 2, 2, 1, 1, 3, 3, 4, 4, 4, 5, 5, 5)  # same shape (17, 6), other partition
    with pytest.raises(CheckpointError, match="membership"):
        HyperEdge(DIM, relabelled).load_state_dict(saved)
    with pytest.raises(CheckpointError, match="differs"):
        HyperEdge(DIM, LABEL2).load_state_dict(saved)

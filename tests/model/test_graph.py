"""Skeleton graph: exactly the 16 H36M bones plus self loops, column-normalised."""

from __future__ import annotations

import numpy as np

from lib.model.graph import normalized_adjacency, skeleton_adjacency

# The 16 H36M-17 bones written out by hand (child, parent), from the joint order in the reference.
BONES_BY_HAND = [(1, 0), (2, 1), (3, 2), (4, 0), (5, 4), (6, 5), (7, 0), (8, 7), (9, 8), (10, 9),
                 (11, 8), (12, 11), (13, 12), (14, 8), (15, 14), (16, 15)]
# Degrees including the self loop: the original's list [5,3,3,2,3,3,2,3,5,3,2,3,3,2,3,3,3] minus its
# spurious pelvis <-> right-wrist edge (joints 0 and 16).
DEGREES_BY_HAND = [4, 3, 3, 2, 3, 3, 2, 3, 5, 3, 2, 3, 3, 2, 3, 3, 2]


def test_adjacency_is_bones_plus_self_loops() -> None:
    adj = skeleton_adjacency().numpy()
    expected = np.eye(17)
    for a, b in BONES_BY_HAND:
        expected[a, b] = expected[b, a] = 1.0
    np.testing.assert_array_equal(adj, expected)
    off_diagonal_edges = {(i, j) for i, j in zip(*np.nonzero(adj)) if i < j}
    assert len(off_diagonal_edges) == 16
    assert adj[0, 16] == 0 and adj[16, 0] == 0  # no pelvis <-> right-wrist edge


def test_normalized_columns_sum_to_one_and_divide_by_degree() -> None:
    norm = normalized_adjacency().numpy()
    np.testing.assert_allclose(norm.sum(axis=0), np.ones(17), atol=1e-7)
    degrees = np.asarray(DEGREES_BY_HAND, dtype=np.float64)
    adj = skeleton_adjacency().numpy()
    np.testing.assert_allclose(norm, adj / degrees[None, :], atol=1e-7)
    # hand-worked column of the pelvis: 1/4 at rows {0, 1, 4, 7}
    np.testing.assert_allclose(np.nonzero(norm[:, 0])[0], [0, 1, 4, 7])
    np.testing.assert_allclose(norm[[0, 1, 4, 7], 0], 0.25)

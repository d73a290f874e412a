"""The H36M-17 skeleton graph that initialises the spatial attention's joint-to-joint bias.

The original (``graph/graph.py``, strategy ``uniform``, ``max_hop=1``) used the root's parent -1 as
an index and so added a spurious pelvis <-> right-wrist edge; here the edges are exactly the 16
bones of ``H36M_BONES`` plus self loops.
"""

from __future__ import annotations

import torch
from torch import Tensor

from lib.body.joint_names import H36M_BONES, H36M_NUM_JOINTS


def skeleton_adjacency(num_joints: int = H36M_NUM_JOINTS,
                       bones: tuple[tuple[int, int], ...] = H36M_BONES) -> Tensor:
    """Binary symmetric adjacency with self loops: ``A[i, j] = 1`` iff i == j or (i, j) is a bone.

    Returns:
        (J, J) float32.
    """
    adj = torch.eye(num_joints)
    for child, parent in bones:
        adj[child, parent] = 1.0
        adj[parent, child] = 1.0
    return adj


def normalized_adjacency(num_joints: int = H36M_NUM_JOINTS,
                         bones: tuple[tuple[int, int], ...] = H36M_BONES) -> Tensor:
    """Column-normalised adjacency ``A D^-1`` (the original's ``normalize_digraph``): ``A[i, j] / deg(j)``.

    Every column sums to 1; ``deg`` counts the self loop.

    Returns:
        (J, J) float32.
    """
    adj = skeleton_adjacency(num_joints, bones)
    return adj / adj.sum(dim=0, keepdim=True)

"""HybrIK's 29-joint skeleton: the 24 SMPL joints plus 5 leaf points taken from the shaped template.

Joints 24..28 (head top, left and right middle fingertip, left and right big toe) are the rest-pose
vertices ``LEAF_VERTEX_IDS`` of the shaped template; they hang from SMPL joints 15, 22, 23, 10, 11.
They give the head, hands and feet a bone to swing, so HybrIK estimates all 24 rotations.
"""

from __future__ import annotations

from lib.body.joint_names import SMPL_FLIP_PAIRS, SMPL_NUM_JOINTS, SMPL_PARENTS, perm_from_pairs

HYBRIK_NUM_JOINTS = 29
NUM_TWIST = SMPL_NUM_JOINTS - 1  # one twist angle per non-root SMPL joint (joint j -> row j - 1)
LEAF_VERTEX_IDS = (411, 2445, 5905, 3216, 6617)  # head top, L / R middle fingertip, L / R big toe
LEAF_PARENTS = (15, 22, 23, 10, 11)
HYBRIK_PARENTS = SMPL_PARENTS + LEAF_PARENTS
LEAF_FLIP_PAIRS = ((25, 26), (27, 28))
HYBRIK_FLIP_PAIRS = SMPL_FLIP_PAIRS + LEAF_FLIP_PAIRS
# The pelvis orientation is fitted to its three children (spine1, left hip, right hip), HybrIK's order.
PELVIS_CHILDREN = (3, 1, 2)


HYBRIK_FLIP_PERM = perm_from_pairs(HYBRIK_NUM_JOINTS, HYBRIK_FLIP_PAIRS)
# Twist rows are joints 1..23, so a flip swaps the rows of the SMPL pairs shifted by one.
TWIST_FLIP_PERM = perm_from_pairs(NUM_TWIST, tuple((a - 1, b - 1) for a, b in SMPL_FLIP_PAIRS))


def _ik_children() -> tuple[int, ...]:
    """The child whose bone each SMPL joint 1..23 swings: its lowest-numbered child (spine3 -> neck).

    Index 0 (the pelvis) holds -1: its rotation comes from ``PELVIS_CHILDREN``.
    """
    children = [-1] * SMPL_NUM_JOINTS
    for joint in range(1, SMPL_NUM_JOINTS):
        children[joint] = min(c for c, p in enumerate(HYBRIK_PARENTS) if p == joint)
    return tuple(children)


def _levels() -> tuple[tuple[int, ...], ...]:
    """SMPL joints 1..23 grouped by depth in the tree; a level only depends on earlier levels."""
    depth = [0] * SMPL_NUM_JOINTS
    for joint in range(1, SMPL_NUM_JOINTS):
        depth[joint] = depth[SMPL_PARENTS[joint]] + 1
    return tuple(tuple(j for j in range(1, SMPL_NUM_JOINTS) if depth[j] == d) for d in range(1, max(depth) + 1))


IK_CHILDREN = _ik_children()
IK_LEVELS = _levels()

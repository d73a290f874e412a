"""Joint tables used everywhere: names, kinematic trees, flip permutations, evaluation subsets.

Index maps are defined once here; call sites never spell out joint numbers.
"""

SMPL_NUM_JOINTS = 24
SMPL_NUM_VERTICES = 6890
SMPL_NUM_FACES = 13776
SMPL_NUM_BETAS = 10

SMPL_JOINT_NAMES = (
    "pelvis", "left_hip", "right_hip", "spine1", "left_knee", "right_knee", "spine2",
    "left_ankle", "right_ankle", "spine3", "left_foot", "right_foot", "neck",
    "left_collar", "right_collar", "head", "left_shoulder", "right_shoulder",
    "left_elbow", "right_elbow", "left_wrist", "right_wrist", "left_hand", "right_hand",
)
# Parent of each SMPL joint; -1 for the root.
SMPL_PARENTS = (-1, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 9, 9, 12, 13, 14, 16, 17, 18, 19, 20, 21)
# Left/right pairs of SMPL joints, swapped by a horizontal flip.
SMPL_FLIP_PAIRS = ((1, 2), (4, 5), (7, 8), (10, 11), (13, 14), (16, 17), (18, 19), (20, 21), (22, 23))


def perm_from_pairs(n: int, pairs: tuple[tuple[int, int], ...]) -> tuple[int, ...]:
    """The permutation of ``range(n)`` that swaps each pair (a flip's joint reordering)."""
    perm = list(range(n))
    for a, b in pairs:
        perm[a], perm[b] = b, a
    return tuple(perm)


SMPL_FLIP_PERM = perm_from_pairs(SMPL_NUM_JOINTS, SMPL_FLIP_PAIRS)

H36M_NUM_JOINTS = 17
H36M_JOINT_NAMES = (
    "pelvis", "right_hip", "right_knee", "right_ankle", "left_hip", "left_knee", "left_ankle",
    "spine", "thorax", "nose", "head_top", "left_shoulder", "left_elbow", "left_wrist",
    "right_shoulder", "right_elbow", "right_wrist",
)
H36M_PARENTS = (-1, 0, 1, 2, 0, 4, 5, 0, 7, 8, 9, 8, 11, 12, 8, 14, 15)
H36M_LEFT = (4, 5, 6, 11, 12, 13)
H36M_RIGHT = (1, 2, 3, 14, 15, 16)
H36M_FLIP_PERM = perm_from_pairs(H36M_NUM_JOINTS, tuple(zip(H36M_LEFT, H36M_RIGHT)))
H36M_ROOT = 0  # pelvis: joint 0 of J_regressor_h36m_correct
# The 14 joints of the standard mesh protocol (SPIN / MotionBERT / HybrIK): drop pelvis, spine, nose.
H36M_EVAL_14 = (1, 2, 3, 4, 5, 6, 8, 10, 11, 12, 13, 14, 15, 16)

# Bones of the H36M skeleton as (child, parent) pairs (16 edges, no spurious root edge).
H36M_BONES = tuple((j, p) for j, p in enumerate(H36M_PARENTS) if p >= 0)

# COCO-17 (mmpose / ViTPose order), used to convert 2D detections to H36M-17.
COCO_JOINT_NAMES = (
    "nose", "left_eye", "right_eye", "left_ear", "right_ear", "left_shoulder", "right_shoulder",
    "left_elbow", "right_elbow", "left_wrist", "right_wrist", "left_hip", "right_hip",
    "left_knee", "right_knee", "left_ankle", "right_ankle",
)

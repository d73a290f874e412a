"""BVH (Biovision hierarchy) of an SMPL motion: the 24-joint skeleton and one frame per video frame.

Frame and units as every exported file (``lib.deploy.animation``): metres, Y up, the video's camera at
the origin looking down -Z. The hierarchy is SMPL's (joint names as ``lib.body.joint_names``, the
pelvis the root, each joint's OFFSET its rest offset from its parent for the character's one body
shape; the T-pose is the rest pose), leaf joints (feet, head, hands) end in an End Site continuing
their bone by half its length. The root has 6 channels (``Xposition Yposition Zposition`` = the
pelvis joint's position, root OFFSET 0, then its rotation), every other joint 3; rotations are
``Zrotation Xrotation Yrotation`` in degrees, i.e. ``R = Rz @ Rx @ Ry`` acting on column vectors in the
parent's frame. Angles are made continuous over frames (the nearer of the two Euler solutions, whole
turns added), so tools that interpolate Euler angles between frames do not spin.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from lib.atomic_write import atomic_open
from lib.deploy.animation import Motion, Rig
from lib.geometry.rotation import matrix_to_euler_zxy

ROOT_CHANNELS = "CHANNELS 6 Xposition Yposition Zposition Zrotation Xrotation Yrotation"
JOINT_CHANNELS = "CHANNELS 3 Zrotation Xrotation Yrotation"
END_SITE_FRACTION = 0.5  # an End Site continues its joint's bone by this fraction of the bone's length
DECIMALS = 6  # degrees and metres: 1e-6 deg at 1 m is 2e-8 m


def depth_first(parents: tuple[int, ...]) -> list[int]:
    """Joint ids in the order a BVH lists them: depth first from the root, children by id."""
    order: list[int] = []
    stack = [parents.index(-1)]
    while stack:
        joint = stack.pop()
        order.append(joint)
        stack.extend(sorted((c for c, p in enumerate(parents) if p == joint), reverse=True))
    return order


def continuous_euler_zxy(angles: np.ndarray) -> np.ndarray:
    """(F, J, 3) ZXY angles rad -> the same rotations, each frame's angles nearest the previous frame's.

    Every rotation has two ZXY solutions, (z, x, y) and (z + pi, pi - x, y + pi), each defined up to
    whole turns; the nearer one (sum of absolute differences) is kept.
    """
    z, x, y = angles[..., 0], angles[..., 1], angles[..., 2]
    alternative = np.stack([z + np.pi, np.pi - x, y + np.pi], axis=-1)  # (F, J, 3)
    out = angles.copy()
    for f in range(1, len(angles)):
        previous = out[f - 1]  # (J, 3)
        candidates = np.stack([angles[f], alternative[f]])  # (2, J, 3)
        candidates = candidates + 2.0 * np.pi * np.round((previous - candidates) / (2.0 * np.pi))
        distance = np.abs(candidates - previous).sum(-1)  # (2, J)
        out[f] = np.where((distance[1] < distance[0])[:, None], candidates[1], candidates[0])
    return out


def _hierarchy(rig: Rig, rest_joints: np.ndarray) -> list[str]:
    lines: list[str] = ["HIERARCHY"]

    def vector(v: np.ndarray) -> str:
        return " ".join(f"{float(x):.{DECIMALS}f}" for x in v)

    def write(joint: int, depth: int) -> None:
        pad = "\t" * depth
        parent = rig.parents[joint]
        offset = np.zeros(3) if parent < 0 else rest_joints[joint] - rest_joints[parent]
        lines.append(f"{pad}{'ROOT' if parent < 0 else 'JOINT'} {rig.names[joint]}")
        lines.append(f"{pad}{{")
        lines.append(f"{pad}\tOFFSET {vector(offset)}")
        lines.append(f"{pad}\t{ROOT_CHANNELS if parent < 0 else JOINT_CHANNELS}")
        children = [c for c, p in enumerate(rig.parents) if p == joint]
        for child in children:
            write(child, depth + 1)
        if not children:
            lines.extend([f"{pad}\tEnd Site", f"{pad}\t{{",
                          f"{pad}\t\tOFFSET {vector(END_SITE_FRACTION * offset)}", f"{pad}\t}}"])
        lines.append(f"{pad}}}")

    write(rig.parents.index(-1), 0)
    return lines


def write_bvh(path: str | Path, motion: Motion, rig: Rig) -> Path:
    """Write one character's motion as BVH through ``lib.atomic_write``.

    Raises:
        WriteError: the file cannot be written.
    """
    order = depth_first(rig.parents)
    euler = matrix_to_euler_zxy(torch.from_numpy(np.ascontiguousarray(motion.rotations))).numpy()  # (F, 24, 3)
    degrees = np.degrees(continuous_euler_zxy(euler))[:, order]  # (F, 24, 3) in file order
    values = np.concatenate([motion.root_position, degrees.reshape(motion.frames, -1)], axis=1)  # (F, 3 + 72)
    lines = _hierarchy(rig, motion.rest_joints)
    lines += ["MOTION", f"Frames: {motion.frames}", f"Frame Time: {1.0 / motion.fps:.8f}"]
    lines += [" ".join(f"{v:.{DECIMALS}f}" for v in row) for row in values]
    with atomic_open(path, "w", encoding="utf-8") as handle:
        handle.write("\n".join(lines) + "\n")
    return Path(path)

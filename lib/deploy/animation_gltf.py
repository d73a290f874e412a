"""glTF 2.0 binary (.glb) of SMPL motions: the mesh skinned to its 24 joints, one keyframe per frame.

What the file holds (frame and units: ``lib.deploy.animation``, metres, Y up, the video's camera at
the origin looking down -Z):

* per character (``Motion``; ``infer_mesh`` writes ``refined`` and ``hybrik_input``): a node of that
  name holding a skeleton of 24 joint nodes named as SMPL's joints (the pelvis the root, each child's
  translation its rest offset from the parent), a mesh node ``<name>_mesh`` (the rest mesh of the
  character's shape, vertex normals, a material: the refined body opaque, HybrIK's input a translucent
  grey ghost) skinned to them with SMPL's weights (``JOINTS_n`` / ``WEIGHTS_n`` sets of 4, largest weights first, so a viewer
  that reads only the first set gets the four strongest), and SMPL's pose blend shapes as morph
  targets (the meshes share one copy, ``pose_morphs``);
* one animation ``motion``: for every character, per frame, the rotation of each joint (unit
  quaternion), the pelvis translation and the morph weights; LINEAR interpolation (spherical for
  rotations), keyframe f at time f / fps;
* a perspective camera ``hybrik_camera`` at the origin with HybrIK's median focal length, when known;
* in ``asset.extras``: units, frame, fps, frame count and the invalid frames (bridged from their
  neighbours, as the npz's ``valid`` says).

Skinned by the glTF rules (joint matrix = global transform x inverse bind matrix, morph targets added
before skinning), every keyframe reproduces SMPL's linear blend skinning with pose blend shapes
exactly (float32 rounding). Written by hand (json + struct); ``lib.atomic_write`` writes the file.

**Morph weights in [0, 1].** SMPL weighs its 207 pose blend shapes by the entries of ``R_j - I``, which
lie in [-2, 0] (diagonal) and [-1, 1] (off-diagonal). Blender's glTF importer (3.x and 4.x) widens a
shape key's slider range from the first keyframe only and then clamps every other value into it, so
signed weights would be cut. Each diagonal entry is therefore one target scaled by -2 with weight
``(1 - R_ii) / 2``, each off-diagonal entry two targets, ``+d`` with weight ``max(R_ij, 0)`` and
``-d`` with weight ``max(-R_ij, 0)``: 345 targets (15 per joint), every weight in [0, 1], 0 at rest,
the sum exactly SMPL's. The rest mesh is the T-pose, so a viewer without morph targets still shows
the body.
"""

from __future__ import annotations

import json
import math
import struct
from pathlib import Path
from typing import Any

import numpy as np
import torch

from lib.atomic_write import atomic_open
from lib.deploy.animation import Motion, Rig
from lib.geometry.rotation import matrix_to_quaternion

GLB_MAGIC, GLB_VERSION = b"glTF", 2
CHUNK_JSON, CHUNK_BIN = b"JSON", b"BIN\x00"
FLOAT, UNSIGNED_BYTE, UNSIGNED_SHORT, UNSIGNED_INT = 5126, 5121, 5123, 5125  # accessor component types
ARRAY_BUFFER, ELEMENT_ARRAY_BUFFER = 34962, 34963  # buffer view targets
INFLUENCES_PER_SET = 4  # joints per JOINTS_n / WEIGHTS_n attribute
ZNEAR_M = 0.01
GENERATOR = "ehg-mesh-refine deployment/infer_mesh.py --export"
MATERIALS = {  # base colour RGBA per character; anything else gets the first
    "refined": (0.45, 0.62, 0.90, 1.0),
    "hybrik_input": (0.75, 0.75, 0.75, 0.35),
}
ANIMATION_NAME = "motion"
DIAGONAL_SCALE = -2.0  # R_ii - 1 lies in [-2, 0]: weight (1 - R_ii) / 2 in [0, 1] on the target scaled by -2
CAMERA_NAME = "hybrik_camera"
_TYPE_SIZES = {"SCALAR": 1, "VEC3": 3, "VEC4": 4, "MAT4": 16}


class _Builder:
    """Accumulates the binary chunk, its buffer views and accessors (4-byte aligned, little-endian)."""

    def __init__(self) -> None:
        self.blob = bytearray()
        self.views: list[dict[str, Any]] = []
        self.accessors: list[dict[str, Any]] = []

    def view(self, data: bytes, target: int | None = None) -> int:
        self.blob.extend(b"\x00" * (-len(self.blob) % 4))
        view = {"buffer": 0, "byteOffset": len(self.blob), "byteLength": len(data)}
        if target is not None:
            view["target"] = target
        self.blob.extend(data)
        self.views.append(view)
        return len(self.views) - 1

    def accessor(self, array: np.ndarray, kind: str, component: int, target: int | None = None,
                 bounds: bool = False) -> int:
        """An accessor over ``array`` (count, *element) in a new buffer view; min / max when ``bounds``."""
        dtype = {FLOAT: "<f4", UNSIGNED_BYTE: "u1", UNSIGNED_SHORT: "<u2", UNSIGNED_INT: "<u4"}[component]
        data = np.ascontiguousarray(array, dtype=dtype).reshape(len(array), -1)  # (count, element size)
        if data.shape[1] != _TYPE_SIZES[kind]:
            raise ValueError(f"{kind} accessor over elements of {data.shape[1]} numbers")
        accessor: dict[str, Any] = {"bufferView": self.view(data.tobytes(), target), "componentType": component,
                                    "count": len(data), "type": kind}
        if bounds:
            accessor["min"] = [float(v) for v in data.min(axis=0)]
            accessor["max"] = [float(v) for v in data.max(axis=0)]
        self.accessors.append(accessor)
        return len(self.accessors) - 1


def vertex_normals(vertices: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """(V, 3) unit normals: the area-weighted sum of the adjacent faces' normals."""
    corners = vertices[faces]  # (F, 3, 3)
    face_normals = np.cross(corners[:, 1] - corners[:, 0], corners[:, 2] - corners[:, 0])  # (F, 3), |.| = 2 area
    normals = np.zeros_like(vertices)
    for k in range(3):
        np.add.at(normals, faces[:, k], face_normals)
    length = np.linalg.norm(normals, axis=1, keepdims=True)
    return normals / np.where(length > 0, length, 1.0)


def influence_sets(weights: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """SMPL's (V, J) weights -> joints (V, S, 4) uint8 and weights (V, S, 4) float32, largest first.

    S = ceil(most joints any vertex uses / 4); unused slots hold joint 0 with weight 0; each vertex's
    weights are renormalised in float32 to sum to 1.
    """
    used = int((weights > 0).sum(axis=1).max())
    slots = INFLUENCES_PER_SET * max(1, math.ceil(used / INFLUENCES_PER_SET))
    order = np.argsort(-weights, axis=1, kind="stable")[:, :slots]  # (V, slots) joint ids, largest first
    chosen = np.take_along_axis(weights, order, axis=1)  # (V, slots)
    joints = np.where(chosen > 0, order, 0).astype(np.uint8)
    chosen = (chosen / chosen.sum(axis=1, keepdims=True)).astype(np.float32)
    sets = slots // INFLUENCES_PER_SET
    return joints.reshape(-1, sets, INFLUENCES_PER_SET), chosen.reshape(-1, sets, INFLUENCES_PER_SET)


def quaternions_xyzw(rotations: np.ndarray) -> np.ndarray:
    """(F, J, 3, 3) -> (F, J, 4) unit quaternions (x, y, z, w), sign-continuous over frames (so that
    interpolation between keyframes takes the short way)."""
    wxyz = matrix_to_quaternion(torch.from_numpy(np.ascontiguousarray(rotations, dtype=np.float64))).numpy()
    quat = np.concatenate([wxyz[..., 1:], wxyz[..., :1]], axis=-1)  # (F, J, 4) x, y, z, w
    flips = np.sign(np.einsum("fjq,fjq->fj", quat[1:], quat[:-1]))  # (F - 1, J): -1 where the sign flips
    signs = np.cumprod(np.concatenate([np.ones((1, quat.shape[1])), np.where(flips < 0, -1.0, 1.0)]), axis=0)  # (F, J)
    return quat * signs[..., None]


def _column_major(matrices: np.ndarray) -> np.ndarray:
    """(N, 4, 4) -> (N, 16) in glTF's column-major order."""
    return matrices.transpose(0, 2, 1).reshape(len(matrices), 16)


def pose_morphs(rig: Rig) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """SMPL's pose blend shapes as morph targets with weights in [0, 1] (see the module docstring).

    Returns:
        source (K,) the entry of ``R_j - I`` (index into the 207) each target stands for, scale (K,)
        (target = scale x SMPL's blend shape, weight = max(entry / scale, 0)), and K target names
        ``pose_<joint>_<r><c>`` (diagonal) or ``pose_<joint>_<r><c>+`` / ``-``.
    """
    source, scale, names = [], [], []
    for j, name in enumerate(rig.names[1:]):
        for r in range(3):
            for c in range(3):
                entry = 9 * j + 3 * r + c
                signs = ((DIAGONAL_SCALE, ""),) if r == c else ((1.0, "+"), (-1.0, "-"))
                for sign, suffix in signs:
                    source.append(entry)
                    scale.append(sign)
                    names.append(f"pose_{name}_{r}{c}{suffix}")
    return np.array(source), np.array(scale), names


def morph_weights(motion: Motion, source: np.ndarray, scale: np.ndarray) -> np.ndarray:
    """(F, K) the targets' weights in [0, 1] (``pose_morphs``) of a motion."""
    return np.maximum(motion.pose_weights[:, source] / scale, 0.0)


def _add_character(gltf: dict[str, Any], builder: _Builder, motion: Motion, rig: Rig, shared: dict[str, Any]) -> None:
    """Nodes, skin, mesh and material of one character; its animation channels into ``shared``."""
    n_joints = len(rig.parents)
    first = len(gltf["nodes"])  # the joints are nodes first .. first + 23, in SMPL's order
    for j, parent in enumerate(rig.parents):
        offset = motion.rest_joints[j] - (motion.rest_joints[parent] if parent >= 0 else 0.0)
        node: dict[str, Any] = {"name": rig.names[j], "translation": [float(v) for v in offset]}
        children = [first + c for c, p in enumerate(rig.parents) if p == j]
        if children:
            node["children"] = children
        gltf["nodes"].append(node)
    inverse_bind = np.tile(np.eye(4), (n_joints, 1, 1))
    inverse_bind[:, :3, 3] = -motion.rest_joints  # bind pose: the T-pose, no rotation
    gltf["skins"].append({"name": motion.name, "joints": list(range(first, first + n_joints)),
                          "skeleton": first,
                          "inverseBindMatrices": builder.accessor(_column_major(inverse_bind), "MAT4", FLOAT)})
    attributes = {
        "POSITION": builder.accessor(motion.rest_vertices, "VEC3", FLOAT, ARRAY_BUFFER, bounds=True),
        "NORMAL": builder.accessor(vertex_normals(motion.rest_vertices, rig.faces), "VEC3", FLOAT, ARRAY_BUFFER),
        **shared["influences"],
    }
    color = MATERIALS.get(motion.name, next(iter(MATERIALS.values())))
    material: dict[str, Any] = {"name": motion.name, "pbrMetallicRoughness": {
        "baseColorFactor": list(color), "metallicFactor": 0.0, "roughnessFactor": 0.8}}
    if color[3] < 1.0:
        material["alphaMode"] = "BLEND"
    gltf["materials"].append(material)
    gltf["meshes"].append({"name": f"{motion.name}_mesh", "weights": [0.0] * len(shared["targets"]),
                           "extras": {"targetNames": shared["target_names"]},
                           "primitives": [{"attributes": attributes, "indices": shared["indices"],
                                           "material": len(gltf["materials"]) - 1, "targets": shared["targets"]}]})
    mesh_node = len(gltf["nodes"])
    gltf["nodes"].append({"name": f"{motion.name}_mesh", "mesh": len(gltf["meshes"]) - 1,
                          "skin": len(gltf["skins"]) - 1})
    gltf["nodes"].append({"name": motion.name, "children": [first]})  # the character: its skeleton's parent
    # The mesh at the scene's root (a skinned mesh ignores its parents); the skeleton under its own node
    # (Blender makes one armature per such node).
    gltf["scenes"][0]["nodes"] += [mesh_node, len(gltf["nodes"]) - 1]

    def channel(node: int, path: str, values: np.ndarray, kind: str) -> None:
        shared["samplers"].append({"input": shared["time"], "interpolation": "LINEAR",
                                   "output": builder.accessor(values, kind, FLOAT)})
        shared["channels"].append({"sampler": len(shared["samplers"]) - 1, "target": {"node": node, "path": path}})

    channel(first, "translation", motion.root_position, "VEC3")
    quats = quaternions_xyzw(motion.rotations)  # (F, 24, 4)
    for j in range(n_joints):
        channel(first + j, "rotation", quats[:, j], "VEC4")
    weights = morph_weights(motion, shared["source"], shared["scale"])  # (F, K)
    channel(mesh_node, "weights", weights.reshape(-1, 1), "SCALAR")  # (F x K,) frame-major


def write_glb(path: str | Path, motions: list[Motion] | tuple[Motion, ...], rig: Rig,
              camera: tuple[float, float] | None = None) -> Path:
    """Write the characters' motions (same frame count and rate) to a .glb through ``lib.atomic_write``.

    Args:
        motions: one or more characters (``lib.deploy.animation.motions_from_result``).
        rig: the shared skeleton, mesh and skinning (``lib.deploy.animation.rig_from_body``).
        camera: (vertical field of view rad, aspect W / H) of the video's camera, or None.
    Raises:
        WriteError: the file cannot be written.
    """
    frames, fps = motions[0].frames, motions[0].fps
    if any(m.frames != frames or m.fps != fps for m in motions):
        raise ValueError("every character needs the same frames and frame rate")
    builder = _Builder()
    gltf: dict[str, Any] = {
        "asset": {"version": "2.0", "generator": GENERATOR,
                  "extras": {"units": "metres", "up": "+Y", "frame": "HybrIK's camera frame turned 180 deg about "
                             "x: (x, y, z) -> (x, -y, -z); the camera at the origin looking down -Z", "fps": fps,
                             "frames": frames,
                             "invalid_frames": [int(f) for f in np.flatnonzero(~motions[0].valid)]}},
        "scene": 0, "scenes": [{"name": "infer_mesh", "nodes": []}], "nodes": [], "meshes": [], "materials": [],
        "skins": [], "accessors": builder.accessors, "bufferViews": builder.views,
    }
    joints, weights = influence_sets(rig.weights)
    source, scale, target_names = pose_morphs(rig)
    shared: dict[str, Any] = {
        "indices": builder.accessor(rig.faces.reshape(-1, 1), "SCALAR", UNSIGNED_INT, ELEMENT_ARRAY_BUFFER),
        "influences": {},
        "targets": [{"POSITION": builder.accessor(k * rig.pose_targets[e], "VEC3", FLOAT, ARRAY_BUFFER, bounds=True)}
                    for e, k in zip(source, scale)],
        "target_names": target_names, "source": source, "scale": scale,
        "time": builder.accessor((np.arange(frames) / fps).reshape(-1, 1), "SCALAR", FLOAT, bounds=True),
        "samplers": [], "channels": [],
    }
    for s in range(joints.shape[1]):
        shared["influences"][f"JOINTS_{s}"] = builder.accessor(joints[:, s], "VEC4", UNSIGNED_BYTE, ARRAY_BUFFER)
        shared["influences"][f"WEIGHTS_{s}"] = builder.accessor(weights[:, s], "VEC4", FLOAT, ARRAY_BUFFER)
    for motion in motions:
        _add_character(gltf, builder, motion, rig, shared)
    gltf["animations"] = [{"name": ANIMATION_NAME, "samplers": shared["samplers"], "channels": shared["channels"]}]
    if camera is not None:
        yfov, aspect = camera
        gltf["cameras"] = [{"name": CAMERA_NAME, "type": "perspective",
                            "perspective": {"yfov": yfov, "aspectRatio": aspect, "znear": ZNEAR_M}}]
        gltf["nodes"].append({"name": CAMERA_NAME, "camera": 0})  # at the origin, looking down -Z
        gltf["scenes"][0]["nodes"].append(len(gltf["nodes"]) - 1)
    builder.blob.extend(b"\x00" * (-len(builder.blob) % 4))
    gltf["buffers"] = [{"byteLength": len(builder.blob)}]
    return _write(path, gltf, bytes(builder.blob))


def _write(path: str | Path, gltf: dict[str, Any], blob: bytes) -> Path:
    """The GLB container: 12-byte header, the JSON chunk (space-padded), the binary chunk (zero-padded)."""
    text = json.dumps(gltf, separators=(",", ":")).encode("utf-8")
    text += b" " * (-len(text) % 4)
    total = 12 + 8 + len(text) + 8 + len(blob)
    with atomic_open(path, "wb") as handle:
        handle.write(GLB_MAGIC + struct.pack("<II", GLB_VERSION, total))
        handle.write(struct.pack("<I", len(text)) + CHUNK_JSON + text)
        handle.write(struct.pack("<I", len(blob)) + CHUNK_BIN + blob)
    return Path(path)

"""Animation files out (infer_mesh --export): the GLB and the BVH read back with independent code.

The glTF is read with pygltflib and skinned here with numpy by the glTF 2.0 rules (node TRS, animation
samplers at the keyframe times, joint matrix = global x inverse bind, morph targets before skinning);
the BVH is parsed here and posed by forward kinematics from its own channel list. Both must give the
posed joints (and, for glTF, the vertices) of our SMPL forward (``BodyModel``) with the exported body
shape, placed as the npz places meshes and turned into the files' frame (Y up: (x, y, z) -> (x, -y, -z)),
within 1 mm. The Khronos glTF validator (npm ``gltf-validator``) runs when node has it.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pygltflib
import pytest
import torch

from lib.body.joint_names import SMPL_JOINT_NAMES, SMPL_PARENTS
from lib.body.smpl import HYBRIK_H36M_REGRESSOR_FILE, BodyModel, load_joint_regressor
from lib.deploy import animation, animation_bvh, animation_gltf
from lib.deploy.pipeline import export_animation
from lib.errors import ConfigError
from lib.geometry.rotation import axis_angle_to_matrix

TOLERANCE_M = 1e-3            # the issue's bar: 1 mm
Y_UP = np.diag([1.0, -1.0, -1.0])  # HybrIK's camera frame (y down, z forward) -> the files' frame, written anew here
FPS = 25.0
CHECK_FRAMES = (0, 7, 19)     # several frames (the clip is longer)
HEAD, PELVIS = SMPL_JOINT_NAMES.index("head"), 0
COMPONENT_DTYPES = {5120: np.int8, 5121: np.uint8, 5122: np.int16, 5123: np.uint16, 5125: np.uint32, 5126: np.float32}
TYPE_SIZES = {"SCALAR": 1, "VEC2": 2, "VEC3": 3, "VEC4": 4, "MAT4": 16}


@dataclass
class Exported:
    arrays: dict[str, np.ndarray]
    glb: Path
    bvh: Path
    body: BodyModel
    regressor: np.ndarray


@pytest.fixture(scope="module")
def exported(data_root: Path, synthetic_video, tmp_path_factory: pytest.TempPathFactory) -> Exported:
    """infer_mesh-like result arrays of the synthetic clip (a 'refined' motion that differs from the input,
    per-frame betas, two invalid frames) exported through ``pipeline.export_animation``."""
    frames = synthetic_video.frames
    rng = np.random.default_rng(3)
    input_rot = axis_angle_to_matrix(torch.from_numpy(synthetic_video.pose_aa.reshape(frames, 24, 3))).numpy()
    bend = np.zeros((frames, 24, 3))
    bend[:, 1:] = 0.6 * np.sin(np.linspace(0, 3, frames))[:, None, None] * rng.normal(size=(1, 23, 3))
    refined_rot = input_rot @ axis_angle_to_matrix(torch.from_numpy(bend)).numpy()  # large bends: correctives count
    turn = np.zeros((frames, 3))
    turn[:, 1] = np.linspace(0, 2 * np.pi, frames)  # the refined person turns round about the vertical (camera y)
    refined_rot[:, 0] = axis_angle_to_matrix(torch.from_numpy(turn)).numpy() @ refined_rot[:, 0]
    res = synthetic_video.res
    input_betas = np.asarray(res["pred_betas"], dtype=np.float64)
    refined_betas = input_betas.mean(0) + 0.2 * np.sin(np.linspace(0, 2, frames))[:, None]
    valid = np.ones(frames, dtype=bool)
    valid[[3, 4]] = False
    refined_betas[[3, 4]] += 2.0  # invalid frames do not shape the body
    transl = np.asarray(res["transl"], dtype=np.float64)
    arrays = {"rot_mat": refined_rot, "betas": refined_betas, "transl": transl, "input_rot_mat": input_rot,
              "input_betas": input_betas, "input_transl": transl, "valid": valid, "fps": np.float64(FPS),
              "focal_px": np.full(frames, 1400.0), "image_size": np.tile([1920, 1080], (frames, 1))}
    body = BodyModel(data_root)
    regressor = load_joint_regressor(data_root / HYBRIK_H36M_REGRESSOR_FILE, 17)
    out = tmp_path_factory.mktemp("export")
    glb, bvh = export_animation([out / "motion.glb", out / "motion.bvh"], arrays, body, regressor)
    return Exported(arrays, glb, bvh, body, regressor)


def smpl_reference(ex: Exported, prefix: str) -> tuple[np.ndarray, np.ndarray]:
    """Our SMPL forward with the exported shape (mean betas over the valid frames), placed as the npz
    (V - HybrIK pelvis(V) + transl) and turned Y up: joints (F, 24, 3), vertices (F, 6890, 3) m."""
    rot, betas = ex.arrays[f"{prefix}rot_mat"], ex.arrays[f"{prefix}betas"]
    shape = betas[ex.arrays["valid"]].mean(0)
    out = ex.body(torch.tensor(rot, dtype=torch.float32), torch.tensor(shape, dtype=torch.float32).expand(len(rot), 10))
    vertices, joints = out.vertices.double().numpy(), out.joints.double().numpy()
    shift = ex.arrays[f"{prefix}transl"] - np.einsum("v,fvc->fc", ex.regressor[0], vertices)  # (F, 3)
    return (joints + shift[:, None]) @ Y_UP.T, (vertices + shift[:, None]) @ Y_UP.T


# ------------------------------------------------------------------------------- an independent glTF reader


class GltfScene:
    """A GLB read with pygltflib, posed with numpy by the glTF 2.0 rules."""

    def __init__(self, path: Path) -> None:
        self.gltf = pygltflib.GLTF2().load(str(path))
        self.blob = self.gltf.binary_blob()
        self.parent = {c: i for i, node in enumerate(self.gltf.nodes) for c in (node.children or [])}
        self.node_by_name = {}
        for i, node in enumerate(self.gltf.nodes):
            self.node_by_name.setdefault(node.name, i)

    def accessor(self, index: int) -> np.ndarray:
        acc = self.gltf.accessors[index]
        view = self.gltf.bufferViews[acc.bufferView]
        assert view.byteStride in (None, 0)  # tightly packed, as written
        size = TYPE_SIZES[acc.type]
        data = np.frombuffer(self.blob, dtype=COMPONENT_DTYPES[acc.componentType], count=acc.count * size,
                             offset=view.byteOffset + (acc.byteOffset or 0))
        return data.reshape(acc.count, size).astype(np.float64)

    def sample(self, node: int, path: str, t: float) -> np.ndarray | None:
        """The animated value of a node's property at time t (a keyframe time), or None if not animated."""
        for anim in self.gltf.animations:
            for channel in anim.channels:
                if channel.target.node == node and channel.target.path == path:
                    sampler = anim.samplers[channel.sampler]
                    times = self.accessor(sampler.input)[:, 0]
                    k = int(np.argmin(np.abs(times - t)))
                    assert abs(times[k] - t) < 1e-6 and sampler.interpolation == "LINEAR"
                    values = self.accessor(sampler.output)
                    per_key = len(values) // len(times)
                    return values[k * per_key:(k + 1) * per_key].reshape(-1)
        return None

    def local_matrix(self, node: int, t: float) -> np.ndarray:
        n = self.gltf.nodes[node]
        translation = self.sample(node, "translation", t)
        rotation = self.sample(node, "rotation", t)
        translation = np.asarray(n.translation or [0, 0, 0]) if translation is None else translation
        rotation = np.asarray(n.rotation or [0, 0, 0, 1]) if rotation is None else rotation
        assert n.matrix is None and n.scale in (None, [1, 1, 1])
        matrix = np.eye(4)
        matrix[:3, :3] = quaternion_xyzw_to_matrix(rotation)
        matrix[:3, 3] = translation
        return matrix

    def global_matrix(self, node: int, t: float) -> np.ndarray:
        matrix = self.local_matrix(node, t)
        while node in self.parent:
            node = self.parent[node]
            matrix = self.local_matrix(node, t) @ matrix
        return matrix

    def skinned_vertices(self, mesh_node: int, t: float) -> np.ndarray:
        """(V, 3): morph targets then linear blend skinning, as a glTF viewer does."""
        node = self.gltf.nodes[mesh_node]
        skin = self.gltf.skins[node.skin]
        primitive = self.gltf.meshes[node.mesh].primitives[0]
        positions = self.accessor(primitive.attributes.POSITION)
        weights = self.sample(mesh_node, "weights", t)
        weights = np.asarray(self.gltf.meshes[node.mesh].weights) if weights is None else weights
        for w, target in zip(weights, primitive.targets):
            positions = positions + w * self.accessor(target["POSITION"])
        inverse_bind = self.accessor(skin.inverseBindMatrices).reshape(-1, 4, 4).transpose(0, 2, 1)  # column-major
        joint_matrices = np.stack([self.global_matrix(j, t) for j in skin.joints]) @ inverse_bind  # (J, 4, 4)
        homogeneous = np.concatenate([positions, np.ones((len(positions), 1))], axis=1)  # (V, 4)
        skinned = np.zeros_like(positions)
        attributes = primitive.attributes.__dict__
        for s in range(8):
            if attributes.get(f"JOINTS_{s}") is None:
                break
            joints = self.accessor(attributes[f"JOINTS_{s}"]).astype(int)  # (V, 4)
            w = self.accessor(attributes[f"WEIGHTS_{s}"])  # (V, 4)
            for i in range(4):
                moved = np.einsum("vab,vb->va", joint_matrices[joints[:, i]], homogeneous)[:, :3]
                skinned += w[:, i:i + 1] * moved
        return skinned


def quaternion_xyzw_to_matrix(q: np.ndarray) -> np.ndarray:
    x, y, z, w = q / np.linalg.norm(q)
    return np.array([[1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
                     [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
                     [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)]])


def character_joints(scene: GltfScene, character: str) -> list[int]:
    """Node ids of a character's 24 joints, in SMPL's order (by name, under the character's node)."""
    root = scene.node_by_name[character]
    found: dict[str, int] = {}
    stack = [root]
    while stack:
        node = stack.pop()
        found.setdefault(scene.gltf.nodes[node].name, node)
        stack.extend(scene.gltf.nodes[node].children or [])
    return [found[name] for name in SMPL_JOINT_NAMES]


# --------------------------------------------------------------------------------- glTF round trip


@pytest.mark.parametrize("character, prefix", [("refined", ""), ("hybrik_input", "input_")])
def test_glb_joints_and_skinned_vertices_equal_smpl_forward(exported: Exported, character: str, prefix: str) -> None:
    scene = GltfScene(exported.glb)
    joints_ref, vertices_ref = smpl_reference(exported, prefix)
    joint_nodes = character_joints(scene, character)
    frames = len(joints_ref)
    for f in range(frames):  # every frame's joints
        joints = np.stack([scene.global_matrix(j, f / FPS)[:3, 3] for j in joint_nodes])
        assert np.abs(joints - joints_ref[f]).max() < TOLERANCE_M, f
    mesh_node = scene.node_by_name[f"{character}_mesh"]
    for f in CHECK_FRAMES:  # the skinned mesh at several frames
        error = np.abs(scene.skinned_vertices(mesh_node, f / FPS) - vertices_ref[f]).max()
        assert error < TOLERANCE_M, (f, error)


def test_glb_frame_units_and_layout(exported: Exported) -> None:
    """Y up, metres, the camera at the origin looking down -Z: the person stands upright in front of it;
    two characters, one animation, HybrIK's camera, morph weights in [0, 1], sign-continuous quaternions."""
    scene = GltfScene(exported.glb)
    gltf = scene.gltf
    frames = len(exported.arrays["rot_mat"])
    assert gltf.asset.version == "2.0" and gltf.asset.extras["units"] == "metres"
    assert gltf.asset.extras["invalid_frames"] == [3, 4] and gltf.asset.extras["fps"] == FPS
    assert [a.name for a in gltf.animations] == ["motion"]
    for character in ("refined", "hybrik_input"):
        joints = character_joints(scene, character)
        for f in range(0, frames, 5):
            head, pelvis = (scene.global_matrix(joints[j], f / FPS)[:3, 3] for j in (HEAD, PELVIS))
            assert head[1] - pelvis[1] > 0.1  # the head above the pelvis (an upright person, Y up, metres)
            assert pelvis[2] < -1.0  # in front of the camera, which looks down -Z
            assert np.isclose(pelvis[2], -exported.arrays["transl"][f, 2], atol=0.3)  # metres, the same depth
    colours = {m.name: m.pbrMetallicRoughness.baseColorFactor for m in gltf.materials}
    assert colours["hybrik_input"][3] < 1.0 == colours["refined"][3]  # the input: a translucent ghost
    camera = gltf.cameras[0].perspective
    assert np.isclose(camera.yfov, 2 * np.arctan(1080 / 2 / 1400.0)) and np.isclose(camera.aspectRatio, 1920 / 1080)
    for channel in gltf.animations[0].channels:
        values = scene.accessor(gltf.animations[0].samplers[channel.sampler].output)
        if channel.target.path == "weights":
            assert values.min() >= 0.0 and values.max() <= 1.0  # Blender clamps other weights
        if channel.target.path == "rotation":
            assert np.all(np.einsum("fq,fq->f", values[1:], values[:-1]) >= 0.0)  # slerp takes the short way


def test_glb_passes_the_khronos_validator(exported: Exported) -> None:
    node, npm = shutil.which("node"), shutil.which("npm")
    if node is None:
        pytest.skip("node is not installed (the validator is npm's gltf-validator)")
    env = {"PATH": str(Path(node).parent)}
    if npm is not None:
        env["NODE_PATH"] = subprocess.run([npm, "root", "-g"], capture_output=True, text=True).stdout.strip()
    script = ("const fs = require('fs'); require('gltf-validator').validateBytes(new Uint8Array("
              "fs.readFileSync(process.argv[1]))).then(r => console.log(JSON.stringify(r.issues)))"
              ".catch(e => { console.error(e); process.exit(1); });")
    run = subprocess.run([node, "-e", script, str(exported.glb)], capture_output=True, text=True, env=env)
    if run.returncode != 0 and "Cannot find module" in run.stderr:
        pytest.skip("npm's gltf-validator is not installed (npm install -g gltf-validator)")
    assert run.returncode == 0, run.stderr
    issues = json.loads(run.stdout)
    assert issues["numErrors"] == 0 and issues["numWarnings"] == 0, issues["messages"]


def test_influence_sets_keep_every_weight_largest_first() -> None:
    rng = np.random.default_rng(0)
    weights = rng.random((50, 24)) * (rng.random((50, 24)) < 0.25)
    weights[:, 5] += 0.01  # every vertex uses at least one joint; some use up to ~11
    weights /= weights.sum(1, keepdims=True)
    joints, chosen = animation_gltf.influence_sets(weights)
    assert joints.shape[1] == int(np.ceil((weights > 0).sum(1).max() / 4))
    dense = np.zeros_like(weights)
    slots = joints.shape[1] * joints.shape[2]
    np.add.at(dense, (np.repeat(np.arange(50), slots), joints.reshape(-1)), chosen.reshape(-1))
    np.testing.assert_allclose(dense, weights, atol=1e-7)
    flat = chosen.reshape(50, -1)
    assert np.all(np.diff(flat, axis=1) <= 0)  # largest first: JOINTS_0 holds the four strongest
    np.testing.assert_allclose(flat.sum(1), 1.0, atol=1e-6)


def test_pose_morphs_sum_to_smpl_blend_shapes(exported: Exported) -> None:
    """345 targets with weights in [0, 1] add up to SMPL's sum over the 207 entries of R - I."""
    rig = animation.rig_from_body(exported.body)
    source, scale, names = animation_gltf.pose_morphs(rig)
    assert len(source) == len(names) == 23 * 15 and len(set(names)) == len(names)
    motion = animation.motions_from_result(exported.arrays, exported.body, exported.regressor)[0]
    weights = animation_gltf.morph_weights(motion, source, scale)  # (F, 345)
    assert weights.min() >= 0 and weights.max() <= 1
    ours = np.einsum("fk,kvc->fvc", weights[:3], scale[:, None, None] * rig.pose_targets[source])
    smpl = np.einsum("fe,evc->fvc", (motion.rotations[:3, 1:] - np.eye(3)).reshape(3, -1), rig.pose_targets)
    np.testing.assert_allclose(ours, smpl, atol=1e-12)


# ---------------------------------------------------------------------------------- BVH round trip


def elementary(axis: str, degrees: float) -> np.ndarray:
    c, s = np.cos(np.radians(degrees)), np.sin(np.radians(degrees))
    return {"X": np.array([[1, 0, 0], [0, c, -s], [0, s, c]]), "Y": np.array([[c, 0, s], [0, 1, 0], [-s, 0, c]]),
            "Z": np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]])}[axis]


def zxy_matrix(angles: np.ndarray) -> np.ndarray:
    """Rz @ Rx @ Ry of (z, x, y) rad."""
    z, x, y = np.degrees(angles)
    return elementary("Z", z) @ elementary("X", x) @ elementary("Y", y)


def parse_bvh(path: Path) -> tuple[list[dict], np.ndarray, float]:
    """Joints [{name, parent, offset, channels}] in file order, the motion (frames, values), frame time."""
    tokens = path.read_text(encoding="utf-8").split()
    joints: list[dict] = []
    stack: list[int | None] = []
    assert tokens[0] == "HIERARCHY"
    i = 1
    pending: dict | None = None
    while tokens[i] != "MOTION":
        token = tokens[i]
        if token in ("ROOT", "JOINT"):
            pending = {"name": tokens[i + 1], "parent": stack[-1] if stack else None}
            i += 2
        elif token == "End":  # End Site
            pending = {"name": None}
            i += 2
        elif token == "{":
            if pending.get("name") is not None:
                joints.append(pending)
                stack.append(len(joints) - 1)
            else:
                stack.append(None)
            i += 1
        elif token == "}":
            stack.pop()
            i += 1
        elif token == "OFFSET":
            pending["offset"] = np.array([float(v) for v in tokens[i + 1:i + 4]])
            i += 4
        elif token == "CHANNELS":
            count = int(tokens[i + 1])
            pending["channels"] = tokens[i + 2:i + 2 + count]
            i += 2 + count
        else:
            raise AssertionError(f"unexpected token {token}")
    frames = int(tokens[i + 2])
    frame_time = float(tokens[i + 5])
    values = np.array([float(v) for v in tokens[i + 6:]]).reshape(frames, -1)
    return joints, values, frame_time


def bvh_positions(joints: list[dict], row: np.ndarray) -> dict[str, np.ndarray]:
    """Forward kinematics of one frame: each joint's world position."""
    world: list[np.ndarray] = []
    k = 0
    positions = {}
    for joint in joints:
        local = np.eye(4)
        local[:3, 3] = joint["offset"]
        rotation = np.eye(3)
        for channel in joint["channels"]:
            value = row[k]
            k += 1
            if channel.endswith("position"):
                local[:3, 3] += value * np.eye(3)["XYZ".index(channel[0])]
            else:
                rotation = rotation @ elementary(channel[0], value)  # BVH: listed order, column vectors
        local[:3, :3] = rotation
        matrix = local if joint["parent"] is None else world[joint["parent"]] @ local
        world.append(matrix)
        positions[joint["name"]] = matrix[:3, 3]
    return positions


def test_bvh_joints_equal_smpl_forward(exported: Exported) -> None:
    joints, values, frame_time = parse_bvh(exported.bvh)
    joints_ref, _ = smpl_reference(exported, "")
    assert [j["name"] for j in joints][0] == "pelvis" and sorted(j["name"] for j in joints) == sorted(SMPL_JOINT_NAMES)
    for j in joints[1:]:  # the hierarchy is SMPL's
        assert j["parent"] is not None and joints[j["parent"]]["name"] == SMPL_JOINT_NAMES[
            SMPL_PARENTS[SMPL_JOINT_NAMES.index(j["name"])]]
    assert len(values) == len(joints_ref) and np.isclose(frame_time, 1 / FPS)
    for f in range(len(values)):
        positions = bvh_positions(joints, values[f])
        ours = np.stack([positions[name] for name in SMPL_JOINT_NAMES])
        assert np.abs(ours - joints_ref[f]).max() < TOLERANCE_M, f
    angles = values[:, 3:].reshape(len(values), -1, 3)
    assert np.abs(np.diff(angles, axis=0)).max() < 90.0  # no Euler flips between frames


def test_continuous_euler_keeps_rotations_and_removes_jumps() -> None:
    """A rotation passing through x = 90 deg (gimbal lock) and z across 180 deg: same rotations, small steps."""
    from lib.geometry.rotation import matrix_to_euler_zxy

    t = np.linspace(0, 1, 60)
    true = np.stack([np.pi * 0.9 + 0.6 * t, np.pi / 2 * (0.5 + t), 0.8 * np.sin(3 * t)], axis=-1)  # (60, 3)
    matrices = np.stack([zxy_matrix(angles) for angles in true])
    raw = matrix_to_euler_zxy(torch.from_numpy(matrices)).numpy()[:, None]  # (60, 1, 3)
    smooth = animation_bvh.continuous_euler_zxy(raw)[:, 0]
    back = np.stack([zxy_matrix(angles) for angles in smooth])
    np.testing.assert_allclose(back, matrices, atol=1e-9)
    assert np.abs(np.diff(raw[:, 0], axis=0)).max() > 3.0  # the raw decomposition jumps
    assert np.abs(np.diff(smooth, axis=0)).max() < 0.3


def test_export_suffixes_are_checked() -> None:
    animation.check_export_paths([Path("a.glb"), Path("b.BVH")])
    with pytest.raises(ConfigError, match=r"--export out\.fbx: expected a file name ending in \.glb or \.bvh"):
        animation.check_export_paths([Path("out.fbx")])
    with pytest.raises(ConfigError, match="named twice"):
        animation.check_export_paths([Path("a.glb"), Path("a.glb")])

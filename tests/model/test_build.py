"""The refiner built by build_model: HybrIK pass-through when untrained (checked against smplx and
scipy), output shapes and units, gradients, composition per option, parameter counts, export view."""

from __future__ import annotations

import copy
import logging
from pathlib import Path

import numpy as np
import pytest
import torch
from scipy.spatial.transform import Rotation

from lib.body.smpl import H36M_REGRESSOR_FILE, smplx_reference
from lib.config.hyper import load_hyper_config
from lib.config.task import TaskConfig
from lib.errors import ConfigError
from lib.config.options import ModelOptions
from lib.model.build import build_backbone, build_model, count_trainable_parameters
from lib.model.hypergraph import HyperBlock, HyperEdge
from lib.model.refiner import OUTPUT_KEYS, MeshRefinerForExport

REPO = Path(__file__).resolve().parents[2]
LABEL1 = REPO / "hyper_config/method2/manual_joint_label1.yaml"
LABEL2 = REPO / "hyper_config/method2/manual_joint_label2.yaml"
TINY = dict(dim_rep=32, depth=2, num_heads=4, mlp_ratio=2.0, hidden_dim=64, maxlen=27)


@pytest.fixture(scope="module")
def task_cfg(smpl_root: Path) -> TaskConfig:
    return TaskConfig(data_root=str(smpl_root), dt_file_pw3d="mesh_det_pw3d.pkl", **TINY)


@pytest.fixture(scope="module")
def label1():
    return load_hyper_config(LABEL1)


@pytest.fixture(scope="module")
def model_v2(task_cfg: TaskConfig, label1):
    """The default version-2 model with label1 at tiny sizes, untrained, in eval mode (do not modify)."""
    torch.manual_seed(0)
    return build_model(task_cfg, label1, ModelOptions()).eval()


def _inputs(n: int, t: int, seed: int = 0, in_channels: int = 3):
    gen = np.random.default_rng(seed)
    pose2d = torch.from_numpy(gen.uniform(-1, 1, size=(n, t, 17, in_channels))).float()
    theta = torch.from_numpy(gen.normal(scale=0.4, size=(n, t, 72))).float()
    shape = torch.from_numpy(gen.normal(scale=1.0, size=(n, t, 10))).float()
    return pose2d, theta, shape


def test_untrained_model_returns_hybrik_mesh(model_v2, smpl_root: Path) -> None:
    model = model_v2
    n, t = 2, 8
    pose2d, theta, shape = _inputs(n, t)
    with torch.no_grad():
        out = model(pose2d, theta, shape)
    assert tuple(out) == OUTPUT_KEYS
    # rotations: HybrIK's, by scipy
    rot_ref = Rotation.from_rotvec(theta.double().numpy().reshape(-1, 3)).as_matrix().reshape(n, t, 24, 3, 3)
    assert np.abs(out["rot_mat"].double().numpy() - rot_ref).max() < 1e-6
    np.testing.assert_allclose(out["pose_aa"].numpy(), theta.numpy(), atol=2e-5)
    # betas: one shape per clip (clip_shape, the default), the mean of HybrIK's over the clip's frames
    clip_mean = np.repeat(shape.double().numpy().mean(axis=1, keepdims=True), t, axis=1)
    np.testing.assert_allclose(out["shape"].numpy(), clip_mean, atol=1e-6)
    # mesh: smplx (the reference implementation) on HybrIK's input, mm, centred on the H36M pelvis
    smpl = smplx_reference(smpl_root)
    aa = theta.reshape(-1, 72)
    with torch.no_grad():
        ref = smpl(betas=torch.from_numpy(clip_mean).float().reshape(-1, 10), global_orient=aa[:, :3], body_pose=aa[:, 3:],
                   transl=torch.zeros(n * t, 3))
    verts_mm = ref.vertices.double().numpy().reshape(n, t, 6890, 3) * 1000.0
    regressor = np.load(smpl_root / H36M_REGRESSOR_FILE).astype(np.float64)  # (17, 6890)
    joints_mm = np.einsum("jv,ntvc->ntjc", regressor, verts_mm)
    pelvis = joints_mm[:, :, :1]
    np.testing.assert_allclose(out["vertices"].numpy(), verts_mm - pelvis, atol=5e-3)
    np.testing.assert_allclose(out["keypoint_3d"].numpy(), joints_mm - pelvis, atol=5e-3)
    assert np.abs(out["keypoint_3d"][:, :, 0].numpy()).max() < 1e-4  # pelvis at the origin


def test_clip_shape_false_passes_hybrik_betas_per_frame(task_cfg: TaskConfig, label1) -> None:
    torch.manual_seed(0)
    model = build_model(task_cfg.replace(clip_shape=False), label1, ModelOptions()).eval()
    pose2d, theta, shape = _inputs(2, 8)
    with torch.no_grad():
        assert torch.equal(model(pose2d, theta, shape)["shape"], shape)


@pytest.mark.parametrize("frames", [1, 8, 16, 27])
@pytest.mark.parametrize("batch", [1, 3])
def test_output_shapes(model_v2, frames: int, batch: int) -> None:
    with torch.no_grad():
        out = model_v2(*_inputs(batch, frames))
    expected = {"rot_mat": (24, 3, 3), "pose_aa": (72,), "shape": (10,), "vertices": (6890, 3), "keypoint_3d": (17, 3)}
    for key, tail in expected.items():
        assert out[key].shape == (batch, frames) + tail, key
    with pytest.raises(ValueError, match="maxlen"):
        model_v2(*_inputs(1, 28))


def test_gradients_reach_every_trainable_parameter(task_cfg: TaskConfig, label1) -> None:
    torch.manual_seed(1)
    hyper = label1.replace(hyper_head=2, hyper_multi_merge_mode="weight_mean",
                           joint_label=[list(label1.joint_label[0]), [0] * 7 + [1] + [2] * 9])
    model = build_model(task_cfg.replace(refine_shape=True), hyper, ModelOptions()).train()
    with torch.no_grad():  # move off the zero-initialised outputs, as one optimiser step would
        model.head.head_pose.weight.normal_(0.0, 1e-3)
        model.head.head_shape.weight.normal_(0.0, 1e-3)
    out = model(*_inputs(2, 3, seed=1))
    weights = {k: torch.randn_like(v) for k, v in out.items()}
    loss = sum((out[k] * weights[k]).sum() for k in ("rot_mat", "shape", "vertices", "keypoint_3d"))
    loss.backward()
    dead = [n for n, p in model.named_parameters() if p.requires_grad and (p.grad is None or not p.grad.any())]
    assert not dead
    assert any("merge_weight" in n for n, _ in model.named_parameters())


def test_parameters_live_under_backbone_and_head(model_v2) -> None:
    model = model_v2
    names = [n for n, _ in model.named_parameters()]
    assert all(n.startswith(("backbone.", "head.")) for n in names)
    assert not any(k.startswith("body_model.") for k in model.state_dict())  # no SMPL arrays in checkpoints
    assert any(k.endswith("hyper_edges.0.membership") for k in model.state_dict())


def _hand_count_version1_tiny(maxlen: int) -> int:
    """Parameters of the tiny version-1 model (C=32, depth 2, heads 4, MLP 64, hidden 64), by hand."""
    c, heads, mlp, hidden, depth = 32, 4, 64, 64, 2
    layer_norm = 2 * c
    attention = (c * 3 * c + 3 * c) + (c * c + c)
    block = 2 * layer_norm + attention + (c * mlp + mlp) + (mlp * c + c)
    skeleton = block + heads * 17 * 17 + 1
    backbone = (3 * c + c) + 17 * c + maxlen * c + depth * (skeleton + block) + 2 * layer_norm
    head = (17 * c * hidden + hidden) + (144 * hidden * 5 + hidden) + (2 * hidden * 144 * 5 + 144) + 2 * (2 * hidden)
    return backbone + head


def test_version1_parameter_count_and_no_hypergraph(task_cfg: TaskConfig, label1, caplog) -> None:
    with caplog.at_level(logging.INFO, logger="lib.model.build"):
        model = build_model(task_cfg, label1, ModelOptions(version=1))
    assert count_trainable_parameters(model) == _hand_count_version1_tiny(27)
    assert not any(isinstance(m, (HyperBlock, HyperEdge)) for m in model.modules())
    assert not any("hyper" in k for k in model.state_dict())
    assert "unused with --version 1" in caplog.text
    assert f"Trainable parameter count: {_hand_count_version1_tiny(27)}" in caplog.text


def test_default_sizes_match_reference_budget(label1) -> None:
    """Reference section 3.6: backbone 2,532,537 with an unused 643-parameter 3D head we do not build;
    a hypergraph block is 148,992 per layer whatever the partition."""
    cfg = TaskConfig()
    v2 = count_trainable_parameters(build_backbone(cfg, label1, ModelOptions()))
    v2_label2 = count_trainable_parameters(build_backbone(cfg, load_hyper_config(LABEL2), ModelOptions()))
    v1 = count_trainable_parameters(build_backbone(cfg, None, ModelOptions(version=1)))
    assert v2 == v2_label2 == 2_532_537 - 643
    assert v1 == v2 - 6 * 148_992


def test_label1_and_label2_edge_counts(task_cfg: TaskConfig) -> None:
    for path, edges in ((LABEL1, 6), (LABEL2, 3)):
        model = build_backbone(task_cfg, load_hyper_config(path), ModelOptions())
        counts = {m.num_edges for m in model.modules() if isinstance(m, HyperEdge)}
        assert counts == {edges}


@pytest.mark.parametrize("spatial_mode", ["common", "hyper", "hyper_dependent_common"])
def test_spatial_modes(task_cfg: TaskConfig, label1, spatial_mode: str) -> None:
    model = build_backbone(task_cfg, label1.replace(spatial_mode=spatial_mode), ModelOptions()).eval()
    names = {n for n, _ in model.named_parameters()}
    assert any(".common." in n for n in names) == (spatial_mode != "hyper")
    assert any(".hyper." in n for n in names) == (spatial_mode != "common")
    if spatial_mode == "common":
        v1 = build_backbone(task_cfg, None, ModelOptions(version=1))
        assert names == {n for n, _ in v1.named_parameters()}
    with torch.no_grad():
        assert model(_inputs(1, 4)[0]).shape == (1, 4, 17, 32)


@pytest.mark.parametrize("merge", ["mean", "max", "weight_mean"])
def test_merge_modes_run(task_cfg: TaskConfig, label1, merge: str) -> None:
    hyper = label1.replace(hyper_head=2, hyper_multi_merge_mode=merge,
                           joint_label=[list(label1.joint_label[0]), [0] * 7 + [1] + [2] * 9])
    model = build_backbone(task_cfg, hyper, ModelOptions()).eval()
    assert [m.num_edges for m in model.spatial_layers[0].hyper.hyper_edges] == [6, 3]
    with torch.no_grad():
        assert model(_inputs(2, 5)[0]).shape == (2, 5, 17, 32)


def test_switches(task_cfg: TaskConfig, label1) -> None:
    def names(**kw) -> set[str]:
        return {n for n, _ in build_backbone(task_cfg, label1, ModelOptions(**kw)).named_parameters()}

    full = names()
    assert not any(".hyper." in n for n in names(j2e=False))
    assert full - names(j2e_bias=False) == {f"spatial_layers.{i}.hyper.attns.0.w1" for i in range(2)}
    assert full - names(j2j_adjacency=False) == {f"spatial_layers.{i}.common.attn.{p}"
                                                 for i in range(2) for p in ("skeleton_bias", "alpha")}
    assert names(j2e_main=False) == full
    uniform = build_backbone(task_cfg, label1, ModelOptions(hyper_relation_bias="uniform"))
    identity = build_backbone(task_cfg, label1, ModelOptions(hyper_relation_bias="none"))
    assert torch.equal(identity.spatial_layers[0].common.attn.skeleton_bias[0], torch.eye(17))
    assert not torch.equal(uniform.spatial_layers[0].common.attn.skeleton_bias[0], torch.eye(17))


def test_invalid_options(task_cfg: TaskConfig, label1) -> None:
    with pytest.raises(ConfigError, match="'version'"):
        ModelOptions(version=3)
    with pytest.raises(ConfigError, match="'j2e'"):
        ModelOptions(j2e="False")
    with pytest.raises(ConfigError, match="'hyper_relation_bias'"):
        ModelOptions(hyper_relation_bias="distance")
    with pytest.raises(ConfigError, match="--hyper_cfg"):
        build_model(task_cfg, None, ModelOptions(version=2))
    with pytest.raises(ConfigError, match="spatial_mode"):
        build_model(task_cfg, label1.replace(spatial_mode="hyper"), ModelOptions(j2e=False))


def test_no_conf_takes_two_channels(task_cfg: TaskConfig, label1) -> None:
    model = build_backbone(task_cfg.replace(no_conf=True), label1, ModelOptions()).eval()
    assert model.in_channels == 2
    with torch.no_grad():
        assert model(_inputs(1, 4, in_channels=2)[0]).shape == (1, 4, 17, 32)


def test_export_view_matches_forward(model_v2) -> None:
    torch.manual_seed(2)
    model = copy.deepcopy(model_v2)
    with torch.no_grad():
        model.head.head_pose.weight.normal_(0.0, 1e-2)
        inputs = _inputs(2, 3, seed=2)
        out = model(*inputs)
        exported = MeshRefinerForExport(model)(*inputs)
    assert isinstance(exported, tuple) and len(exported) == 4
    for got, key in zip(exported, ("rot_mat", "shape", "vertices", "keypoint_3d")):
        assert torch.equal(got, out[key])


def test_input_hybrik_feeds_the_backbone_hybrik_joints_and_the_2d_disagreement(task_cfg: TaskConfig, label1,
                                                                              smpl_root: Path) -> None:
    from lib.model.evidence import EVIDENCE_CHANNELS, hybrik_2d_evidence

    torch.manual_seed(0)
    model = build_model(task_cfg.replace(input_hybrik=True), label1, ModelOptions()).eval()
    assert model.in_channels == 3 and model.backbone.joint_embed.in_features == 3 + EVIDENCE_CHANNELS
    pose2d, theta, shape = _inputs(2, 4)
    seen = {}
    model.backbone.register_forward_hook(lambda module, args, out: seen.update(x=args[0]))
    with torch.no_grad():
        out = model(pose2d, theta, shape)
    # HybrIK's joints by smplx and the numpy regressor, pelvis-centred mm, on HybrIK's per-frame betas
    aa = theta.reshape(-1, 72)
    with torch.no_grad():
        ref = smplx_reference(smpl_root)(betas=shape.reshape(-1, 10), global_orient=aa[:, :3], body_pose=aa[:, 3:],
                                         transl=torch.zeros(8, 3))
    regressor = np.load(smpl_root / H36M_REGRESSOR_FILE).astype(np.float64)
    joints = np.einsum("jv,bvc->bjc", regressor, ref.vertices.double().numpy() * 1000.0).reshape(2, 4, 17, 3)
    joints -= joints[:, :, :1]
    expected = hybrik_2d_evidence(pose2d.double(), torch.from_numpy(joints)).float()
    assert seen["x"].shape == (2, 4, 17, 3 + EVIDENCE_CHANNELS)
    assert torch.equal(seen["x"][..., :3], pose2d)
    torch.testing.assert_close(seen["x"][..., 3:], expected, atol=2e-5, rtol=1e-4)
    assert out["rot_mat"].shape == (2, 4, 24, 3, 3)

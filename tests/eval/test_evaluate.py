"""Evaluation's flip pass against a hand-mirrored second pass, and its acceleration error against the
protocol's 14 joints computed by hand (both survived the whole suite as mutations before)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from lib.body.joint_names import H36M_EVAL_14, H36M_FLIP_PERM, SMPL_FLIP_PERM
from lib.data.datasets import EvalSequence, EvalSequences, load_split
from lib.eval.evaluate import evaluate_split, refine_sequence, score_sequence, smpl_joints_vertices_mm
from lib.eval.metrics import MetricSums
from lib.geometry.rotation import axis_angle_to_matrix, project_to_so3

CPU = torch.device("cpu")
REPO = Path(__file__).resolve().parents[2]
HYPER = REPO / "hyper_config" / "method2" / "manual_joint_label1.yaml"


@pytest.fixture(scope="module")
def refiner(tmp_path_factory: pytest.TempPathFactory, data_root: Path, tiny_config):
    """(task config, tiny refiner whose zero-initialised residual got small random values, body model):
    an untrained refiner returns HybrIK's pose, which a flip pass leaves unchanged."""
    from lib.config.hyper import load_hyper_config
    from lib.config.task import load_task_config
    from lib.config.options import ModelOptions
    from lib.model.build import build_model

    cfg = load_task_config(tiny_config(tmp_path_factory.mktemp("eval"), "train_pw3d", data_root))
    torch.manual_seed(0)
    model = build_model(cfg, load_hyper_config(HYPER), ModelOptions(version=2, hyper_relation_bias="uniform"))
    gen = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for param in model.parameters():
            if not torch.any(param):
                param.copy_(torch.randn(param.shape, generator=gen) * 0.01)
    return cfg, model.eval(), model.body_model


def test_flip_result_is_the_projected_mean_with_the_hand_mirrored_pass(refiner) -> None:
    cfg, model, _ = refiner
    split = load_split(cfg, "pw3d", "test")
    first = next(iter(EvalSequences(split, 1, cfg.clip_len)))
    # one window (the first clip_len frames): stitching is the identity, the flip mean is all that acts
    sequence = EvalSequence(split, first.name, first.rows[:cfg.clip_len], 1, cfg.clip_len)
    arrays = sequence.frame_arrays()
    pose2d, theta, betas = (arrays[k][None] for k in ("pose2d", "hybrik_pose", "hybrik_shape"))
    with torch.no_grad():
        plain, _ = model.refine_rotations(pose2d, theta, betas)
        # mirror by hand: x -> -x with left/right swapped (2D); SMPL left/right swapped, y, z of axis-angle negated
        m2d = pose2d[:, :, list(H36M_FLIP_PERM)] * torch.tensor([-1.0, 1.0, 1.0])
        n, t = theta.shape[:2]
        mtheta = (theta.reshape(n, t, 24, 3)[:, :, list(SMPL_FLIP_PERM)] * torch.tensor([1.0, -1.0, -1.0]))
        mirrored, _ = model.refine_rotations(m2d, mtheta.reshape(n, t, 72), betas)
    mirror = torch.diag(torch.tensor([1.0, -1.0, -1.0]))  # conjugation by the mirror, then swap back
    back = (mirror @ mirrored @ mirror)[:, :, list(SMPL_FLIP_PERM)]
    assert (plain - back).abs().max() > 1e-3  # the two passes differ: the test can tell them apart
    expected = project_to_so3((0.5 * (plain + back))[0].double()).float()
    flipped, _ = refine_sequence(model, sequence, CPU, flip=True)
    torch.testing.assert_close(flipped, expected, atol=1e-5, rtol=0)
    unflipped, _ = refine_sequence(model, sequence, CPU, flip=False)
    torch.testing.assert_close(unflipped, project_to_so3(plain[0].double()).float(), atol=1e-5, rtol=0)


def test_refine_sequence_can_refine_another_pose_than_hybriks(refiner) -> None:
    """``pose=`` (the transfer benchmark's "GT pose as input" diagnostic) feeds that pose to the same windowed
    path in place of HybrIK's; the 2D and betas stay the sequence's."""
    cfg, model, _ = refiner
    split = load_split(cfg, "pw3d", "test")
    first = next(iter(EvalSequences(split, 1, cfg.clip_len)))
    sequence = EvalSequence(split, first.name, first.rows[:cfg.clip_len], 1, cfg.clip_len)  # one window
    arrays = sequence.frame_arrays()
    with torch.no_grad():
        expected, _ = model.refine_rotations(*(arrays[k][None] for k in ("pose2d", "gt_pose", "hybrik_shape")))
    given, _ = refine_sequence(model, sequence, CPU, flip=False, pose=arrays["gt_pose"].numpy())
    torch.testing.assert_close(given, project_to_so3(expected[0].double()).float(), atol=1e-5, rtol=0)
    own, _ = refine_sequence(model, sequence, CPU, flip=False)
    assert (own - given).abs().max() > 1e-2  # HybrIK's pose is not the ground truth


def test_evaluate_split_flip_changes_the_refined_metrics(refiner) -> None:
    cfg, model, body = refiner
    with_flip = evaluate_split(model, body, cfg, "pw3d", CPU, flip=True)
    without = evaluate_split(model, body, cfg, "pw3d", CPU, flip=False)
    assert with_flip.protocol["flip_test"] is True and without.protocol["flip_test"] is False
    assert with_flip.input == without.input
    assert abs(with_flip.refined["mpjpe"] - without.refined["mpjpe"]) > 1e-3


def test_acceleration_error_uses_the_14_protocol_joints(refiner) -> None:
    cfg, _, body = refiner
    sequence = next(iter(EvalSequences(load_split(cfg, "pw3d", "test"), 1, cfg.clip_len)))
    labels = sequence.frame_arrays()
    n = sequence.frames
    rot = axis_angle_to_matrix(labels["hybrik_pose"].reshape(n, 24, 3))
    sums = {"input": MetricSums()}
    score_sequence(body, labels, {"input": (rot, labels["hybrik_shape"])}, "pelvis", CPU, sums,
                   {"input": np.zeros(17)})
    # by hand: H36M-17 joints of both meshes, pelvis (joint 0) subtracted, the 14 joints, second differences
    pred, _ = smpl_joints_vertices_mm(body, rot, labels["hybrik_shape"], CPU)
    gt, _ = smpl_joints_vertices_mm(body, axis_angle_to_matrix(labels["gt_pose"].reshape(n, 24, 3)),
                                    labels["gt_shape"], CPU)

    def accel(joints: list[int]) -> float:
        diff = (pred - pred[:, :1]) - (gt - gt[:, :1])          # (F, 17, 3) mm, root-aligned
        second = diff[:-2] - 2 * diff[1:-1] + diff[2:]          # (F - 2, 17, 3)
        return float(np.linalg.norm(second[:, joints], axis=-1).mean())

    got = sums["input"].means()["accel_err"]
    assert got == pytest.approx(accel(list(H36M_EVAL_14)), rel=1e-9)
    assert abs(accel(list(range(17))) - got) > 1e-3 * got  # 17 joints would give another number


def test_input_metrics_stay_hybriks_own_when_the_refiner_is_fed_its_2d_fit(refiner, data_root: Path,
                                                                           tmp_path: Path) -> None:
    """With ``fit2d_prior`` the network is given HybrIK's pose fitted to the 2D, but the report's "input" is
    still HybrIK's own pose (what every ratio in the README is relative to)."""
    import dataclasses
    import shutil

    cfg, model, body = refiner
    root = shutil.copytree(data_root, tmp_path / "root", ignore=shutil.ignore_patterns("*.fit2d"))  # fit caches here
    plain = evaluate_split(model, body, dataclasses.replace(cfg, data_root=str(root)), "pw3d", CPU, flip=False)
    fitted = evaluate_split(model, body, dataclasses.replace(cfg, data_root=str(root), fit2d_prior=0.01, fit2d_steps=5),
                            "pw3d", CPU, flip=False)
    assert fitted.input == plain.input
    assert abs(fitted.refined["mpjpe"] - plain.refined["mpjpe"]) > 1e-2  # the network did see another input

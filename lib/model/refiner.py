"""The mesh refiner: backbone + refine head + SMPL, and its export wrapper.

Outputs are in millimetres, centred on the H36M pelvis (joint 0 of ``J_regressor_h36m_correct``
applied to the same mesh), like the evaluation's ground truth.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from lib.body.joint_names import SMPL_NUM_JOINTS
from lib.body.smpl import posed_mesh_mm
from lib.geometry.rotation import axis_angle_to_matrix, matrix_to_axis_angle
from lib.model.backbone import Backbone
from lib.model.evidence import hybrik_2d_evidence
from lib.model.head import RefineHead

# Keys of MeshRefiner.forward's dict, in order.
OUTPUT_KEYS = ("rot_mat", "pose_aa", "shape", "vertices", "keypoint_3d")
# Outputs of the exported graph (MeshRefinerForExport), in order.
EXPORT_OUTPUT_NAMES = ("rot_mat", "shape", "vertices", "keypoint_3d")
EXPORT_INPUT_NAMES = ("pose2d", "hybrik_theta", "hybrik_shape")


class MeshRefiner(nn.Module):
    """Refines HybrIK's per-frame SMPL predictions over a clip.

    Parameters live under ``backbone.`` and ``head.``; ``body_model`` (``lib.body.smpl.BodyModel``)
    holds only non-persistent buffers, so checkpoints contain no SMPL arrays.

    Args:
        backbone: (N, T, 17, C_in) -> (N, T, 17, C).
        head: features + HybrIK rotations and betas -> refined rotations and betas.
        body_model: ``lib.body.smpl.BodyModel`` (``posed_mesh_mm`` uses its ``skin`` and ``h36m_joints_cm``).
    """

    def __init__(self, backbone: Backbone, head: RefineHead, body_model: nn.Module) -> None:
        super().__init__()
        self.backbone = backbone
        self.head = head
        self.body_model = body_model

    @property
    def in_channels(self) -> int:
        """Channels of ``pose2d``: 3 (x, y, confidence), or 2 (x, y) with ``no_conf``."""
        return self.backbone.in_channels

    @property
    def maxlen(self) -> int:
        """Longest clip T the model accepts."""
        return self.backbone.maxlen

    def refine_rotations(self, pose2d: Tensor, hybrik_theta: Tensor, hybrik_shape: Tensor) -> tuple[Tensor, Tensor]:
        """Refined rotations (N, T, 24, 3, 3) and betas (N, T, 10) without running SMPL (inputs as
        ``refine``); evaluation and inference stitch these over windows, then run SMPL once per frame."""
        init_rot = axis_angle_to_matrix(hybrik_theta.unflatten(-1, (SMPL_NUM_JOINTS, 3)))  # (N, T, 24, 3, 3)
        features_in = pose2d
        if self.backbone.extra_channels:  # input_hybrik: HybrIK's joints and the 2D's disagreement with them
            _, hybrik_joints = self.posed_mesh_mm(init_rot, hybrik_shape)  # (N, T, 17, 3) mm
            features_in = torch.cat([pose2d, hybrik_2d_evidence(pose2d, hybrik_joints)], dim=-1)
        return self.head(self.backbone(features_in), init_rot, hybrik_shape)

    def refine(self, pose2d: Tensor, hybrik_theta: Tensor,
               hybrik_shape: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """Refined rotations, betas, and the posed mesh.

        Args:
            pose2d: (N, T, 17, C_in) normalised 2D keypoints (x, y, confidence); with ``no_conf``
                only (x, y), C_in = 2.
            hybrik_theta: (N, T, 72) HybrIK's SMPL pose, axis-angle, radians.
            hybrik_shape: (N, T, 10) HybrIK's betas.
        Returns:
            rot_mat (N, T, 24, 3, 3), shape (N, T, 10), vertices (N, T, 6890, 3) mm and
            keypoint_3d (N, T, 17, 3) mm, both centred on the H36M pelvis.
        """
        rot_mat, shape = self.refine_rotations(pose2d, hybrik_theta, hybrik_shape)
        vertices, keypoint_3d = self.posed_mesh_mm(rot_mat, shape)
        return rot_mat, shape, vertices, keypoint_3d

    def posed_mesh_mm(self, rot_mat: Tensor, shape: Tensor) -> tuple[Tensor, Tensor]:
        """See ``posed_mesh_mm`` (the module function) with this model's SMPL layer."""
        return posed_mesh_mm(self.body_model, rot_mat, shape)

    def forward(self, pose2d: Tensor, hybrik_theta: Tensor, hybrik_shape: Tensor) -> dict[str, Tensor]:
        """See ``refine``; returns a dict with the keys ``OUTPUT_KEYS``.

        Returns:
            rot_mat (N, T, 24, 3, 3), pose_aa (N, T, 72) rad, shape (N, T, 10),
            vertices (N, T, 6890, 3) mm, keypoint_3d (N, T, 17, 3) mm.
        """
        rot_mat, shape, vertices, keypoint_3d = self.refine(pose2d, hybrik_theta, hybrik_shape)
        pose_aa = matrix_to_axis_angle(rot_mat).flatten(-2)  # (N, T, 24, 3) -> (N, T, 72)
        return {"rot_mat": rot_mat, "pose_aa": pose_aa, "shape": shape,
                "vertices": vertices, "keypoint_3d": keypoint_3d}


class MeshRefinerForExport(nn.Module):
    """ONNX view of a ``MeshRefiner``: inputs ``EXPORT_INPUT_NAMES``, outputs the tuple
    ``(rot_mat, shape, vertices, keypoint_3d)`` (no axis-angle; shapes and units as ``MeshRefiner``).

    Export with ``torch.onnx.export(MeshRefinerForExport(model).eval(), ..., dynamo=True)`` and
    ``torch.export.Dim`` for N and T (T's maximum at most ``model.maxlen``).
    """

    def __init__(self, model: MeshRefiner) -> None:
        super().__init__()
        self.model = model

    def forward(self, pose2d: Tensor, hybrik_theta: Tensor,
                hybrik_shape: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """(rot_mat, shape, vertices, keypoint_3d); see ``MeshRefiner.refine``."""
        return self.model.refine(pose2d, hybrik_theta, hybrik_shape)

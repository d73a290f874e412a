"""HybrIK's SMPL layer: the public inverse pass ``HybrIKSMPL.hybrik`` (HybrIK's ``smpl.hybrik``).

HybrIK's ``SMPL_layer.hybrik(pose_skeleton, betas, phis, global_orient, transl=None, naive=False)`` turns
a 29-joint skeleton, betas and twist angles into SMPL rotations, joints, a mesh and H36M joints. The same
here, in one call, on the SMPL layer of this project (``lib.body.smpl.BodyModel``) and HybrIK's own H36M
regressor (``J_regressor_h36m.npy``)::

    smpl = HybrIKSMPL.from_model_files("model_files")        # HybrIK's model_files/ as they are
    out = smpl.hybrik(pose_skeleton, betas, phis)            # or model.smpl.hybrik(...) on a HybrIKCam
    out.rot_mats (B, 24, 3, 3), out.joints (B, 24, 3), out.vertices (B, 6890, 3), out.joints_from_verts (B, 17, 3)

Units and frames as HybrIK: metres; without ``transl`` the vertices and the H36M joints are centred on
the H36M pelvis (row 0 of HybrIK's regressor applied to the mesh) and the SMPL joints on the SMPL root;
with ``transl`` (B, 3) nothing is centred and ``transl`` is added to all three (the mesh in SMPL's own
coordinates, root joint at its rest position, moved by ``transl``).

Differences from HybrIK's signature (``docs/differences.md``): no ``global_orient`` (HybrIK accepts it
and never reads it: the pelvis rotation comes from the skeleton) and no ``leaf_thetas`` (an option of
HybrIK's other models, not of the HRNet one); ``rot_mats`` is (B, 24, 3, 3), HybrIK's is (B * 24, 3, 3).
The IK itself is ``lib.hybrik.ik.hybrik_ik`` (its fixes of HybrIK's defects are listed there).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch
from torch import Tensor, nn

from lib.body.joint_names import H36M_NUM_JOINTS
from lib.body.smpl import HYBRIK_H36M_REGRESSOR_FILE, BodyModel
from lib.hybrik.ik import hybrik_ik
from lib.hybrik.skeleton import HYBRIK_NUM_JOINTS, LEAF_VERTEX_IDS


class HybrIKOutput(NamedTuple):
    """What ``HybrIKSMPL.hybrik`` returns (HybrIK's ``ModelOutput`` field names), metres."""

    rot_mats: Tensor           # (B, 24, 3, 3) local SMPL rotations (row 0: the global orientation)
    joints: Tensor             # (B, 24, 3) SMPL joints of the posed mesh (HybrIK's pred_xyz_jts_24_struct)
    vertices: Tensor           # (B, 6890, 3)
    joints_from_verts: Tensor  # (B, 17, 3) H36M joints from HybrIK's regressor (HybrIK's pred_xyz_jts_17)


def rest_skeleton(body: BodyModel, betas: Tensor) -> Tensor:
    """HybrIK's 29-joint rest skeleton: SMPL's rest joints plus the 5 leaf vertices of the shaped template.

    Args:
        betas: (B, 10).
    Returns:
        (B, 29, 3) m.
    """
    joints = body.J_template + torch.einsum("bl,jcl->bjc", betas, body.J_shapedirs)  # (B, 24, 3)
    leaf_ids = list(LEAF_VERTEX_IDS)
    leaves = body.v_template[leaf_ids] + torch.einsum("bl,jcl->bjc", betas, body.shapedirs[leaf_ids])  # (B, 5, 3)
    return torch.cat([joints, leaves], dim=1)


class HybrIKSMPL(nn.Module):
    """SMPL plus HybrIK's H36M regressor, with HybrIK's inverse pass (see the module docstring).

    Args:
        body: the SMPL layer (its arrays are non-persistent buffers).
        h36m_regressor: (17, 6890) HybrIK's ``J_regressor_h36m`` (not SPIN's ``..._correct``), a
            non-persistent buffer: nothing here enters a state dict.
    """

    def __init__(self, body: BodyModel, h36m_regressor: np.ndarray | Tensor) -> None:
        super().__init__()
        self.body = body
        regressor = torch.as_tensor(h36m_regressor, dtype=torch.get_default_dtype())
        if tuple(regressor.shape) != (H36M_NUM_JOINTS, body.NUM_VERTICES):
            raise ValueError(f"h36m_regressor has shape {tuple(regressor.shape)}, expected "
                             f"({H36M_NUM_JOINTS}, {body.NUM_VERTICES})")
        self.register_buffer("j_regressor_h36m", regressor, persistent=False)

    @classmethod
    def from_model_files(cls, model_files: str | os.PathLike) -> "HybrIKSMPL":
        """From HybrIK's ``model_files/`` as they are: ``basicModel_neutral_lbs_10_207_0_v1.0.0.pkl`` (or
        ``SMPL_NEUTRAL.pkl`` / .npz) and ``J_regressor_h36m.npy``; no SPIN file.

        Raises:
            AssetError: a missing or malformed file (one line: path, expected, where to get it).
        """
        body = BodyModel(Path(model_files), h36m_regressor_file=HYBRIK_H36M_REGRESSOR_FILE)
        return cls(body, body.J_regressor_h36m)

    def rest_skeleton(self, betas: Tensor) -> Tensor:
        """(B, 10) betas -> (B, 29, 3) m rest skeleton (``rest_skeleton``)."""
        return rest_skeleton(self.body, betas)

    def h36m_joints(self, vertices: Tensor) -> Tensor:
        """(B, 6890, 3) -> (B, 17, 3) with HybrIK's regressor, in the vertices' units."""
        return torch.einsum("jv,bvc->bjc", self.j_regressor_h36m, vertices)

    def hybrik(self, pose_skeleton: Tensor, betas: Tensor, phis: Tensor, transl: Tensor | None = None,
               naive: bool = False) -> HybrIKOutput:
        """HybrIK's inverse pass: skeleton + shape + twist -> rotations, SMPL joints, mesh, H36M joints.

        Args:
            pose_skeleton: (B, 29, 3) or (B, 87) m, root-relative 29-joint skeleton (HybrIK's
                ``pred_xyz_jts_29 * 2.2``): the 24 SMPL joints, then head top, left / right middle
                fingertip, left / right big toe.
            betas: (B, 10) SMPL shape.
            phis: (B, 23, 2) twist of SMPL joints 1..23 as (cos, sin), any length (normalised).
            transl: (B, 3) m, or None (see the module docstring for the frames).
            naive: HybrIK's ``naive=True`` IK (its training / ``update_scale`` path: the predicted bones
                as targets, an analytic pelvis) instead of the final one (SVD-equivalent pelvis fit,
                the 15 mm bone rule).
        Returns:
            ``HybrIKOutput``: rot_mats (B, 24, 3, 3), joints (B, 24, 3) m, vertices (B, 6890, 3) m,
            joints_from_verts (B, 17, 3) m.
        """
        skeleton = pose_skeleton.reshape(-1, HYBRIK_NUM_JOINTS, 3)
        rot = hybrik_ik(skeleton, phis, self.rest_skeleton(betas), naive=naive)  # (B, 24, 3, 3)
        smpl = self.body(rot, betas)
        h36m = self.h36m_joints(smpl.vertices)  # (B, 17, 3)
        if transl is None:
            return HybrIKOutput(rot_mats=rot, joints=smpl.joints - smpl.joints[:, :1],
                                vertices=smpl.vertices - h36m[:, :1], joints_from_verts=h36m - h36m[:, :1])
        shift = transl.reshape(-1, 1, 3)
        return HybrIKOutput(rot_mats=rot, joints=smpl.joints + shift, vertices=smpl.vertices + shift,
                            joints_from_verts=h36m + shift)

    forward = hybrik

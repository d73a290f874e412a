"""Shared fixtures for the HybrIK stage: the SMPL layer, a reduced-width network with plausible outputs,
its ONNX export, all built once per session on the synthetic SMPL stand-in.

No released weights exist here, so the network is randomly initialised. A random HRNet puts all 29
joints near the crop centre, which makes the IK ill-conditioned and every rotation meaningless; the
test network therefore adds a fixed prior to its heatmap logits (peaks at the rest skeleton, seen from
the front) and damps the random part, so its skeletons are human-sized while still depending on the image.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import Tensor, nn
from torch.nn import functional as F

from lib.body.smpl import HYBRIK_H36M_REGRESSOR_FILE, BodyModel, load_joint_regressor
from lib.hybrik.model import DEPTH_DIM, HybrIKCam
from lib.hybrik.smpl_layer import HybrIKSMPL, rest_skeleton

TEST_WIDTH = 18    # HRNet width of the test network (HybrIK: 48)
TEST_CROP = 64     # crop side of the test inputs (HybrIK: 256); heatmaps are CROP / 4
DEPTH_FACTOR_M = 2.2
PRIOR_SIGMA_PX = 1.0
PRIOR_SIGMA_DEPTH = 2.0
RANDOM_HEAT_DAMPING = 0.1


class PriorHead(nn.Module):
    """A 1x1 heatmap conv plus a fixed logit prior (J * D, h, w), resized to the heatmap when needed."""

    def __init__(self, conv: nn.Conv2d, prior: Tensor) -> None:
        super().__init__()
        self.conv = conv
        self.register_buffer("prior", prior)

    def forward(self, x: Tensor) -> Tensor:
        logits = self.conv(x)
        prior = self.prior
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", torch.jit.TracerWarning)  # sizes are static in the export
            resize = tuple(prior.shape[-2:]) != tuple(logits.shape[-2:])
        if resize:
            prior = F.interpolate(prior[None], size=logits.shape[-2:], mode="bilinear", align_corners=False)[0]
        return logits + prior


def skeleton_prior(rest: np.ndarray, size: int, depth: int = DEPTH_DIM) -> Tensor:
    """Gaussian logits around each rest joint: u = x / 2.2, v = -y / 2.2, d = z / 2.2 (pelvis-relative).

    Args:
        rest: (29, 3) m rest skeleton (y up).
    Returns:
        (29 * depth, size, size).
    """
    rel = (rest - rest[:1]) / DEPTH_FACTOR_M
    uvd = np.stack([rel[:, 0], -rel[:, 1], rel[:, 2]], axis=1)
    centre = (uvd + 0.5) * np.array([size, size, depth])  # bin coordinates
    grid_d, grid_v, grid_u = np.meshgrid(np.arange(depth), np.arange(size), np.arange(size), indexing="ij")
    logits = -(((grid_u[None] - centre[:, 0, None, None, None]) ** 2
                + (grid_v[None] - centre[:, 1, None, None, None]) ** 2) / (2 * PRIOR_SIGMA_PX ** 2)
               + (grid_d[None] - centre[:, 2, None, None, None]) ** 2 / (2 * PRIOR_SIGMA_DEPTH ** 2))
    return torch.from_numpy(logits.reshape(-1, size, size).astype(np.float32))


@pytest.fixture(scope="session")
def body(smpl_root: Path) -> BodyModel:
    return BodyModel(smpl_root).eval()


@pytest.fixture(scope="session")
def hybrik_smpl(hybrik_model_files: Path) -> HybrIKSMPL:
    """HybrIK's SMPL layer read from HybrIK's model_files layout (the same SMPL stand-in as ``body``)."""
    return HybrIKSMPL.from_model_files(hybrik_model_files).eval()


@pytest.fixture(scope="session")
def hybrik_regressor(smpl_root: Path) -> np.ndarray:
    return load_joint_regressor(smpl_root / HYBRIK_H36M_REGRESSOR_FILE, 17)


@pytest.fixture(scope="session")
def hybrik18(body: BodyModel, hybrik_regressor: np.ndarray) -> HybrIKCam:
    """Width-18 HybrIKCam for 64 x 64 crops with plausible skeletons and confident joints (eval mode)."""
    torch.manual_seed(0)
    model = HybrIKCam(body, hybrik_regressor, width=TEST_WIDTH,
                      mean_beta=np.linspace(-0.5, 0.5, 10, dtype=np.float32))
    with torch.no_grad():
        rest = rest_skeleton(body, torch.zeros(1, 10))[0].numpy()
        conv = model.preact.final_layer
        conv.weight.mul_(RANDOM_HEAT_DAMPING)
        model.preact.final_layer = PriorHead(conv, skeleton_prior(rest, TEST_CROP // 4))
        model.decsigma.weight.mul_(0.01)
        model.decsigma.bias.fill_(-4.0)  # sigma ~ 0.02: the camera-scale fit uses every joint
    return model.eval()


@pytest.fixture(scope="session")
def crops() -> dict[str, Tensor]:
    """Three normalised test crops (one the mirror of another), boxes and image centres."""
    rng = np.random.default_rng(7)
    image = torch.from_numpy(rng.standard_normal((3, 3, TEST_CROP, TEST_CROP)).astype(np.float32))
    image[2] = image[0].flip(dims=(2,))
    bbox = torch.tensor([[100.0, 50.0, 500.0, 450.0], [900.0, 300.0, 1300.0, 700.0], [0.0, 0.0, 640.0, 640.0]])
    center = torch.tensor([[960.0, 540.0], [960.0, 540.0], [320.0, 240.0]])
    return {"image": image, "bbox": bbox, "image_center": center}


@pytest.fixture(scope="session")
def outputs(hybrik18: HybrIKCam, crops: dict[str, Tensor]) -> dict[bool, dict[str, Tensor]]:
    """The test network's outputs on ``crops`` without (False) and with (True) the flip test."""
    with torch.no_grad():
        return {flip: hybrik18(crops["image"], crops["bbox"], crops["image_center"], flip_test=flip)
                for flip in (False, True)}


@pytest.fixture(scope="session")
def hybrik18_onnx(hybrik18: HybrIKCam, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The test network exported with the flip test (TorchScript exporter: the fast one)."""
    from lib.deploy.hybrik_export import export_hybrik_onnx

    path = tmp_path_factory.mktemp("hybrik_onnx") / "hybrik18.onnx"
    export_hybrik_onnx(hybrik18, path, flip_test=True, input_size=TEST_CROP, exporter="torchscript")
    return path

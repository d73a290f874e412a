"""The 2D-fit baseline: HybrIK's pose of each frame fitted to its 2D (``lib.body.fit2d``), as a
``lib.eval.baselines.Predictor`` scored like the smoothers and the refiner."""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import Tensor, nn

from lib.body.fit2d import DEFAULT_STEPS, fit_to_2d
from lib.data.datasets import EvalSequence
from lib.eval.baselines import Predictor, input_predictor, sequence_mean_betas


def fit2d_predictor(body: nn.Module, prior_weight: float, steps: int = DEFAULT_STEPS,
                    keypoints_key: str = "pose2d", robust: float | None = None) -> Predictor:
    """A ``lib.eval.baselines.Predictor``: HybrIK's rotations of each frame fitted to ``keypoints_key``
    (the split's detections by default; ``robust``: ``fit_to_2d``'s), with the sequence's mean HybrIK betas
    (as the smoothers)."""

    def predict(sequence: EvalSequence, labels: Mapping[str, Tensor]) -> tuple[Tensor, Tensor]:
        rot, shape = input_predictor(sequence, labels)  # (F, 24, 3, 3), (F, 10)
        betas = torch.from_numpy(sequence_mean_betas(shape.numpy())).float()
        return fit_to_2d(body, rot, betas, labels[keypoints_key], prior_weight=prior_weight, steps=steps,
                         robust=robust), betas

    return predict

"""The training step's learning-rate warm-up, against Adam's known first steps."""

from __future__ import annotations

import pytest
import torch

from lib.train.loop import optimizer_steps, warmup_lr


def test_warmup_scales_the_first_steps_linearly_and_restores_the_rate() -> None:
    param = torch.nn.Parameter(torch.zeros(3))
    optimizer = torch.optim.AdamW([{"params": [param], "lr": 0.1}], weight_decay=0.0)
    moves = []
    for _ in range(6):
        before = param.detach().clone()
        param.grad = torch.ones(3)  # a constant gradient: every Adam step moves by its lr (bias-corrected)
        with warmup_lr(optimizer, warmup_steps=4):
            optimizer.step()
        assert optimizer.param_groups[0]["lr"] == 0.1  # the scheduled rate is back after each step
        moves.append(float((before - param.detach())[0]))
    assert optimizer_steps(optimizer) == 6
    assert moves == pytest.approx([0.025, 0.05, 0.075, 0.1, 0.1, 0.1], rel=1e-5)


def test_no_warmup_and_fresh_optimizer_count() -> None:
    param = torch.nn.Parameter(torch.zeros(1))
    optimizer = torch.optim.AdamW([param], lr=0.1, weight_decay=0.0)
    assert optimizer_steps(optimizer) == 0
    param.grad = torch.ones(1)
    with warmup_lr(optimizer, warmup_steps=0):
        optimizer.step()
    assert float(param.detach()) == pytest.approx(-0.1, rel=1e-5)
    # a resumed optimizer continues the count from its saved state
    restored = torch.optim.AdamW([torch.nn.Parameter(torch.zeros(1))], lr=0.1, weight_decay=0.0)
    restored.load_state_dict(optimizer.state_dict())
    assert optimizer_steps(restored) == 1

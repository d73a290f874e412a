"""Report figures (matplotlib, headless): training / validation curves and per-joint errors."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import matplotlib

matplotlib.use("Agg")  # headless; the figures are files
import matplotlib.pyplot as plt  # noqa: E402

from lib.atomic_write import atomic_open  # noqa: E402
from lib.body.joint_names import H36M_JOINT_NAMES  # noqa: E402


def plot_curves(history: Sequence[dict[str, Any]], out: str | Path) -> Path:
    """Training loss per epoch (left) and validation MPJPE, input vs refined, per dataset (right).

    Args:
        history: entries of ``<checkpoint>/history.json`` (``epoch``, ``train``, ``val``).
        out: PNG path.
    """
    epochs = [h["epoch"] for h in history]
    fig, (ax_loss, ax_val) = plt.subplots(1, 2, figsize=(11, 4))
    ax_loss.plot(epochs, [h["train"].get("total", float("nan")) for h in history], marker="o", label="total")
    for term in ("loss_3d_pos", "loss_3d_velocity", "loss_pose"):
        if history and term in history[0]["train"]:
            ax_loss.plot(epochs, [h["train"][term] for h in history], marker=".", label=term)
    ax_loss.set(xlabel="epoch", ylabel="training loss (weighted total; terms unweighted)", yscale="log",
                title="training")
    ax_loss.legend(fontsize=8)
    datasets = sorted({d for h in history for d in h["val"]})
    for dataset in datasets:
        rows = [(h["epoch"], h["val"][dataset]) for h in history if dataset in h["val"]]
        x = [e for e, _ in rows]
        ax_val.plot(x, [v["refined"]["mpjpe"] for _, v in rows], marker="o", label=f"{dataset} refined")
        ax_val.plot(x, [v["input"]["mpjpe"] for _, v in rows], linestyle="--", label=f"{dataset} HybrIK input")
    ax_val.set(xlabel="epoch", ylabel="MPJPE, 14 joints (mm)", title="validation")
    ax_val.legend(fontsize=8)
    fig.tight_layout()
    out = Path(out)
    try:
        with atomic_open(out) as handle:
            fig.savefig(handle, dpi=110, format=out.suffix.lstrip(".") or "png")
    finally:
        plt.close(fig)
    return out


def plot_per_joint(per_joint: dict[str, Sequence[float]], out: str | Path, title: str = "") -> Path:
    """Bar chart of the 17-joint MPJPE per joint (mm), HybrIK input vs refined."""
    names = H36M_JOINT_NAMES
    fig, ax = plt.subplots(figsize=(11, 4))
    width = 0.4
    xs = range(len(names))
    ax.bar([x - width / 2 for x in xs], per_joint["input"], width, label="HybrIK input")
    ax.bar([x + width / 2 for x in xs], per_joint["refined"], width, label="refined")
    ax.set_xticks(list(xs), names, rotation=60, ha="right", fontsize=8)
    ax.set(ylabel="error after root alignment (mm)", title=title or "per-joint error")
    ax.legend()
    fig.tight_layout()
    out = Path(out)
    try:
        with atomic_open(out) as handle:
            fig.savefig(handle, dpi=110, format=out.suffix.lstrip(".") or "png")
    finally:
        plt.close(fig)
    return out

"""Shared fixtures: synthetic assets in the real formats, generated once per test session."""

from __future__ import annotations

from pathlib import Path

import pytest


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--min-tests", type=int, default=0,
                     help="fail when fewer tests than this are collected (used by `make test`)")


def pytest_collection_finish(session: pytest.Session) -> None:
    minimum = session.config.getoption("--min-tests")
    if minimum and len(session.items) < minimum:
        raise pytest.UsageError(f"only {len(session.items)} tests collected, expected at least {minimum}")


@pytest.fixture(scope="session")
def smpl_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder holding the synthetic SMPL stand-in in every form plus the joint regressors.

    Files: SMPL_NEUTRAL.pkl (chumpy-style, like the SMPLify original), SMPL_NEUTRAL_plain.pkl,
    SMPL_NEUTRAL.npz, J_regressor_h36m_correct.npy, J_regressor_extra.npy, J_regressor_h36m.npy.
    """
    from lib.body.synthetic import write_smpl_assets

    out = tmp_path_factory.mktemp("smpl")
    write_smpl_assets(out, seed=0, forms=("chumpy", "plain", "npz"))
    return out


@pytest.fixture(scope="session")
def hybrik_model_files(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder laid out exactly like HybrIK's ``model_files/`` (same stand-in as ``smpl_root``): the SMPL
    pickle under SMPLify's own name, J_regressor_h36m.npy, h36m_mean_beta.npy, and nothing else."""
    from lib.body.synthetic import write_hybrik_model_files

    out = tmp_path_factory.mktemp("model_files")
    write_hybrik_model_files(out, seed=0)
    return out


@pytest.fixture(scope="session")
def data_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A complete synthetic ``data_root`` (SMPL, regressors, the three pickles) at the 'tiny' preset."""
    from lib.data.synthetic import generate_data_root

    out = tmp_path_factory.mktemp("data_root")
    generate_data_root(out, seed=0, preset="tiny")
    return out


REPO = Path(__file__).resolve().parents[1]
# Model, batch and schedule sizes swapped into copies of the seed YAMLs so a run takes seconds.
TINY_SIZES = dict(dim_rep=16, depth=1, num_heads=2, hidden_dim=32, batch_size=8, batch_size_img=16, clip_len=8,
                  data_stride=8, num_workers=0, checkpoint_frequency=1)


@pytest.fixture(scope="session")
def tiny_config():
    """``tiny_config(folder, seed_name, data_root, **changes) -> Path``: a copy of
    ``configs/mesh/<seed_name>.yaml`` with data_root, epochs (1), batch and model sizes swapped."""
    import yaml

    def make(folder: Path, seed_name: str, data_root: Path, **changes) -> Path:
        raw = yaml.safe_load((REPO / "configs" / "mesh" / f"{seed_name}.yaml").read_text())
        raw.update({**TINY_SIZES, "data_root": str(data_root), "epochs": 1, **changes})
        for key in ("warmup_h36m", "warmup_coco"):
            if key in raw and key not in changes:
                raw[key] = min(raw[key], 1)
        path = Path(folder) / f"{seed_name}.yaml"
        path.write_text(yaml.safe_dump(raw))
        return path

    return make


def seed_args(config: Path, checkpoint: Path, *extra: str, hyper: str = "manual_joint_label1.yaml") -> list[str]:
    """The seed command's flags (train / finetune / evaluate share them) on CPU."""
    return ["--config", str(config), "--checkpoint", str(checkpoint),
            "--hyper_cfg", str(REPO / "hyper_config" / "method2" / hyper),
            "--hyper_relation_bias", "uniform", "--version", "2", "--device", "cpu", *extra]


@pytest.fixture(scope="session")
def seed_command():
    """``seed_command(config, checkpoint, *extra, hyper=...) -> list[str]`` (see ``seed_args``)."""
    return seed_args

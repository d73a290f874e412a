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
def data_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A complete synthetic ``data_root`` (SMPL, regressors, the three pickles) at the 'tiny' preset."""
    from lib.data.synthetic import generate_data_root

    out = tmp_path_factory.mktemp("data_root")
    generate_data_root(out, seed=0, preset="tiny")
    return out

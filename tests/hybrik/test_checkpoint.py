"""Strict loading of HybrIK checkpoints; the key/shape table of HybrIK's HRNet-W48 file as the reference."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch

from lib.body.smpl import BodyModel
from lib.errors import CheckpointError
from lib.hybrik.checkpoint import load_hybrik_checkpoint
from lib.hybrik.model import HybrIKCam

KEY_TABLE = Path(__file__).parent / "hybrik_hrnet48_keys.txt"
# HybrIK's HRNetSMPLCam as counted by running HybrIK's own code (reference motionbert_hybrik.md 3.1).
HYBRIK_ENTRIES, HYBRIK_PARAMS, HYBRIK_PARAM_VALUES, HYBRIK_BUFFERS, HYBRIK_SMPL_BUFFERS = 1975, 989, 75_688_022, 977, 9
SMPL_BUFFER_SHAPES = {"faces_tensor": (13776, 3), "v_template": (6890, 3), "shapedirs": (6890, 3, 10),
                      "posedirs": (207, 20670), "J_regressor": (24, 6890), "J_regressor_h36m": (17, 6890),
                      "children_map": (29,), "parents": (29,), "lbs_weights": (6890, 24)}


def read_key_table() -> dict[str, tuple[str, str, tuple[int, ...]]]:
    """name -> (dtype, kind, shape) from the fixture."""
    table = {}
    for line in KEY_TABLE.read_text().splitlines():
        if line.startswith("#") or not line.strip():
            continue
        name, dtype, kind, shape = line.split()
        table[name] = (dtype, kind, () if shape == "-" else tuple(int(d) for d in shape.split(",")))
    return table


def test_key_table_has_hybriks_counts() -> None:
    table = read_key_table()
    params = [shape for _, kind, shape in table.values() if kind == "param"]
    smpl = {k[len("smpl."):]: v[2] for k, v in table.items() if k.startswith("smpl.")}
    assert len(table) == HYBRIK_ENTRIES
    assert len(params) == HYBRIK_PARAMS and sum(math.prod(s) for s in params) == HYBRIK_PARAM_VALUES
    assert len(table) - len(params) - len(smpl) == HYBRIK_BUFFERS
    assert smpl == SMPL_BUFFER_SHAPES and len(smpl) == HYBRIK_SMPL_BUFFERS


def test_key_table_loads_into_full_width_model(body: BodyModel, hybrik_regressor: np.ndarray) -> None:
    """Every non-smpl key of HybrIK's W48 file exists in our module with its shape and dtype, and nothing else."""
    with torch.device("meta"):
        model = HybrIKCam(body, hybrik_regressor, width=48)
    ours = model.state_dict()
    theirs = {k: v for k, v in read_key_table().items() if not k.startswith("smpl.")}
    assert sorted(set(theirs) - set(ours)) == []  # nothing unexpected
    assert sorted(set(ours) - set(theirs)) == []  # nothing missing
    assert all(tuple(ours[k].shape) == shape for k, (_, _, shape) in theirs.items())
    assert all(str(ours[k].dtype) == f"torch.{dtype}" for k, (dtype, _, _) in theirs.items())
    learned = {k for k, _ in model.named_parameters()}
    assert learned == {k for k, (_, kind, _) in theirs.items() if kind == "param"}


@pytest.fixture(scope="module")
def small_pair(body: BodyModel, hybrik_regressor: np.ndarray) -> tuple[HybrIKCam, HybrIKCam]:
    """Two width-18 models with different random weights (source, destination)."""
    torch.manual_seed(1)
    source = HybrIKCam(body, hybrik_regressor, width=18, mean_beta=np.arange(10.0))
    torch.manual_seed(2)
    return source, HybrIKCam(body, hybrik_regressor, width=18)


def _hybrik_file(model: HybrIKCam, path: Path, wrap: bool = True) -> dict[str, torch.Tensor]:
    """A file laid out like HybrIK's: DataParallel prefix, smpl.* buffers, optionally {'model': ...}."""
    state = {f"module.{k}": v.clone() for k, v in model.state_dict().items()}
    for name, shape in SMPL_BUFFER_SHAPES.items():
        state[f"module.smpl.{name}"] = torch.zeros(shape)
    torch.save({"model": state} if wrap else state, path)
    return state


def test_load_round_trip_ignores_smpl_buffers(small_pair: tuple[HybrIKCam, HybrIKCam], tmp_path: Path) -> None:
    source, dest = small_pair
    path = tmp_path / "hybrik_hrnet.pth"
    _hybrik_file(source, path)
    report = load_hybrik_checkpoint(dest, path)
    assert report.loaded == len(source.state_dict())
    assert report.ignored_smpl == tuple(sorted(f"smpl.{k}" for k in SMPL_BUFFER_SHAPES))
    loaded = dest.state_dict()
    for key, value in source.state_dict().items():
        assert torch.equal(loaded[key], value), key
    assert torch.equal(dest.init_shape, torch.arange(10.0))  # the mean betas come from the file


def _expect_error(model: HybrIKCam, path: Path, *fragments: str) -> None:
    with pytest.raises(CheckpointError) as err:
        load_hybrik_checkpoint(model, path)
    message = str(err.value)
    assert "\n" not in message and str(path.name) in message
    for fragment in fragments:
        assert fragment in message, message


def test_refuses_bad_files(small_pair: tuple[HybrIKCam, HybrIKCam], tmp_path: Path) -> None:
    source, dest = small_pair
    torch.save({"encoder.weight": torch.zeros(3)}, tmp_path / "other.pth")
    _expect_error(dest, tmp_path / "other.pth", "no tensor matches", "encoder.weight")

    state = _hybrik_file(source, tmp_path / "full.pth", wrap=False)
    missing = dict(state)
    del missing["module.decsigma.bias"]
    torch.save(missing, tmp_path / "missing.pth")
    _expect_error(dest, tmp_path / "missing.pth", "missing", "decsigma.bias")

    extra = dict(state, **{"module.fc_coord.weight": torch.zeros(87, 2048)})
    torch.save(extra, tmp_path / "extra.pth")
    _expect_error(dest, tmp_path / "extra.pth", "unknown", "fc_coord.weight")

    reshaped = dict(state, **{"module.decshape.weight": torch.zeros(11, 2048)})
    torch.save(reshaped, tmp_path / "shape.pth")
    _expect_error(dest, tmp_path / "shape.pth", "another shape", "decshape.weight")

    (tmp_path / "text.pth").write_text("not a checkpoint")
    _expect_error(dest, tmp_path / "text.pth", "not a loadable")
    _expect_error(dest, tmp_path / "absent.pth", "not found")

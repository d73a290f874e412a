"""The mesh-pickle schema check: the synthetic pickles pass; each malformed case is one clear line."""

from __future__ import annotations

import copy
import pickle
import struct
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pytest

from lib.data.keypoints2d import H36M_CAMERA_RES
from lib.data.schema import check_split, checked_split, load_mesh_pickle
from lib.data.synthetic import MESH_FILES
from lib.errors import DataError


def _raw(data_root: Path, dataset: str) -> dict[str, Any]:
    with (data_root / MESH_FILES[dataset]).open("rb") as f:
        return pickle.load(f)


@pytest.fixture(scope="module")
def raw_h36m(data_root: Path) -> dict[str, Any]:
    return _raw(data_root, "h36m")


@pytest.fixture(scope="module")
def raw_pw3d(data_root: Path) -> dict[str, Any]:
    return _raw(data_root, "pw3d")


def _one_line_error(func: Callable[[], Any], *fragments: str) -> str:
    with pytest.raises(DataError) as info:
        func()
    message = str(info.value)
    assert "\n" not in message
    for fragment in fragments:
        assert fragment in message, f"{fragment!r} not in {message!r}"
    return message


@pytest.mark.parametrize("dataset", ["h36m", "coco", "pw3d"])
def test_synthetic_pickles_pass_and_come_back_as_numpy(data_root: Path, dataset: str) -> None:
    data = load_mesh_pickle(data_root / MESH_FILES[dataset], dataset)
    assert set(data) >= {"train", "test"}
    for split, arrays in data.items():
        frames = len(arrays["joint_2d"])
        assert frames > 0
        assert arrays["confidence"].shape == (frames, 17, 1)
        assert arrays["source"].shape == (frames,) and arrays["source"].dtype.kind == "U"
        assert arrays["smpl_pose"].shape == (frames, 72) and arrays["pred_smpl_shape"].shape == (frames, 10)
        # Dtypes kept as stored (MotionBERT's files: float32 2D in train, float64 in test).
        assert arrays["joint_2d"].dtype == (np.float32 if split == "train" else np.float64)
        assert arrays["smpl_pose"].dtype == np.float64
        assert isinstance(arrays["img_hw"], list)               # unknown extra keys pass through
        if dataset == "h36m":
            assert arrays["camera_name"].dtype.kind == "U"
            assert set(arrays["camera_name"]) <= set(H36M_CAMERA_RES)


def test_numeric_arrays_are_not_copied(raw_pw3d: dict[str, Any]) -> None:
    split = raw_pw3d["train"]
    out = checked_split(split, dataset="pw3d", split="train", path="x.pkl")
    for key in ("joint_2d", "smpl_pose", "smpl_shape", "pred_smpl_pose", "pred_smpl_shape", "joint_cam"):
        assert out[key] is split[key]
    assert np.shares_memory(out["confidence"], split["confidence"])
    assert check_split(split, dataset="pw3d", split="train", path="x.pkl") == len(split["joint_2d"])


def test_missing_file_names_resolved_path_and_source(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    expected = str((tmp_path / "data" / "mesh" / MESH_FILES["pw3d"]).resolve())
    _one_line_error(lambda: load_mesh_pickle(Path("data/mesh") / MESH_FILES["pw3d"], "pw3d"),
                    expected, "mesh_hybrik.zip", "data/mesh/README.md", "python -m lib.data.synthetic")


def test_missing_split(tmp_path: Path, raw_pw3d: dict[str, Any]) -> None:
    path = tmp_path / "only_train.pkl"
    path.write_bytes(pickle.dumps({"train": raw_pw3d["train"]}))
    _one_line_error(lambda: load_mesh_pickle(path, "pw3d"), str(path), "missing split 'test'")


def test_not_a_pickle(tmp_path: Path) -> None:
    path = tmp_path / "truncated.pkl"
    path.write_bytes(pickle.dumps({"train": {}, "test": {}})[:7])
    _one_line_error(lambda: load_mesh_pickle(path, "coco"), str(path), "not a readable pickle")


def _drop(key: str) -> Callable[[dict], None]:
    return lambda split: split.pop(key)


def _set(key: str, make: Callable[[dict], Any]) -> Callable[[dict], None]:
    def edit(split: dict) -> None:
        split[key] = make(split)
    return edit


def _poison(key: str, frame: int, value: float) -> Callable[[dict], None]:
    def edit(split: dict) -> None:
        arr = np.array(split[key], dtype=np.float64)
        arr[frame, 3] = value
        split[key] = arr
    return edit


# (edit of a copy of a valid split, fragments the one-line message must hold)
MALFORMED = {
    "missing key": (_drop("pred_smpl_pose"), ["'pred_smpl_pose'", "missing key"]),
    "wrong shape": (_set("smpl_pose", lambda s: s["smpl_pose"][:, :69]), ["'smpl_pose'", "(F, 72)", "69)"]),
    "wrong joints": (_set("joint_2d", lambda s: s["joint_2d"][:, :16]), ["'joint_2d'", "(F, 17, >=2)"]),
    "length mismatch": (_set("pred_smpl_shape", lambda s: s["pred_smpl_shape"][:-1]),
                        ["'pred_smpl_shape'", "frames", "got"]),
    "short source": (_set("source", lambda s: s["source"][:-2]), ["'source'", "frames"]),
    "nan": (_poison("smpl_pose", 7, np.nan), ["'smpl_pose'", "NaN/inf", "frame 7"]),
    "inf": (_poison("pred_smpl_pose", 11, np.inf), ["'pred_smpl_pose'", "NaN/inf", "frame 11"]),
    "bad confidence": (_set("confidence", lambda s: np.ones((len(s["source"]), 17, 2))),
                       ["'confidence'", "(F, 17) or (F, 17, 1)"]),
    "text pose": (_set("smpl_shape", lambda s: np.full((len(s["source"]), 10), "x")), ["'smpl_shape'", "dtype"]),
}


@pytest.mark.parametrize("case", sorted(MALFORMED))
def test_malformed_split_is_one_clear_line(raw_pw3d: dict[str, Any], case: str) -> None:
    edit, fragments = MALFORMED[case]
    split = copy.copy(raw_pw3d["test"])                   # shallow: edits replace values, never mutate them
    edit(split)
    message = _one_line_error(lambda: check_split(split, dataset="pw3d", split="test", path="/d/pw3d.pkl"),
                              "/d/pw3d.pkl [test]", *fragments)
    assert "expected" in message and "README" in message


def test_unknown_camera_id(raw_h36m: dict[str, Any]) -> None:
    split = copy.copy(raw_h36m["train"])
    cams = list(split["camera_name"])
    cams[5] = "12345678"
    split["camera_name"] = cams
    _one_line_error(lambda: check_split(split, dataset="h36m", split="train", path="h.pkl"),
                    "h.pkl [train]", "'camera_name'", "'12345678'", "frame 5", "54138969")
    del split["camera_name"]
    _one_line_error(lambda: check_split(split, dataset="h36m", split="train", path="h.pkl"),
                    "missing key 'camera_name'")


def test_confidence_optional_for_h36m_only(raw_h36m: dict[str, Any], raw_pw3d: dict[str, Any]) -> None:
    h36m = copy.copy(raw_h36m["test"])
    del h36m["confidence"]
    out = checked_split(h36m, dataset="h36m", split="test", path="h.pkl")
    np.testing.assert_array_equal(out["confidence"], np.ones((len(h36m["source"]), 17, 1)))
    pw3d = copy.copy(raw_pw3d["test"])
    del pw3d["confidence"]
    _one_line_error(lambda: check_split(pw3d, dataset="pw3d", split="test", path="p.pkl"), "'confidence'")
    # (F, 17) confidence is accepted and returned as (F, 17, 1).
    pw3d["confidence"] = raw_pw3d["test"]["confidence"][..., 0]
    assert checked_split(pw3d, dataset="pw3d", split="test", path="p.pkl")["confidence"].shape[1:] == (17, 1)


def test_joint_cam_optional_but_checked(raw_pw3d: dict[str, Any]) -> None:
    split = copy.copy(raw_pw3d["train"])
    split["joint_cam"] = split["joint_cam"][:, :, :2]
    _one_line_error(lambda: check_split(split, dataset="pw3d", split="train", path="p.pkl"), "'joint_cam'")
    del split["joint_cam"]
    assert check_split(split, dataset="pw3d", split="train", path="p.pkl") == len(split["source"])


def test_integer_and_bytes_sources_become_str(raw_pw3d: dict[str, Any]) -> None:
    split = copy.copy(raw_pw3d["train"])
    n = len(split["source"])
    split["source"] = np.arange(n) // 10
    out = checked_split(split, dataset="pw3d", split="train", path="p.pkl")
    assert out["source"][25] == "2" and out["source"].dtype.kind == "U"
    split["source"] = [b"caf\xe9"] * n
    assert checked_split(split, dataset="pw3d", split="train", path="p.pkl")["source"][0] == "caf\u00e9"
    split["source"] = [1.5] * n
    _one_line_error(lambda: check_split(split, dataset="pw3d", split="train", path="p.pkl"), "'source'", "float")


class _Py2Str(bytes):
    """A Python 2 ``str``: pickled as SHORT_BINSTRING, which Python 3 decodes with the load encoding."""


def _py2_pickle(obj: Any) -> bytes:
    import io

    buffer = io.BytesIO()
    pickler = pickle._Pickler(buffer, protocol=2)          # the pure-Python pickler has a dispatch table
    pickler.dispatch = dict(pickler.dispatch)
    pickler.dispatch[_Py2Str] = lambda self, obj: self.write(b"U" + struct.pack("<B", len(obj)) + bytes(obj))
    pickler.dump(obj)
    return buffer.getvalue()


def test_python2_pickle_loads_with_latin1(tmp_path: Path, raw_pw3d: dict[str, Any]) -> None:
    data = {}
    for split in ("train", "test"):
        data[split] = copy.copy(raw_pw3d[split])
        data[split]["source"] = [_Py2Str(b"caf\xe9_00")] * len(raw_pw3d[split]["source"])
    path = tmp_path / "py2.pkl"
    path.write_bytes(_py2_pickle(data))
    with pytest.raises(UnicodeDecodeError):
        pickle.loads(path.read_bytes())                         # the default ASCII decoding fails
    out = load_mesh_pickle(path, "pw3d")
    assert out["test"]["source"][0] == "caf\u00e9_00"
    np.testing.assert_array_equal(out["test"]["smpl_pose"], raw_pw3d["test"]["smpl_pose"])

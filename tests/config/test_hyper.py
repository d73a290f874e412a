"""Hypergraph config: the shipped YAMLs load with their documented partitions; every invalid case is
one ConfigError line naming the file and the key."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from lib.config.hyper import HyperConfig, load_hyper_config, parse_hyper_config
from lib.errors import ConfigError

REPO = Path(__file__).resolve().parents[2]
LABEL1 = REPO / "hyper_config/method2/manual_joint_label1.yaml"
LABEL2 = REPO / "hyper_config/method2/manual_joint_label2.yaml"

VALID = {
    "spatial_mode": "hyper_dependent_common",
    "hyper_head": 1,
    "hyper_multi_merge_mode": "none",
    "joint_label": [[0, 1, 1, 1, 2, 2, 2, 0, 0, 3, 3, 4, 4, 4, 5, 5, 5]],
    "dataset": "h36m",
}


def _members(labels: tuple[int, ...]) -> list[set[int]]:
    return [{j for j, e in enumerate(labels) if e == edge} for edge in range(max(labels) + 1)]


def test_label1_is_six_body_parts() -> None:
    cfg = load_hyper_config(LABEL1)
    assert (cfg.spatial_mode, cfg.hyper_head, cfg.hyper_multi_merge_mode, cfg.dataset) == \
        ("hyper_dependent_common", 1, "none", "h36m")
    assert cfg.num_edges == (6,)
    # torso, right leg, left leg, head, left arm, right arm (H36M joint order)
    assert _members(cfg.joint_label[0]) == [{0, 7, 8}, {1, 2, 3}, {4, 5, 6}, {9, 10}, {11, 12, 13}, {14, 15, 16}]


def test_label2_is_three_parts() -> None:
    cfg = load_hyper_config(LABEL2)
    assert cfg.num_edges == (3,)
    assert _members(cfg.joint_label[0]) == [set(range(7)), {7}, set(range(8, 17))]


def test_round_trip_through_dict_and_replace() -> None:
    cfg = load_hyper_config(LABEL1)
    assert parse_hyper_config(cfg.to_dict()) == cfg
    two = cfg.replace(hyper_head=2, hyper_multi_merge_mode="mean",
                      joint_label=[list(cfg.joint_label[0]), [0] * 7 + [1] + [2] * 9])
    assert isinstance(two, HyperConfig) and two.num_edges == (6, 3)


def test_dataset_is_optional() -> None:
    raw = {k: v for k, v in VALID.items() if k != "dataset"}
    assert parse_hyper_config(raw).dataset == "h36m"


@pytest.mark.parametrize("change, key", [
    ({"joint_label": [[0] * 16]}, "joint_label[0]"),                      # 16 labels, not 17
    ({"joint_label": [[0] * 18]}, "joint_label[0]"),
    ({"joint_label": [0] * 17}, "joint_label[0]"),                        # not wrapped in a list
    ({"joint_label": [[0, 2] + [0] * 15]}, "joint_label[0]"),             # hyperedge 1 empty
    ({"joint_label": [[-1] + [0] * 16]}, "joint_label[0]"),
    ({"joint_label": [[0] * 16 + [1.5]]}, "joint_label[0]"),
    ({"joint_label": []}, "joint_label"),
    ({"spatial_mode": "hyper_frame_seperation"}, "spatial_mode"),
    ({"hyper_multi_merge_mode": "sum"}, "hyper_multi_merge_mode"),
    ({"hyper_head": 2}, "hyper_head"),                                   # one partition listed
    ({"hyper_head": 0}, "hyper_head"),
    ({"hyper_head": True}, "hyper_head"),
    ({"hyper_head": 2, "joint_label": [[0] * 17, [0] * 17]}, "hyper_multi_merge_mode"),  # none with 2
    ({"dataset": "mpi"}, "dataset"),
    ({"hyper_heads": 1}, "hyper_heads"),                                  # typo'd key
    ({"spatial_mode": None}, "spatial_mode"),
])
def test_invalid_config_is_one_line_naming_file_and_key(tmp_path: Path, change: dict, key: str) -> None:
    raw = {**VALID, **change}
    path = tmp_path / "bad_hyper.yaml"
    path.write_text(yaml.safe_dump(raw), encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        load_hyper_config(path)
    message = str(info.value)
    assert "\n" not in message
    assert str(path) in message
    assert f"'{key}'" in message


def test_typo_suggests_the_valid_key(tmp_path: Path) -> None:
    path = tmp_path / "typo.yaml"
    raw = {k: v for k, v in VALID.items() if k != "hyper_head"}
    path.write_text(yaml.safe_dump({**raw, "hyper_heads": 1}), encoding="utf-8")
    with pytest.raises(ConfigError, match="did you mean 'hyper_head'"):
        load_hyper_config(path)


def test_missing_key_and_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "partial.yaml"
    path.write_text(yaml.safe_dump({k: v for k, v in VALID.items() if k != "joint_label"}), encoding="utf-8")
    with pytest.raises(ConfigError, match=r"partial\.yaml: missing key 'joint_label'"):
        load_hyper_config(path)
    with pytest.raises(ConfigError, match="not found"):
        load_hyper_config(tmp_path / "absent.yaml")


def test_multi_partition_modes_accepted() -> None:
    for mode in ("mean", "max", "weight_mean"):
        cfg = parse_hyper_config({**VALID, "hyper_head": 2, "hyper_multi_merge_mode": mode,
                                  "joint_label": [VALID["joint_label"][0], [0] * 7 + [1] + [2] * 9]})
        assert cfg.hyper_head == 2 and cfg.num_edges == (6, 3)

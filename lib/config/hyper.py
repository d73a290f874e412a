"""The hypergraph config (``hyper_config/method2/*.yaml``) as a typed, frozen dataclass.

The YAML keeps the original EHGFormer keys::

    spatial_mode: hyper_dependent_common      # common | hyper | hyper_dependent_common
    hyper_head: 1                             # number of joint partitions (== len(joint_label))
    hyper_multi_merge_mode: none              # none | mean | max | weight_mean
    joint_label: [[0, 1, 1, 1, 2, ...]]       # one list of 17 hyperedge ids per partition
    dataset: h36m                             # the joint layout the labels refer to

Meanings (shared/CONTRACT.md): ``hyper_dependent_common`` = skeleton-biased spatial attention then
the hypergraph block in every layer; ``common`` = the spatial attention only (the same as
``--version 1``); ``hyper`` = the hypergraph block only. Each partition assigns every H36M joint to
one hyperedge; hyperedges are numbered 0..E-1 and none is empty. With more than one partition each
has its own hypergraph attention and the results are merged by ``hyper_multi_merge_mode``
(``none`` only with a single partition).

Every invalid value is one ``ConfigError`` line naming the file and the key.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import difflib


from lib.body.joint_names import H36M_NUM_JOINTS
from lib.config.task import read_yaml
from lib.errors import ConfigError

SPATIAL_MODES = ("common", "hyper", "hyper_dependent_common")
MERGE_MODES = ("none", "mean", "max", "weight_mean")
HYPER_DATASETS = ("h36m",)
REQUIRED_KEYS = ("spatial_mode", "hyper_head", "hyper_multi_merge_mode", "joint_label")
# `dataset` is optional (the original never read it) and defaults to the only supported layout.
OPTIONAL_KEYS = ("dataset",)
_ALL_KEYS = REQUIRED_KEYS + OPTIONAL_KEYS


@dataclass(frozen=True)
class HyperConfig:
    """A validated hypergraph config.

    Attributes:
        spatial_mode: one of ``SPATIAL_MODES``.
        hyper_head: number of partitions, equal to ``len(joint_label)``.
        hyper_multi_merge_mode: one of ``MERGE_MODES``.
        joint_label: per partition, the hyperedge id (0..E-1) of each of the 17 H36M joints.
        dataset: the joint layout of the labels (``h36m``).
    """

    spatial_mode: str
    hyper_head: int
    hyper_multi_merge_mode: str
    joint_label: tuple[tuple[int, ...], ...]
    dataset: str = "h36m"
    source: str = field(default="<dict>", compare=False)

    @property
    def num_edges(self) -> tuple[int, ...]:
        """Number of hyperedges E of each partition."""
        return tuple(max(labels) + 1 for labels in self.joint_label)

    def to_dict(self) -> dict[str, Any]:
        """The config as plain YAML-able values (written next to every run)."""
        return {
            "spatial_mode": self.spatial_mode,
            "hyper_head": self.hyper_head,
            "hyper_multi_merge_mode": self.hyper_multi_merge_mode,
            "joint_label": [list(labels) for labels in self.joint_label],
            "dataset": self.dataset,
        }

    def replace(self, **changes: Any) -> "HyperConfig":
        """A copy with ``changes`` applied and validated like a YAML."""
        return parse_hyper_config({**self.to_dict(), **changes}, source=self.source)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _parse_joint_label(value: Any, source: str) -> tuple[tuple[int, ...], ...]:
    """Check ``joint_label``: a non-empty list of partitions, each 17 ids numbering edges 0..E-1."""
    key = "joint_label"
    if not isinstance(value, (list, tuple)) or not value:
        raise ConfigError(f"{source}: key '{key}' = {value!r}; expected a non-empty list of lists of "
                          f"{H36M_NUM_JOINTS} hyperedge ids, e.g. [[0, 1, 1, 1, ...]]")
    partitions = []
    for p, labels in enumerate(value):
        where = f"{key}[{p}]"
        if not isinstance(labels, (list, tuple)) or not all(_is_int(v) for v in labels):
            hint = " (a single partition must still be wrapped in a list: [[...]])" if _is_int(labels) else ""
            raise ConfigError(f"{source}: key '{where}' = {labels!r}; expected a list of integers{hint}")
        if len(labels) != H36M_NUM_JOINTS:
            raise ConfigError(f"{source}: key '{where}' has {len(labels)} labels; expected one per H36M joint "
                              f"({H36M_NUM_JOINTS})")
        if min(labels) < 0:
            raise ConfigError(f"{source}: key '{where}' contains the negative id {min(labels)}; "
                              "hyperedge ids are 0, 1, 2, ...")
        missing = sorted(set(range(max(labels) + 1)) - set(labels))
        if missing:
            raise ConfigError(f"{source}: key '{where}' leaves hyperedge(s) {missing} empty; number the "
                              f"hyperedges 0..E-1 without gaps (found ids {sorted(set(labels))})")
        partitions.append(tuple(labels))
    return tuple(partitions)


def parse_hyper_config(raw: Any, source: str = "<dict>") -> HyperConfig:
    """Validate a mapping of YAML keys into a ``HyperConfig``.

    Raises:
        ConfigError: unknown or missing key, wrong type, unknown mode, ``hyper_head`` not equal to
            the number of partitions, a partition not of length 17, an empty hyperedge.
    """
    if not isinstance(raw, dict):
        raise ConfigError(f"{source}: expected a mapping of keys at the top level, got {type(raw).__name__}")
    for key in raw:
        if key not in _ALL_KEYS:
            close = difflib.get_close_matches(str(key), _ALL_KEYS, n=1)
            hint = f"did you mean '{close[0]}'? " if close else ""
            raise ConfigError(f"{source}: unknown key '{key}'; {hint}valid keys are: {', '.join(_ALL_KEYS)}")
    for key in REQUIRED_KEYS:
        if key not in raw:
            raise ConfigError(f"{source}: missing key '{key}'; a hyper config needs {', '.join(REQUIRED_KEYS)}")

    spatial_mode = raw["spatial_mode"]
    if spatial_mode not in SPATIAL_MODES:
        raise ConfigError(f"{source}: key 'spatial_mode' = {spatial_mode!r}; allowed: {list(SPATIAL_MODES)}")
    merge_mode = raw["hyper_multi_merge_mode"]
    if merge_mode not in MERGE_MODES:
        raise ConfigError(f"{source}: key 'hyper_multi_merge_mode' = {merge_mode!r}; allowed: {list(MERGE_MODES)}")
    dataset = raw.get("dataset", "h36m")
    if dataset not in HYPER_DATASETS:
        raise ConfigError(f"{source}: key 'dataset' = {dataset!r}; allowed: {list(HYPER_DATASETS)} "
                          "(the labels index the H36M-17 joints)")
    joint_label = _parse_joint_label(raw["joint_label"], source)
    hyper_head = raw["hyper_head"]
    if not _is_int(hyper_head) or hyper_head < 1:
        raise ConfigError(f"{source}: key 'hyper_head' = {hyper_head!r}; expected an integer >= 1")
    if hyper_head != len(joint_label):
        raise ConfigError(f"{source}: key 'hyper_head' = {hyper_head} but 'joint_label' holds {len(joint_label)} "
                          f"partition(s); set hyper_head to {len(joint_label)}")
    if merge_mode == "none" and hyper_head > 1:
        raise ConfigError(f"{source}: key 'hyper_multi_merge_mode' = 'none' with hyper_head = {hyper_head}; "
                          "choose mean, max or weight_mean to merge several partitions")
    return HyperConfig(spatial_mode=spatial_mode, hyper_head=hyper_head, hyper_multi_merge_mode=merge_mode,
                       joint_label=joint_label, dataset=dataset, source=source)


def load_hyper_config(path: str | Path) -> HyperConfig:
    """Read and validate a hypergraph YAML.

    Raises:
        ConfigError: missing file, YAML syntax error, or any invalid key (see ``parse_hyper_config``).
    """
    raw = read_yaml(path, "pass hyper_config/method2/manual_joint_label1.yaml or ..._label2.yaml with --hyper_cfg")
    return parse_hyper_config(raw, source=str(path))

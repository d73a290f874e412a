"""The model switches of the command line as one typed, validated value, and their only defaults.

``lib.config.cli`` builds its flags from these defaults and ``lib.model.build`` consumes the value;
neither defines its own.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from lib.errors import ConfigError

VERSIONS = (1, 2)
RELATION_BIASES = ("none", "uniform")
DEFAULT_VERSION = 2
DEFAULT_RELATION_BIAS = "none"  # the original's default; every documented command passes uniform


@dataclass(frozen=True)
class ModelOptions:
    """The model switches of the command line, as real values.

    Attributes:
        version: 2 = spatio-temporal transformer with hypergraph blocks (as the hyper config says);
            1 = the same without any hypergraph block (ablation baseline; the hyper config is unused).
        hyper_relation_bias: initial joint-to-joint attention bias: ``uniform`` (normalised skeleton
            adjacency) or ``none`` (identity).
        j2e: include the hypergraph block (version 2).
        j2e_main: joint-to-hyperedge attention logits.
        j2e_bias: hyperedge bias attention logits.
        j2j_adjacency: learnable joint-to-joint bias in the spatial attention (else none, alpha = 0).
    """

    version: int = DEFAULT_VERSION
    hyper_relation_bias: str = DEFAULT_RELATION_BIAS
    j2e: bool = True
    j2e_main: bool = True
    j2e_bias: bool = True
    j2j_adjacency: bool = True

    def __post_init__(self) -> None:
        if isinstance(self.version, bool) or self.version not in VERSIONS:
            raise ConfigError(f"model option 'version' = {self.version!r}; allowed: {list(VERSIONS)}")
        if self.hyper_relation_bias not in RELATION_BIASES:
            raise ConfigError(f"model option 'hyper_relation_bias' = {self.hyper_relation_bias!r}; "
                              f"allowed: {list(RELATION_BIASES)}")
        for name in ("j2e", "j2e_main", "j2e_bias", "j2j_adjacency"):
            if not isinstance(getattr(self, name), bool):
                raise ConfigError(f"model option '{name}' = {getattr(self, name)!r}; expected true or false")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

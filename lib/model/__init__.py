"""The refiner model.

Modules: ``graph`` (H36M skeleton adjacency), ``attention`` (MLP, DropPath, spatial and temporal
attention blocks), ``hypergraph`` (hyperedges, hypergraph attention, partition merging),
``backbone`` (versions 1 and 2), ``head`` (residual refine head), ``refiner`` (``MeshRefiner`` with
SMPL inside, ``MeshRefinerForExport``), ``build`` (``build_model``: the one builder for training,
evaluation and export, from the configs and ``lib.config.options.ModelOptions``).
"""

from lib.model.build import build_model, count_trainable_parameters
from lib.model.refiner import EXPORT_INPUT_NAMES, EXPORT_OUTPUT_NAMES, OUTPUT_KEYS, MeshRefiner, MeshRefinerForExport

__all__ = ["EXPORT_INPUT_NAMES", "EXPORT_OUTPUT_NAMES", "OUTPUT_KEYS", "MeshRefiner", "MeshRefinerForExport",
           "build_model", "count_trainable_parameters"]

"""Writing an ONNX file safely: export to a temp file beside it, edit the proto, rename over it
(``lib.atomic_write.atomic_path``).

One helper for both exports (the refiner, ``lib.deploy.export``, and HybrIK, ``lib.deploy.hybrik_export``):
a crash or Ctrl-C mid-export never leaves a half-written file at the destination, and an existing
file there is replaced only by a complete one.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lib.atomic_write import atomic_path


def write_onnx(path: str | Path, export: Callable[[str], None],
               edit: Callable[[Any], None] | None = None) -> tuple[Any, float]:
    """Run ``export(tmp_path)``, load the result, apply ``edit(proto)``, save it and rename it to ``path``.

    Args:
        path: destination (its folder is created).
        export: writes an ONNX file at the given path (e.g. a ``torch.onnx.export`` call).
        edit: optional in-place change of the loaded ``onnx.ModelProto`` (metadata, declared shapes).
    Returns:
        (the saved ``onnx.ModelProto``, seconds from export start to rename).
    Raises:
        WriteError: the file cannot be written (``lib.atomic_write``: one line, nothing left behind).
    """
    import onnx

    start = time.perf_counter()
    with atomic_path(path) as tmp:
        export(str(tmp))
        proto = onnx.load(str(tmp))
        if edit is not None:
            edit(proto)
        onnx.save(proto, str(tmp))
    return proto, time.perf_counter() - start


def opset_of(proto: Any) -> int:
    """The default-domain opset version of an ``onnx.ModelProto`` (-1 if none is declared)."""
    return next((o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")), -1)


@dataclass(frozen=True)
class ExportInfo:
    """What an export wrote (both exports): file, seconds, size, opset, graph input / output names and dims."""

    path: Path
    seconds: float
    size_bytes: int
    opset: int
    inputs: list[tuple[str, list[Any]]]
    outputs: list[tuple[str, list[Any]]]


def io_shapes(values: Any) -> list[tuple[str, list[Any]]]:
    """(name, dims) of graph inputs / outputs; symbolic dims by name."""
    return [(v.name, [d.dim_param if d.dim_param else d.dim_value for d in v.type.tensor_type.shape.dim])
            for v in values]


def export_info(path: str | Path, proto: Any, seconds: float) -> ExportInfo:
    """The ``ExportInfo`` of the file ``write_onnx`` saved at ``path`` from ``proto``."""
    path = Path(path)
    return ExportInfo(path=path, seconds=seconds, size_bytes=path.stat().st_size, opset=opset_of(proto),
                      inputs=io_shapes(proto.graph.input), outputs=io_shapes(proto.graph.output))

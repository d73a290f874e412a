"""Writing an ONNX file safely: export to a temp file beside it, edit the proto, rename over it.

One helper for both exports (the refiner, ``lib.deploy.export``, and HybrIK, ``lib.hybrik.export``):
a crash or Ctrl-C mid-export never leaves a half-written file at the destination, and an existing
file there is replaced only by a complete one.
"""

from __future__ import annotations

import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any


def write_onnx(path: str | Path, export: Callable[[str], None],
               edit: Callable[[Any], None] | None = None) -> tuple[Any, float]:
    """Run ``export(tmp_path)``, load the result, apply ``edit(proto)``, save it and rename it to ``path``.

    Args:
        path: destination (its folder is created).
        export: writes an ONNX file at the given path (e.g. a ``torch.onnx.export`` call).
        edit: optional in-place change of the loaded ``onnx.ModelProto`` (metadata, declared shapes).
    Returns:
        (the saved ``onnx.ModelProto``, seconds from export start to rename).
    """
    import onnx

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    start = time.perf_counter()
    try:
        export(tmp)
        proto = onnx.load(tmp)
        if edit is not None:
            edit(proto)
        onnx.save(proto, tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return proto, time.perf_counter() - start


def opset_of(proto: Any) -> int:
    """The default-domain opset version of an ``onnx.ModelProto`` (-1 if none is declared)."""
    return next((o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")), -1)

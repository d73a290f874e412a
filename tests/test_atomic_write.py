"""lib.atomic_write: every writer of the project fails with one line naming the file and the cause,
removes its temp file and leaves the previous file as it was."""

from __future__ import annotations

import errno
import json
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Callable

import numpy as np
import pytest
import torch
from PIL import Image

from lib import atomic_write
from lib.errors import RefineError, WriteError

ROOT = Path(__file__).resolve().parents[1]
OLD = b"the previous file"


def _write_checkpoint(path: Path) -> None:
    from lib.train.checkpoint import atomic_save

    atomic_save({"model": {"w": torch.ones(3)}, "epoch": 2}, path)


def _write_history(path: Path) -> None:
    atomic_write.write_text_atomic(path, json.dumps([{"epoch": 1}]))


def _write_npz(path: Path) -> None:
    from lib.deploy.pipeline import write_npz

    write_npz(path, {"vertices": np.zeros((2, 5, 3), dtype=np.float32)})


def _write_png(path: Path) -> None:
    from lib.deploy.render import save_png

    assert save_png(np.zeros((8, 8, 3), dtype=np.uint8), path.parent, 0) == path


def _write_gif(path: Path) -> None:
    from lib.deploy.render import save_gif

    frame = path.parent / "frames" / "a.png"
    frame.parent.mkdir(exist_ok=True)
    Image.fromarray(np.zeros((8, 8, 3), dtype=np.uint8)).save(frame)
    save_gif([frame], path, fps=10)


def _write_plot(path: Path) -> None:
    from lib.viz.plots import plot_per_joint

    plot_per_joint({"input": [1.0] * 17, "refined": [0.5] * 17}, path)


def _write_onnx(path: Path) -> None:
    import onnx
    from onnx import TensorProto, helper

    from lib.deploy.onnx_file import write_onnx

    graph = helper.make_graph([helper.make_node("Identity", ["x"], ["y"])], "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])])
    write_onnx(path, lambda tmp: onnx.save(helper.make_model(graph), tmp))


def _write_pickle(path: Path) -> None:
    from lib.data.synthetic_style_a import write_pickle

    write_pickle({"a": 1}, path)


WRITERS: dict[str, tuple[str, Callable[[Path], None]]] = {
    "checkpoint": ("latest_epoch.bin", _write_checkpoint),
    "history / metrics json": ("history.json", _write_history),
    "inference npz": ("refined.npz", _write_npz),
    "render png": ("frame_000000.png", _write_png),
    "render gif": ("render.gif", _write_gif),
    "plot": ("per_joint.png", _write_plot),
    "onnx": ("refiner.onnx", _write_onnx),
    "data pickle": ("mesh_det_pw3d.pkl", _write_pickle),
}


def _temp_files(folder: Path) -> list[Path]:
    return [p for p in folder.rglob(atomic_write.TEMP_GLOB)]


@pytest.mark.parametrize("cause", [errno.ENOSPC, errno.EROFS])
@pytest.mark.parametrize("what", list(WRITERS))
def test_every_writer_fails_in_one_line_keeping_the_previous_file(what: str, cause: int, tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    name, write = WRITERS[what]
    path = tmp_path / name
    path.write_bytes(OLD)
    real_replace = os.replace

    def failing_replace(src, dst):  # the disk fills up (or turns read-only) as the file is completed
        if Path(dst) == path:
            raise OSError(cause, os.strerror(cause))
        real_replace(src, dst)

    monkeypatch.setattr(atomic_write.os, "replace", failing_replace)
    with pytest.raises(WriteError) as info:
        write(path)
    message = str(info.value)
    assert isinstance(info.value, RefineError) and "\n" not in message
    assert message.startswith(f"{path}: cannot write ({errno.errorcode[cause]}, {os.strerror(cause)})")
    assert atomic_write.FIXES[cause] in message
    assert path.read_bytes() == OLD
    assert _temp_files(tmp_path) == []
    monkeypatch.undo()
    write(path)  # the same writer works once the disk is fine again
    assert path.read_bytes() != OLD and _temp_files(tmp_path) == []


def test_a_file_size_limit_is_one_line_and_the_previous_file_stays(tmp_path: Path) -> None:
    """A real ``write`` failing with EFBIG: RLIMIT_FSIZE of 1 MB in a child process, SIGXFSZ ignored."""
    path = tmp_path / "latest_epoch.bin"
    path.write_bytes(OLD)
    child = textwrap.dedent(f"""
        import resource, signal, sys
        from lib.atomic_write import write_bytes_atomic
        from lib.errors import WriteError
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (1 << 20, 1 << 20))
        try:
            write_bytes_atomic({str(path)!r}, bytes(2 << 20))
        except WriteError as exc:
            print(exc, file=sys.stderr)
            sys.exit(2)
    """)
    proc = subprocess.run([sys.executable, "-c", child], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr == f"{path}: cannot write (EFBIG, File too large); {atomic_write.FIXES[errno.EFBIG]}; " \
                          "the previous file, if any, is unchanged\n"
    assert path.read_bytes() == OLD and _temp_files(tmp_path) == []


def test_new_files_get_the_usual_permissions(tmp_path: Path) -> None:
    umask = os.umask(0o022)
    try:
        path = atomic_write.write_text_atomic(tmp_path / "sub" / "a.json", "{}")
    finally:
        os.umask(umask)
    assert path.read_text() == "{}" and (path.stat().st_mode & 0o777) == 0o644  # not mkstemp's 0o600


def test_an_unwritable_folder_is_one_line(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")  # a file where a folder is expected fails for root too
    path = blocker / "sub" / "a.json"
    with pytest.raises(WriteError, match=rf"^{re.escape(str(path))}: cannot write \(ENOTDIR, "):
        atomic_write.write_text_atomic(path, "{}")
    with pytest.raises(WriteError, match=r"cannot write \(ENOTDIR, "):
        atomic_write.make_folder(blocker / "sub")


def test_an_interrupt_removes_the_temp_file_and_is_not_converted(tmp_path: Path) -> None:
    path = tmp_path / "a.bin"
    path.write_bytes(OLD)
    with pytest.raises(KeyboardInterrupt):
        with atomic_write.atomic_open(path) as handle:
            handle.write(b"half")
            raise KeyboardInterrupt
    assert path.read_bytes() == OLD and _temp_files(tmp_path) == []

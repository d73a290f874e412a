"""Atomic file writes: every file the project writes goes through here.

A file is written to a temp file in its destination folder (``.<name>.<random>.tmp``), flushed to
disk (``fsync``), then renamed over the destination (``os.replace``). So a crash, Ctrl-C or full disk
at any moment leaves either the previous file or the new one, never a torn file. An ``OSError`` while
writing (no space, file too large, permission denied, read-only file system) becomes one
``WriteError`` line naming the file, the cause and the fix; the temp file is removed first.

Temp files match ``.*.tmp`` (``TEMP_GLOB``): the training run removes the ones a killed run left.
"""

from __future__ import annotations

import contextlib
import errno
import os
import secrets
from pathlib import Path
from typing import IO, Iterator

from lib.errors import WriteError

TEMP_GLOB = ".*.tmp"
NEW_FILE_MODE = 0o666  # before the umask, as open() creates files (mkstemp would give 0o600)
# errno -> the fix named in the message
FIXES = {
    errno.ENOSPC: "free disk space or write to another disk",
    errno.EDQUOT: "free space within your disk quota or write to another disk",
    errno.EFBIG: "the file exceeds a file-size limit (ulimit -f) or the file system's maximum; raise the limit "
                 "or write elsewhere",
    errno.EACCES: "choose a folder you may write to, or fix its permissions",
    errno.EPERM: "choose a folder you may write to, or fix its permissions",
    errno.EROFS: "the file system is read-only; write to another folder",
}


def write_error(path: Path, exc: OSError) -> WriteError:
    """The one-line ``WriteError`` for an ``OSError`` raised while writing ``path``."""
    cause = exc.strerror or " ".join(str(exc).split()) or type(exc).__name__
    code = f"{errno.errorcode[exc.errno]}, " if exc.errno in errno.errorcode else ""
    fix = FIXES.get(exc.errno, "check the folder, its permissions and the free disk space")
    return WriteError(f"{path}: cannot write ({code}{cause}); {fix}; the previous file, if any, is unchanged")


def make_folder(path: str | Path) -> Path:
    """``mkdir -p path``; an ``OSError`` (read-only, no permission) as one ``WriteError`` line."""
    path = Path(path)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise write_error(path, exc) from None
    return path


def _temp_path(path: Path) -> Path:
    """Create an empty, not yet existing temp file beside ``path`` (umask permissions) and return its path."""
    for _ in range(100):
        tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
        try:
            os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, NEW_FILE_MODE))
        except FileExistsError:
            continue
        return tmp
    raise FileExistsError(errno.EEXIST, "no free temp file name", str(path))


def _write_os_error(exc: BaseException) -> OSError | None:
    """The ``OSError`` behind a failed write: ``exc`` itself, or the one it was raised while handling.

    ``torch.save``'s zip writer, when a write fails, raises a ``RuntimeError`` ("unexpected pos ...")
    while closing the archive, with the real cause (e.g. ``EFBIG``) only as its ``__context__``.
    """
    seen = 0
    while exc is not None and seen < 8:
        if isinstance(exc, WriteError) or not isinstance(exc, Exception):
            return None
        if isinstance(exc, OSError):
            return exc
        exc, seen = exc.__context__, seen + 1
    return None


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temp path beside ``path`` for a writer that takes a file name; rename it over ``path`` after.

    The folder of ``path`` is created. On any exception the temp file is removed and ``path`` is left
    as it was; an ``OSError`` is raised as ``WriteError`` (one line: file, cause, fix).
    """
    path = Path(path)
    tmp: Path | None = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = _temp_path(path)
        yield tmp
        _fsync(tmp)
        os.replace(tmp, path)
    except BaseException as exc:
        if tmp is not None:
            with contextlib.suppress(OSError):
                tmp.unlink(missing_ok=True)
        cause = _write_os_error(exc)
        if cause is not None:
            raise write_error(path, cause) from None
        raise


@contextlib.contextmanager
def atomic_open(path: str | Path, mode: str = "wb", encoding: str | None = None) -> Iterator[IO]:
    """``open(path, mode)`` through ``atomic_path``: yields a handle on the temp file (``mode`` "wb" or "w")."""
    if mode not in ("wb", "w"):
        raise ValueError(f"atomic_open mode {mode!r}; expected 'wb' or 'w'")
    with atomic_path(path) as tmp:
        with open(tmp, mode, encoding=encoding if "b" not in mode else None) as handle:
            yield handle


def write_bytes_atomic(path: str | Path, payload: bytes) -> Path:
    """Write ``payload`` to ``path`` atomically (see the module docstring)."""
    with atomic_open(path, "wb") as handle:
        handle.write(payload)
    return Path(path)


def write_text_atomic(path: str | Path, text: str) -> Path:
    """Write UTF-8 ``text`` to ``path`` atomically (see the module docstring)."""
    with atomic_open(path, "w", encoding="utf-8") as handle:
        handle.write(text)
    return Path(path)

"""One logging path: stdlib ``logging`` routed through ``tqdm.write`` (so bars stay intact), rank 0 only,
mirrored to a log file when one is given."""

from __future__ import annotations

import logging
import sys
from pathlib import Path

from tqdm import tqdm

from lib.atomic_write import make_folder, write_error

FORMAT = "%(asctime)s %(levelname)s %(message)s"
DATEFMT = "%H:%M:%S"


class TqdmHandler(logging.Handler):
    """Writes records with ``tqdm.write`` so they appear above active progress bars."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            tqdm.write(self.format(record), file=sys.stdout)
        except Exception:  # noqa: BLE001 - logging must never raise
            self.handleError(record)


def setup_logging(log_file: str | Path | None = None, *, rank: int = 0, level: int = logging.INFO) -> None:
    """Configure the root logger once: console (through tqdm) and an optional file, rank 0 only.

    Other ranks log warnings and errors only, to stderr.
    """
    root = logging.getLogger()
    for handler in list(root.handlers):
        if getattr(handler, "_refine_handler", False):
            root.removeHandler(handler)
            handler.close()
    handlers: list[logging.Handler] = []
    if rank == 0:
        handlers.append(TqdmHandler())
        if log_file is not None:
            make_folder(Path(log_file).parent)
            try:
                handlers.append(logging.FileHandler(log_file, encoding="utf-8"))
            except OSError as exc:
                raise write_error(Path(log_file), exc) from None
    else:
        handlers.append(logging.StreamHandler(sys.stderr))
        level = logging.WARNING
    for handler in handlers:
        handler.setFormatter(logging.Formatter(FORMAT, DATEFMT))
        handler._refine_handler = True  # type: ignore[attr-defined]
        root.addHandler(handler)
    root.setLevel(level)

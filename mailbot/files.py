"""Small helpers shared by the modules that own files on disk (Maildir, UNIS extract, directory)."""

from __future__ import annotations

import os
from pathlib import Path


class DataFileError(Exception):
    """A bad input file.  str() names the file, the row (header = row 1) and the column."""

    def __init__(self, path: Path | str, message: str, row: int | None = None, column: str | None = None):
        self.path, self.message, self.row, self.column = Path(path), message, row, column
        where = str(path)
        if row is not None:
            where += f": row {row}"
        if column is not None:
            where += f", column {column}" if row is not None else f": column {column}"
        super().__init__(f"{where}: {message}")


def fsync_dir(path: Path) -> None:
    """Make a rename in `path` durable (best effort: some filesystems refuse directory fsync)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def write_atomically(path: Path, data: bytes) -> None:
    """`path` holds either its old bytes or `data`, never a part (a reader may open it any time)."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)

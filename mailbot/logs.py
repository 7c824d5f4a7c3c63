"""Logging failures without the data they were about.

An exception's message can carry what the code was reading (a subject, a name, an address, bytes
of a form): the log gets its type and where it happened, never its message or local values.
"""

from __future__ import annotations

import logging
import traceback


def log_failure(log: logging.Logger, what: str, exc: BaseException) -> None:
    frames = traceback.extract_tb(exc.__traceback__)
    where = " < ".join(f"{f.filename.rsplit('/', 1)[-1]}:{f.lineno} {f.name}" for f in reversed(frames[-6:]))
    log.error("%s: %s at %s", what, type(exc).__name__, where or "?")

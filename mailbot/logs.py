"""Logging failures without the data they were about.

An exception's message can carry what the code was reading (a subject, a name, an address, bytes
of a form): the log gets its type and where it happened, never its message or local values.
"""

from __future__ import annotations

import json
import logging
import traceback
from datetime import datetime

from mailbot.text import TOKYO


def log_failure(log: logging.Logger, what: str, exc: BaseException) -> None:
    frames = traceback.extract_tb(exc.__traceback__)
    where = " < ".join(f"{f.filename.rsplit('/', 1)[-1]}:{f.lineno} {f.name}" for f in reversed(frames[-6:]))
    log.error("%s: %s at %s", what, type(exc).__name__, where or "?")


# ---------------------------------------------------------------- formats

# What a decision's log record carries (logging's `extra`), in this order in a JSON line.
MAIL_FIELDS = ("mail_id", "message_id", "kind", "code", "decision", "reasons")


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time (Asia/Tokyo, with its offset), level, logger, message and,
    for a decision, the mail's fields; Japanese kept as it is (no \\uXXXX)."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, object] = {
            "time": datetime.fromtimestamp(record.created, TOKYO).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(), "logger": record.name, "message": record.getMessage()}
        for name in MAIL_FIELDS:
            if hasattr(record, name):
                out[name] = getattr(record, name)
        if record.exc_info:
            out["error"] = type(record.exc_info[1]).__name__
        return json.dumps(out, ensure_ascii=False, default=str)


class TokyoFormatter(logging.Formatter):
    """Text lines stamped in Asia/Tokyo with the offset, as everything else the bot shows."""

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:  # noqa: N802
        return datetime.fromtimestamp(record.created, TOKYO).isoformat(sep=" ", timespec="seconds")


def configure(log_format: str = "text", verbose: bool = False) -> None:
    """The root logger's one handler (stderr), in `log_format` ("text" or "json")."""
    handler = logging.StreamHandler()
    handler.setFormatter(JsonFormatter() if log_format == "json"
                         else TokyoFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(logging.INFO if verbose else logging.WARNING)
    # The scheduler's own bookkeeping ("Adding job tentatively…") is not what an operator wants.
    logging.getLogger("apscheduler").setLevel(logging.WARNING)

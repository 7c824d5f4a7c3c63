"""Reading one rules file, and errors that name its file and line: `path:line: what is wrong`."""

from __future__ import annotations

import re
import tomllib
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator


class RulesError(Exception):
    """A rules file or template is missing or wrong; one line naming the file, the line and what."""


_HEADER = re.compile(r"^\s*\[\[?\s*([^\]]+?)\s*\]\]?\s*(?:#.*)?$")
_KEY = re.compile(r"""^\s*("(?:[^"\\]|\\.)*"|'[^']*'|[A-Za-z0-9_-]+)\s*=""")
_INDEX = re.compile(r"\[\d+\]")


def _unquote(name: str) -> str:
    return name.strip().strip("\"'")


@dataclass(frozen=True)
class RulesFile:
    """One TOML file of rules/: its parsed data, and its text to find the line of a key."""

    path: Path
    text: str
    data: dict[str, Any]

    @classmethod
    def read(cls, rules_dir: Path, name: str) -> RulesFile:
        path = Path(rules_dir) / name
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise RulesError(f"{path}: rules file not found") from None
        except (OSError, UnicodeDecodeError) as e:
            raise RulesError(f"{path}: cannot be read ({e})") from None
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as e:
            # tomllib says "… (at line 3, column 5)": the line goes up front, as everywhere.
            m = re.search(r"\(at line (\d+), column \d+\)", str(e))
            what = re.sub(r"\s*\(at line \d+, column \d+\)", "", str(e)) if m else str(e)
            raise RulesError(f"{path}:{m[1] if m else 1}: not valid TOML: {what}") from None
        return cls(path, text, data)

    def line_of(self, key: str) -> int:
        """The line of a dotted key ("closed.recurring[0].from", "fields.status.type"): the key's
        own line in its table where it is written there, else its table's header, else 1."""
        parts = [_unquote(p) for p in _INDEX.sub("", key).split(".") if p]
        lines = self.text.splitlines()
        tables: dict[str, int] = {}
        keys: dict[tuple[str, str], int] = {}
        table = ""
        for number, line in enumerate(lines, 1):
            header = _HEADER.match(line)
            if header:
                table = ".".join(_unquote(p) for p in header.group(1).split("."))
                tables.setdefault(table, number)
                continue
            found = _KEY.match(line)
            if found:
                keys.setdefault((table, _unquote(found.group(1))), number)
        for k in range(len(parts), 0, -1):
            table, name = ".".join(parts[: k - 1]), parts[k - 1]
            if (table, name) in keys:
                return keys[(table, name)]
            if ".".join(parts[:k]) in tables:
                return tables[".".join(parts[:k])]
        return 1

    def error(self, key: str, what: str) -> RulesError:
        return RulesError(f"{self.path}:{self.line_of(key)}: {key}: {what}" if key else f"{self.path}:1: {what}")

    @contextmanager
    def building(self) -> Iterator[None]:
        """What a builder trips over, as one line naming this file: a missing key, a value of
        the wrong type, a bad regular expression."""
        try:
            yield
        except RulesError:
            raise
        except KeyError as e:
            key = str(e.args[0]) if e.args else ""
            raise RulesError(f"{self.path}:{self.line_of(key)}: missing key {key!r}") from None
        except re.error as e:
            pattern = e.pattern if isinstance(e.pattern, str) else ""
            line = next((n for n, text in enumerate(self.text.splitlines(), 1) if pattern and pattern[:20] in text), 1)
            raise RulesError(f"{self.path}:{line}: not a regular expression ({e})") from None
        except (TypeError, ValueError, AttributeError) as e:
            raise RulesError(f"{self.path}:1: a value of the wrong type ({type(e).__name__}: {e})") from None


def strings(file: RulesFile, table: dict[str, Any], key: str, where: str) -> tuple[str, ...]:
    """A list of non-empty strings, or an error naming the key."""
    value = table.get(key)
    if not isinstance(value, list) or not all(isinstance(s, str) and s for s in value):
        raise file.error(f"{where}.{key}" if where else key, "expected a list of non-empty strings")
    return tuple(value)


def table_of(file: RulesFile, data: dict[str, Any], key: str, where: str = "") -> dict[str, Any]:
    """A table, or an error naming the key."""
    value = data.get(key)
    if not isinstance(value, dict):
        raise file.error(f"{where}.{key}" if where else key, "expected a table" if value is not None else "missing")
    return value


def number(file: RulesFile, data: dict[str, Any], key: str, where: str = "", minimum: int = 0) -> int:
    value = data.get(key)
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        raise file.error(f"{where}.{key}" if where else key, f"expected a whole number ≥ {minimum}, got {value!r}")
    return value

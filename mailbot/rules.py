"""Business policy loaded from `rules/*.toml` (subject words, reason codes, sender rules)."""

from __future__ import annotations

import dataclasses
import tomllib
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from mailbot.config import Folders
from mailbot.model import Action


class RulesError(Exception):
    """A rules file is missing or wrong; names the file and the key."""


def load_toml(rules_dir: Path, name: str) -> dict[str, Any]:
    path = rules_dir / name
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise RulesError(f"{path}: rules file not found") from None
    except tomllib.TOMLDecodeError as e:
        raise RulesError(f"{path}: not valid TOML ({e})") from None


@dataclass(frozen=True)
class Reason:
    """One reason code: what it decides and how it is explained (rules/reasons.toml)."""

    code: str
    action: Action
    title: str  # what is wrong, one line, for the branch and for staff
    fix: str  # how to fix it (remands) or what staff should look at (holds)
    flag: bool = False  # shown in the digest even when the mail is accepted
    branch_fix: str = ""  # for a hold that staff turn into a remand: how the branch fixes it
    folder: str = ""  # a [folders] key the mail is filed to instead of its decision's folder

    def fix_for(self, action: Action) -> str:
        """The fix as the reader of a reply with this decision needs it."""
        return self.branch_fix or self.fix if action is Action.REMAND else self.fix


@cache
def kind_labels(rules_dir: Path) -> dict[str, str]:
    """Kind value → its Japanese name (rules/kinds.toml [labels]), in the order written there;
    kinds it leaves out come last, under their value."""
    from mailbot.model import Kind

    written = load_toml(rules_dir, "kinds.toml").get("labels", {})
    labels = {k.value: written.get(k.value, k.value) for k in Kind}
    return {k: labels[k] for k in written if k in labels} | labels


_FOLDER_KEYS = frozenset(f.name for f in dataclasses.fields(Folders))


@cache
def reasons(rules_dir: Path) -> dict[str, Reason]:
    data = load_toml(rules_dir, "reasons.toml")
    result = {}
    for code, entry in data.items():
        try:
            action = Action(entry["decision"])
            result[code] = Reason(code, action, entry["title"], entry.get("fix", ""), entry.get("flag", False),
                                  entry.get("branch_fix", ""), entry.get("folder", ""))
            if result[code].folder and result[code].folder not in _FOLDER_KEYS:
                raise ValueError(f"folder {result[code].folder!r} is none of {', '.join(sorted(_FOLDER_KEYS))}")
        except (KeyError, ValueError, TypeError) as e:
            raise RulesError(f"{rules_dir / 'reasons.toml'}: [{code}] is incomplete or wrong ({e})") from None
    return result

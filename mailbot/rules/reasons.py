"""rules/reasons.toml: every reason code, what it decides and how it is explained."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from mailbot.config import Folders
from mailbot.model import Action
from mailbot.rules.base import RulesFile

_FOLDER_KEYS = frozenset(f.name for f in dataclasses.fields(Folders))


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
    silent: bool = False  # never answered, whatever the decision (automatic mail, outsiders, unreadable)
    label: str = ""  # short Japanese name for lists (digest, held list, `held`, `history`)
    technical: bool = False  # the detail is a technical note for whoever runs the bot, not staff's wording

    def fix_for(self, action: Action) -> str:
        """The fix as the reader of a reply with this decision needs it."""
        return self.branch_fix or self.fix if action is Action.REMAND else self.fix


def build_reasons(file: RulesFile) -> dict[str, Reason]:
    result = {}
    for code, entry in file.data.items():
        if not isinstance(entry, dict):
            raise file.error(code, "expected a table")
        try:
            action = Action(entry["decision"])
        except KeyError:
            raise file.error(code, "missing key 'decision'") from None
        except ValueError:
            raise file.error(f"{code}.decision", f"{entry['decision']!r} is none of "
                             f"{', '.join(a.value for a in Action)}") from None
        for key in ("title", "fix", "branch_fix", "folder", "label"):
            if key in entry and not isinstance(entry[key], str):
                raise file.error(f"{code}.{key}", "expected a string")
        for key in ("title", "label"):
            if not entry.get(key):
                raise file.error(code, f"missing key {key!r}")
        for key in ("flag", "silent", "technical"):
            if not isinstance(entry.get(key, False), bool):
                raise file.error(f"{code}.{key}", "expected true or false")
        reason = Reason(code, action, entry["title"], entry.get("fix", ""), entry.get("flag", False),
                        entry.get("branch_fix", ""), entry.get("folder", ""), entry.get("silent", False),
                        entry["label"], entry.get("technical", False))
        if reason.folder and reason.folder not in _FOLDER_KEYS:
            raise file.error(f"{code}.folder", f"{reason.folder!r} is none of {', '.join(sorted(_FOLDER_KEYS))}")
        result[code] = reason
    return result

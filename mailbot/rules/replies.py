"""rules/replies.toml: the subjects of the bot's replies and held notes."""

from __future__ import annotations

from dataclasses import dataclass, field

from mailbot.model import Action
from mailbot.rules.base import RulesFile, table_of


@dataclass(frozen=True)
class ReplyRules:
    subject_prefix: dict[Action, str]  # accept, remand, hold → the tag a reply's subject starts with
    held_note_prefix: str
    no_subject: str  # a held note's subject when the original has none
    note_fields: dict[str, str] = field(default_factory=dict)  # form field → its name in a held note
    note_flags: tuple[str, str] = ("有", "無")  # how a held note writes a check box: yes, no


def build_reply_rules(file: RulesFile) -> ReplyRules:
    prefixes = table_of(file, file.data, "subject_prefix")
    note = table_of(file, file.data, "held_note")
    for key in ("accept", "remand", "hold", "held_note"):
        if not isinstance(prefixes.get(key), str) or not prefixes[key]:
            raise file.error(f"subject_prefix.{key}", "expected a non-empty string")
    if not isinstance(note.get("no_subject"), str):
        raise file.error("held_note.no_subject", "expected a string")
    fields = note.get("fields", {})
    flags = note.get("flags", {})
    if not isinstance(fields, dict) or not all(isinstance(v, str) and v for v in fields.values()):
        raise file.error("held_note.fields", "expected a table of names")
    if not all(isinstance(flags.get(k), str) and flags[k] for k in ("yes", "no")):
        raise file.error("held_note.flags", "expected texts for yes and no")
    return ReplyRules({a: prefixes[a.value] for a in (Action.ACCEPT, Action.REMAND, Action.HOLD)},
                      prefixes["held_note"], note["no_subject"], dict(fields), (flags["yes"], flags["no"]))

"""rules/digest.toml: what the supervisors' digest counts and how it names it."""

from __future__ import annotations

from dataclasses import dataclass, field

from mailbot.model import Action
from mailbot.rules.base import RulesFile

DECISIONS = tuple(a.value for a in Action)  # accept, remand, hold, defer, ignore: the column order


@dataclass(frozen=True)
class DigestRules:
    kind_labels: dict[str, str]  # kind value → Japanese name, in display order
    decision_labels: dict[str, str]  # action value → Japanese name
    catch_up_days: int
    unis_max_age: int  # business days
    unregistered_termination_after: int  # business days
    unregistered_termination_lookback: int  # calendar days
    held_max_age: int  # business days
    credential_warning_days: int  # days before the OAuth certificate / secret expires
    left_out: frozenset[str] = frozenset()  # reason codes of mails that are no request received
    counted_apart: frozenset[str] = frozenset()  # reason codes of automatic mail: counted apart
    staff_labels: dict[str, str] = field(default_factory=dict)  # staff outcome → name
    send_state_labels: dict[str, str] = field(default_factory=dict)  # reply send state → name
    event_labels: dict[str, str] = field(default_factory=dict)  # audit event → name


def build_digest_rules(file: RulesFile, kind_labels: dict[str, str]) -> DigestRules:
    data = file.data
    decisions = data.get("decisions", {})
    days = ("catch_up_days", "unis_max_age", "unregistered_termination_after", "unregistered_termination_lookback",
            "held_max_age", "credential_warning_days")
    for key in days:
        value = data.get(key)
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            raise file.error(key, f"expected a number of days, got {value!r}")
    return DigestRules(kind_labels=kind_labels,
                       decision_labels={a: decisions.get(a, a) for a in DECISIONS},
                       left_out=frozenset(data.get("left_out", [])),
                       counted_apart=frozenset(data.get("counted_apart", [])),
                       staff_labels=_texts(file, "staff"), send_state_labels=_texts(file, "send_states"),
                       event_labels=_texts(file, "events"), **{key: data[key] for key in days})


def _texts(file: RulesFile, key: str) -> dict[str, str]:
    table = file.data.get(key, {})
    if not isinstance(table, dict) or not all(isinstance(v, str) and v for v in table.values()):
        raise file.error(key, "expected a table of texts")
    return dict(table)

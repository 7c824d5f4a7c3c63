"""rules/senders.toml: how automatic mail and failed sender authentication are recognised."""

from __future__ import annotations

from dataclasses import dataclass

from mailbot.rules.base import RulesFile
from mailbot.text import normalise


@dataclass(frozen=True)
class SenderRules:
    headers: dict[str, tuple[str, ...]]
    system_senders: tuple[str, ...]
    content_types: tuple[str, ...]
    subject_words: tuple[str, ...]
    authserv_ids: tuple[str, ...]  # empty: the topmost Authentication-Results only
    auth_fail: dict[str, tuple[str, ...]]  # method → failing results


def build_sender_rules(file: RulesFile) -> SenderRules:
    rules = file.data
    data, auth = rules["auto_reply"], rules.get("authentication", {})
    return SenderRules(
        headers={k.lower(): tuple(v.lower() for v in vs) for k, vs in data["headers"].items()},
        system_senders=tuple(s.lower() for s in data["system_senders"]),
        content_types=tuple(c.lower() for c in data["content_types"]),
        subject_words=tuple(normalise(w).casefold() for w in data["subject_words"]),
        authserv_ids=tuple(a.lower() for a in auth.get("authserv_ids", [])),
        auth_fail={m.lower(): tuple(r.lower() for r in rs) for m, rs in auth.get("fail", {}).items()},
    )

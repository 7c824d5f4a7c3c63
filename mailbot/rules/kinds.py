"""rules/kinds.toml: the subject words of each kind (DOMAIN.md §2) and the kinds' Japanese names."""

from __future__ import annotations

import re
from dataclasses import dataclass

from mailbot.model import Kind
from mailbot.rules.base import RulesFile
from mailbot.text import normalise


@dataclass(frozen=True)
class SubjectRules:
    kind_pattern: re.Pattern[str]  # service, kind word, then optional code
    word_kinds: dict[str, Kind]
    registration_words: tuple[str, ...]
    prefix_pattern: re.Pattern[str]  # one leading reply/forward/bot prefix
    bot_prefixes: tuple[str, ...]
    code_digits: int


def build_subject_rules(file: RulesFile) -> SubjectRules:
    data = file.data
    service = r"\s*".join(re.escape(w) for w in normalise(data["service"]).split())
    word_kinds = {normalise(w): Kind(kind) for kind, words in data["kinds"].items() for w in words}
    # Longest first, so 解約キャンセル依頼 wins over キャンセル….
    words = "|".join(re.escape(w) for w in sorted(word_kinds, key=len, reverse=True))
    kind_pattern = re.compile(
        rf"{service}\s*(?P<word>{words})\s*(?:_\s*)?(?P<code>[0-9A-Za-z-]*)", re.IGNORECASE
    )
    reply = "|".join(re.escape(normalise(p)) for p in data["reply_prefixes"])
    bot = tuple(normalise(p) for p in data["bot_prefixes"])
    # "Re:", "Re[2]:", "Re(2):", "【至急】" and the bot's own tags, at the front.
    prefix_pattern = re.compile(rf"^\s*(?:(?:{reply})\s*(?:[\[(]\d+[\])])?\s*:|【[^】]{{0,10}}】)\s*", re.IGNORECASE)
    return SubjectRules(
        kind_pattern=kind_pattern,
        word_kinds=word_kinds,
        registration_words=tuple(normalise(w) for w in data["registration_notice"]["words"]),
        prefix_pattern=prefix_pattern,
        bot_prefixes=bot,
        code_digits=int(data["code_digits"]),
    )


def build_kind_labels(file: RulesFile) -> dict[str, str]:
    """Kind value → its Japanese name (rules/kinds.toml [labels]), in the order written there;
    kinds it leaves out come last, under their value."""
    written = file.data.get("labels", {})
    labels = {k.value: written.get(k.value, k.value) for k in Kind}
    return {k: labels[k] for k in written if k in labels} | labels

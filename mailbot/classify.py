"""Subject → kind and customer code (DOMAIN.md §2), from `rules/kinds.toml`."""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from mailbot.model import Classification, Kind
from mailbot.rules import load_toml
from mailbot.text import JIS_TO_CP932 as JIS_CP932  # noqa: F401 - re-exported
from mailbot.text import drop_invisible, normalise


@dataclass(frozen=True)
class SubjectRules:
    kind_pattern: re.Pattern[str]  # service, kind word, then optional code
    word_kinds: dict[str, Kind]
    registration_words: tuple[str, ...]
    prefix_pattern: re.Pattern[str]  # one leading reply/forward/bot prefix
    bot_prefixes: tuple[str, ...]
    code_digits: int


@cache
def subject_rules(rules_dir: Path) -> SubjectRules:
    data = load_toml(rules_dir, "kinds.toml")
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


def strip_prefixes(subject: str, rules: SubjectRules) -> tuple[str, bool]:
    """The subject without leading Re:/Fw:/【…】 prefixes, and whether a bot prefix was among them."""
    text = normalise(subject)
    resubmission = False
    while m := rules.prefix_pattern.match(text):
        if not m.group(0):
            break
        resubmission |= any(p in m.group(0) for p in rules.bot_prefixes)
        text = text[m.end():]
    return text, resubmission


def as_written(subject: str, stripped: str) -> str:
    """The end of `subject` as the branch wrote it (full-width kept) that normalises to `stripped`:
    replies carry the branch's own subject.  Invisible characters are left out."""
    subject = drop_invisible(subject)
    if len(subject) > 500:  # a pathological subject: quadratic search not worth it
        return stripped
    for i in range(len(subject) + 1):
        if normalise(subject[i:]) == stripped:
            return re.sub(r"[ \t\r\n]+", " ", subject[i:]).strip(" \t\r\n\u3000")
    return stripped


def classify(subject: str, rules_dir: Path) -> Classification:
    rules = subject_rules(rules_dir)
    stripped, resubmission = strip_prefixes(subject, rules)
    written = as_written(subject, stripped)
    match = rules.kind_pattern.search(stripped)
    if match:
        kind = rules.word_kinds[normalise(match.group("word"))]
        return Classification(kind, match.group("code") or None, written, resubmission)
    if any(w in stripped for w in rules.registration_words):
        return Classification(Kind.REGISTRATION_NOTICE, None, written, resubmission)
    return Classification(Kind.UNKNOWN, None, written, resubmission)


def code_is_valid(code: str, rules_dir: Path) -> bool:
    return code.isascii() and code.isdigit() and len(code) == subject_rules(rules_dir).code_digits

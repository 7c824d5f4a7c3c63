"""Subject → kind and customer code (DOMAIN.md §2), from `rules/kinds.toml`."""

from __future__ import annotations

import re
from pathlib import Path

from mailbot.model import Classification, Kind
from mailbot.rules import load_rules
from mailbot.rules.kinds import SubjectRules
from mailbot.text import JIS_TO_CP932 as JIS_CP932  # noqa: F401 - re-exported
from mailbot.text import drop_invisible, normalise


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
    rules = load_rules(rules_dir).subjects
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
    return code.isascii() and code.isdigit() and len(code) == load_rules(rules_dir).subjects.code_digits

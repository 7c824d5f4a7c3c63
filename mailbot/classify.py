"""Subject → kind and customer code (DOMAIN.md §2), from `rules/kinds.toml`."""

from __future__ import annotations

import re
from dataclasses import replace
from pathlib import Path

from mailbot.model import Action, Classification, Kind, Mail
from mailbot.rules import load_rules
from mailbot.rules.kinds import SubjectRules
from mailbot.text import JIS_TO_CP932 as JIS_CP932  # noqa: F401 - re-exported
from mailbot.text import drop_invisible, normalise


def strip_prefixes(subject: str, rules: SubjectRules) -> tuple[str, str | None]:
    """The subject without leading Re:/Fw:/【…】 prefixes, and the outermost of the bot's own
    prefixes among them (the latest of the bot's mails this one answers), None without one."""
    text = normalise(subject)
    bot_prefix = None
    while m := rules.prefix_pattern.match(text):
        if not m.group(0):
            break
        if bot_prefix is None:
            bot_prefix = next((p for p in rules.bot_prefixes if p in m.group(0)), None)
        text = text[m.end():]
    return text, bot_prefix


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
    """Subject → kind and code, and which of the bot's mails it answers by the subject's prefix."""
    rules = load_rules(rules_dir).subjects
    stripped, bot_prefix = strip_prefixes(subject, rules)
    answers = _prefix_actions(rules_dir).get(bot_prefix) if bot_prefix else None
    resubmission = answers is Action.REMAND
    written = as_written(subject, stripped)
    match = rules.kind_pattern.search(stripped)
    if match:
        kind = rules.word_kinds[normalise(match.group("word"))]
        return Classification(kind, match.group("code") or None, written, resubmission, answers)
    if any(w in stripped for w in rules.registration_words):
        # Its code is optional: the digits of a customer code anywhere in the subject (DOMAIN.md §4).
        code = re.search(rf"(?<![0-9]){'[0-9]' * rules.code_digits}(?![0-9])", stripped)
        return Classification(Kind.REGISTRATION_NOTICE, code.group(0) if code else None, written, resubmission,
                              answers)
    return Classification(Kind.UNKNOWN, None, written, resubmission, answers)


def _prefix_actions(rules_dir: Path) -> dict[str, Action]:
    """The bot's subject tags (rules/replies.toml), normalised as subjects are → the decision."""
    return {normalise(tag): action for action, tag in load_rules(rules_dir).replies.subject_prefix.items()}


# The Message-IDs of the bot's replies: derived from the mail answered and the decision, so that a
# retry never makes a second, different reply, and an answer to one says which decision it answers.
_BOT_REPLY_ID = re.compile(r"<(accept|remand|hold)\.[0-9a-f]{32}\.mailbot@[^<>\s]+>")


def bot_reply_id(sha256: str, action: Action, sender: str) -> str:
    """The Message-ID of the bot's `action` reply to the mail whose SHA-256 is `sha256`."""
    return f"<{action.value}.{sha256[:32]}.mailbot@{sender.rpartition('@')[2]}>"


def threaded_answer(mail: Mail) -> Action | None:
    """The bot's decision a mail answers by its threading headers: In-Reply-To first, then
    References from the newest; None when they name none of the bot's replies."""
    for message_id in (mail.in_reply_to, *reversed(mail.references)):
        m = _BOT_REPLY_ID.fullmatch(message_id or "")
        if m:
            return Action(m.group(1))
    return None


def classify_mail(mail: Mail, rules_dir: Path) -> Classification:
    """The subject's kind and code; which of the bot's mails it answers by its threading headers
    first (a branch may edit the subject), else by the subject's prefix (DOMAIN.md §2)."""
    classification = classify(mail.subject, rules_dir)
    threaded = threaded_answer(mail)
    if threaded is None:
        return classification
    return replace(classification, answers=threaded, resubmission=threaded is Action.REMAND)


def code_is_valid(code: str, rules_dir: Path) -> bool:
    return code.isascii() and code.isdigit() and len(code) == load_rules(rules_dir).subjects.code_digits

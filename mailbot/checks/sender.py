"""Who may be answered: RFC 3834 automatic mail (AUTO_REPLY) and outsiders (SENDER_NOT_ALLOWED)."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from pathlib import Path

from mailbot.checks import CheckContext
from mailbot.classify import normalise
from mailbot.model import Address, Finding, Request
from mailbot.rules import load_toml


@dataclass(frozen=True)
class SenderRules:
    headers: dict[str, tuple[str, ...]]
    system_senders: tuple[str, ...]
    content_types: tuple[str, ...]
    subject_words: tuple[str, ...]


@cache
def sender_rules(rules_dir: Path) -> SenderRules:
    data = load_toml(rules_dir, "senders.toml")["auto_reply"]
    return SenderRules(
        headers={k.lower(): tuple(v.lower() for v in vs) for k, vs in data["headers"].items()},
        system_senders=tuple(s.lower() for s in data["system_senders"]),
        content_types=tuple(c.lower() for c in data["content_types"]),
        subject_words=tuple(normalise(w).casefold() for w in data["subject_words"]),
    )


def _automatic_because(request: Request, ctx: CheckContext) -> str | None:
    mail = request.mail
    rules = sender_rules(ctx.rules_dir)
    for name, wanted in rules.headers.items():
        for value in mail.headers.get(name, ()):
            token = value.split(";")[0].strip().lower()
            # RFC 3834: "Auto-Submitted: no" is an ordinary mail.
            if name == "auto-submitted" and token == "no":
                continue
            if "*" in wanted or token in wanted:
                return f"{name}: {value.strip()[:80]}"
    return_path = mail.headers.get("return-path", ())
    if return_path and return_path[0].strip() in ("<>", ""):
        return "Return-Path: <> (a bounce)"
    if mail.content_type in rules.content_types:
        return f"Content-Type: {mail.content_type}"
    if mail.sender and mail.sender.addr.partition("@")[0] in rules.system_senders:
        return f"From: {mail.sender.addr}"
    if mail.sender and mail.sender.addr in ctx.own_addresses:
        return "mailbot's own mail"
    subject = normalise(mail.subject).casefold()
    for word in rules.subject_words:
        if subject.startswith(word) or f"{word}:" in subject:
            return f"Subject: {mail.subject[:80]}"
    return None


def auto_reply(request: Request, ctx: CheckContext) -> list[Finding]:
    """Automatic mail (RFC 3834) is never answered: out-of-office, bounces, lists, our own mail."""
    reason = _automatic_because(request, ctx)
    return [Finding("AUTO_REPLY", reason, stop=True)] if reason else []


def is_internal(address: Address | str, domains: tuple[str, ...]) -> bool:
    addr = address.addr if isinstance(address, Address) else address.lower()
    local, at, domain = addr.rpartition("@")
    if not (local and at and domain):
        return False
    return any(domain == d or domain.endswith("." + d) for d in domains)


def sender_allowed(request: Request, ctx: CheckContext) -> list[Finding]:
    """Only internal senders are answered; any outsider in From or Reply-To means hold, no reply."""
    mail = request.mail
    if mail.sender is None or not mail.from_addrs:
        return [Finding("SENDER_NOT_ALLOWED", "no usable From address", stop=True)]
    for label, addresses in (("From", mail.from_addrs), ("Reply-To", mail.reply_to)):
        for address in addresses:
            if not is_internal(address, ctx.internal_domains):
                return [Finding("SENDER_NOT_ALLOWED", f"{label}: {address.addr or '(unparseable)'}", stop=True)]
    return []

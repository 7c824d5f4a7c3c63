"""Who may be answered: the copies of the bot's own replies (OWN_COPY), delivery reports about
them (REPLY_BOUNCED: the branch never got its answer), RFC 3834 automatic mail (AUTO_REPLY), and
outsiders or senders the receiving server could not authenticate (SENDER_NOT_ALLOWED)."""

from __future__ import annotations

import re

from mailbot.checks.base import CheckContext
from mailbot.model import Address, Finding, Request
from mailbot.rules import load_rules
from mailbot.rules.senders import SenderRules
from mailbot.text import normalise

_RESULT = re.compile(r"(?:^|;)\s*([a-z0-9_-]+)\s*=\s*([a-z]+)", re.IGNORECASE)


def failed_authentication(mail_headers: dict[str, tuple[str, ...]], rules: SenderRules) -> str | None:
    """The first failed method of the receiving server's Authentication-Results, e.g. "spf=fail"."""
    values = mail_headers.get("authentication-results", ())
    if rules.authserv_ids:
        values = tuple(v for v in values if v.split(";", 1)[0].strip().lower() in rules.authserv_ids)
    else:
        values = values[:1]
    results: dict[str, set[str]] = {}
    for value in values:
        # Comments in parentheses may hold anything (e.g. "(sender IP is 1.2.3.4)"): drop them.
        for method, result in _RESULT.findall(re.sub(r"\([^()]*\)", "", value)):
            results.setdefault(method.lower(), set()).add(result.lower())
    for method, failing in rules.auth_fail.items():
        got = results.get(method, set())
        bad = got & set(failing)
        if bad and "pass" not in got:
            return f"{method}={sorted(bad)[0]}"
    return None


def _automatic_because(request: Request, ctx: CheckContext) -> str | None:
    mail = request.mail
    rules = load_rules(ctx.rules_dir).senders
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


def own_copy(request: Request, ctx: CheckContext) -> list[Finding]:
    """The copy of a reply the bot sent ([smtp] copy_to_mailbox): from its own address, with the
    Message-ID of one of its replies.  Filed to the sent folder, never answered."""
    mail = request.mail
    if (ctx.history is None or mail.sender is None or mail.sender.addr not in ctx.own_addresses
            or not mail.message_id or not ctx.history.made_reply(mail.message_id)):
        return []
    return [Finding("OWN_COPY", mail.message_id, stop=True)]


# RFC 3464 / 6522: a delivery report carries the returned message (or its headers) and a status part.
_RETURNED = frozenset({"message/rfc822", "text/rfc822-headers", "message/rfc822-headers", "message/global",
                       "message/global-headers"})
_STATUS_PART = frozenset({"message/delivery-status", "message/global-delivery-status"})
_MESSAGE_ID = re.compile(rb"^Message-ID:[ \t]*(<[^>\r\n]+>)", re.IGNORECASE | re.MULTILINE)
_ACTION = re.compile(rb"^Action:[ \t]*([a-z]+)", re.IGNORECASE | re.MULTILINE)
_STATUS = re.compile(rb"^Status:[ \t]*([245]\.[0-9]{1,3}\.[0-9]{1,3})", re.IGNORECASE | re.MULTILINE)


def reply_bounced(request: Request, ctx: CheckContext) -> list[Finding]:
    """A delivery report saying one of the bot's replies could not be delivered (a delay notice
    is not a failure): the finding's detail is that reply's Message-ID and the report's status."""
    mail = request.mail
    if ctx.history is None or not any(a.content_type in _RETURNED for a in mail.attachments):
        return []
    status = b"".join(a.data for a in mail.attachments if a.content_type in _STATUS_PART)
    actions = {a.lower() for a in _ACTION.findall(status)}
    if actions and b"failed" not in actions:
        return []
    for part in mail.attachments:
        if part.content_type not in _RETURNED:
            continue
        head = part.data.replace(b"\r\n", b"\n").split(b"\n\n", 1)[0]
        for found in _MESSAGE_ID.findall(head):
            message_id = found.decode("ascii", "replace")
            if ctx.history.made_reply(message_id):
                code = _STATUS.search(status)
                return [Finding("REPLY_BOUNCED", f"{message_id} {code[1].decode() if code else ''}".strip(), stop=True)]
    return []


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
        return [Finding("SENDER_NOT_ALLOWED", "差出人のアドレスがありません", stop=True)]
    for label, addresses in (("差出人", mail.from_addrs), ("返信先（Reply-To）", mail.reply_to)):
        for address in addresses:
            if not is_internal(address, ctx.internal_domains):
                return [Finding("SENDER_NOT_ALLOWED", f"{label}が社外 {address.addr or '（読み取れないアドレス）'}",
                                stop=True)]
    failed = failed_authentication(mail.headers, load_rules(ctx.rules_dir).senders)
    if failed:
        return [Finding("SENDER_NOT_ALLOWED", f"受信サーバーでの送信元の認証に失敗（{failed}）", stop=True)]
    return []

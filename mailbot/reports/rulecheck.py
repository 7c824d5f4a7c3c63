"""Rules and templates checked before they are used (`mailbot rules check`, and `poll` / `run` at
start): every file of rules/ loads (`path:line: problem`), every template parses, and every
template the bot renders is rendered with sample data — each reply of each kind and decision (with
every reason of a remand), the held note, the digest (text and HTML) and the ledger share's mail —
so that a template naming a value that does not exist fails here, with its file and line, and not
in front of a branch.
"""

from __future__ import annotations

import tempfile
import traceback
from dataclasses import replace
from datetime import date, datetime, time
from email.message import EmailMessage
from pathlib import Path

from mailbot.config import Settings, embedded_default
from mailbot.decide import decide
from mailbot.message import parse_mail
from mailbot.model import Action, Classification, Finding, Kind, MailRef
from mailbot.record.ledger import LedgerLine
from mailbot.record.store import MailRow, Store
from mailbot.reference.calendar import business_calendar
from mailbot.reply.note import EarlierMail, NoteFacts, build_note, returned_notice
from mailbot.reply.render import ReplySettings, build_reply, next_steps
from mailbot.reports.digest import ExtractStatus, collect, render_html, render_text
from mailbot.reports.ledger import Share, compose, share_files
from mailbot.rules import RulesError, check_templates, load_rules
from mailbot.text import TOKYO

SAMPLE_CODE = "988776654"
# What each kind's acceptance may be told (the cases of a cancellation, a termination's UNIS state).
_FIELDS: dict[Kind, list[dict[str, object]]] = {
    Kind.CANCELLATION: [{"cancellation": {"case": case}} for case in
                        ("open_order", "unis_order", "remanded_only", "unknown")],
    Kind.TERMINATION: [{"form": {"termination_date": "2026-12-31"}, "termination": {"unis_scheduled": s}}
                       for s in (True, False)],
}


def check_rules(rules_dir: Path, templates_dir: Path) -> list[str]:
    """Problems, one line each (`file:line: problem`); none: the rules and templates can be used."""
    try:
        rules = load_rules(rules_dir)
        check_templates(templates_dir)
    except RulesError as e:
        return [str(e)]
    with tempfile.TemporaryDirectory(prefix="mailbot-rulecheck-") as tmp:
        settings = replace(embedded_default(Path(tmp)), rules_dir=Path(rules_dir), templates_dir=Path(templates_dir))
        problems: list[str] = []
        for what, render in _renderings(settings, rules, Path(tmp)):
            try:
                render()
            except Exception as e:  # noqa: BLE001 - every failure is a problem to report
                problems.append(_where(e, templates_dir, what))
        return list(dict.fromkeys(problems))


def _where(e: Exception, templates_dir: Path, what: str) -> str:
    """`templates/x.j2:LINE: what failed` from the template's frame of the traceback."""
    frames = [f for f in traceback.extract_tb(e.__traceback__) if f.filename.endswith(".j2")]
    lineno = getattr(e, "lineno", None)
    name = getattr(e, "filename", None) or getattr(e, "name", None)
    if frames:
        name, lineno = frames[-1].filename, frames[-1].lineno
    path = Path(name) if name else Path(templates_dir)
    if name and not path.is_absolute():
        path = Path(templates_dir) / name
    return f"{path}:{lineno or 1}: {type(e).__name__}: {e} ({what})"


def _sample_mail(subject: str):
    msg = EmailMessage()
    msg["From"] = "鈴木 一郎 <i-suzuki@usen.co.jp>"
    msg["To"] = "usen_spot@usen.co.jp"
    msg["Cc"] = "shibuya-mgr@usen.co.jp"
    msg["Subject"] = subject
    msg["Date"] = "Fri, 20 Nov 2026 10:00:00 +0900"
    msg["Message-ID"] = "<rulecheck.1@usen.co.jp>"
    msg.set_content(f"お疲れ様です。\n\n顧客CD : {SAMPLE_CODE}\n店舗名 : カフェ・ド・ソレイユ 渋谷店\n", charset="utf-8")
    return parse_mail(msg.as_bytes())


def _renderings(settings: Settings, rules, tmp: Path):
    """(what, a call rendering it) for every template the bot renders."""
    reply_settings = ReplySettings(sender=settings.reply_from, internal_domains=settings.internal_domains,
                                   acknowledge_held=True, templates_dir=settings.templates_dir,
                                   rules_dir=settings.rules_dir, sender_name=settings.reply_from_name)
    received = datetime(2026, 11, 20, 10, 0, tzinfo=TOKYO)
    remand_findings = tuple(Finding(code, "（確認用）") for code, r in rules.reasons.items()
                            if r.action is Action.REMAND and not r.silent)
    hold_findings = tuple(Finding(code, "（確認用）") for code, r in rules.reasons.items()
                          if r.action is Action.HOLD and not r.silent)
    for kind in Kind:
        word = next((w for w, k in rules.subjects.word_kinds.items() if k is kind),
                    rules.kind_labels.get(kind.value, kind.value))
        mail = _sample_mail(f"USEN SPOT {word}_{SAMPLE_CODE}")
        classification = Classification(kind, SAMPLE_CODE, mail.subject)
        decisions = [decide(list(findings), settings.rules_dir) for findings in ((), remand_findings, hold_findings)]
        for decision in decisions:
            for fields in _FIELDS.get(kind, [{}]):
                def render(decision=decision, fields=fields, mail=mail, classification=classification):
                    build_reply(mail, "0" * 64, classification, decision, reply_settings,
                                next_steps(classification, decision, received, settings.rules_dir, fields))
                yield f"{decision.action.value} reply of {kind.value}", render

    def note() -> None:
        msg = EmailMessage()
        msg["From"] = "i-suzuki@usen.co.jp"
        msg["Subject"] = "USEN SPOT 器材発注依頼_988776654"
        msg.set_content("本文", charset="utf-8")
        facts = NoteFacts("0" * 64, Kind.EQUIPMENT_ORDER.value, SAMPLE_CODE,
                          [(code, "（確認用）") for code in rules.reasons], received, received,
                          (EarlierMail(received, Kind.EQUIPMENT_ORDER.value, "remand", ("CODE_MISSING",), "件名"),),
                          fields={"body": {"customer_code": SAMPLE_CODE}, "form": {"plus": True, "ssid": "SSID"}},
                          previews={"accept": {"subject": "【受付】", "to": "a@usen.co.jp", "body": "本文"},
                                    "remand": None})
        build_note(msg.as_bytes(), facts, settings)
    yield "held note", note

    def returned() -> None:
        row = MailRow(1, "0" * 64, None, MailRef("保留/受付", 1, 1), None, "decided", 0, "hold", None, None, [], None,
                      None, subject="USEN SPOT 器材発注依頼_988776654", sender="someone@gmail.com",
                      sender_name="外部 太郎")
        for why in ("outside", "automatic", "unreadable"):
            returned_notice(row, why, "accepted", 0, settings)
    yield "held note returned", returned

    def digest() -> None:
        store = Store(tmp / "rulecheck.sqlite3")
        try:
            data = collect(store, date(2026, 11, 20), datetime.combine(date(2026, 11, 20), time(18, 30), tzinfo=TOKYO),
                           rules_dir=settings.rules_dir, calendar=business_calendar(settings.rules_dir),
                           extract=ExtractStatus(configured=True), digest_time=settings.digest_time)
            render_text(data, settings.templates_dir)
            render_html(data, settings.templates_dir, "cid:chart")
        finally:
            store.close()
    yield "digest", digest

    def share() -> None:
        line = LedgerLine("mail:1", "new", date(2026, 11, 20), SAMPLE_CODE, "株式会社ソレイユ", "カフェ・ド・ソレイユ 渋谷店",
                          "渋谷支店", 1, 0, False, corporate=True)
        s = Share(date(2026, 11, 20), [line], False)
        compose(s, share_files(s, rules.ledger), settings, received)
    yield "ledger share", share

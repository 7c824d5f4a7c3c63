"""Deciding the recorded mails again with other rules, before they go live (`mailbot replay`).

    result = replay(settings, store, since=date(2026, 11, 1), reference=reference)
    result.changes     # only the mails whose decision or reasons would change

Each mail is decided from its bytes as received (kept compressed in the state database), at its
original received time, against the history as recorded and the UNIS extract in use now (named in
the result: the extract of that day is not kept).  Nothing is sent, filed or recorded.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime

from mailbot.config import Settings
from mailbot.pipeline import evaluate
from mailbot.record.store import MailRow, Store
from mailbot.reference.data import ReferenceData
from mailbot.rules import load_rules
from mailbot.text import TOKYO


@dataclass(frozen=True)
class Change:
    mail_id: int
    received: datetime
    code: str | None
    kind_label: str
    before: str  # decision labels
    after: str
    reasons_before: list[str]  # reason labels
    reasons_after: list[str]
    before_action: str  # decision values (JSON, exit status)
    after_action: str
    codes_before: list[str]
    codes_after: list[str]


@dataclass(frozen=True)
class ReplayResult:
    changes: list[Change]
    replayed: int
    without_bytes: int  # mails taken in before their bytes were kept
    extract: str  # which UNIS extract the checks used


def bot_decision(store: Store, row: MailRow) -> str | None:
    """What the bot decided (a staff decision later replaced a hold in the row: the bot's is the
    last "decided …" event)."""
    decided = [event for _, event, _ in store.events(row.id) if event.startswith("decided ")]
    return decided[-1].split(" ", 1)[1] if decided else row.action


def replay(settings: Settings, store: Store, *, since: date | None = None,
           reference: ReferenceData | None = None) -> ReplayResult:
    rules = load_rules(settings.rules_dir)
    labels, decisions, reasons = rules.kind_labels, rules.digest.decision_labels, rules.reasons

    def names(codes: list[str]) -> list[str]:
        return [reasons[c].label if c in reasons else c for c in dict.fromkeys(codes)]

    changes, replayed, missing = [], 0, 0
    rows = [MailRow.from_sql(r) for r in store.decided_between(since.isoformat() if since else "", "9999")]
    for row in sorted(rows, key=lambda r: (r.received or r.internaldate or datetime.min.replace(tzinfo=TOKYO), r.id)):
        data = store.original(row.id)
        if data is None:
            missing += 1
            continue
        when = (row.received or row.internaldate or datetime.now(TOKYO)).astimezone(TOKYO)
        evaluation = evaluate(data, row.internaldate, settings, now=when, reference=reference, history=store)
        replayed += 1
        before = bot_decision(store, row)
        after = evaluation.decision.action.value
        codes_after = evaluation.decision.reasons
        if before == after and set(row.reasons) == set(codes_after):
            continue
        kind = evaluation.classification.kind.value
        changes.append(Change(row.id, when, row.code or evaluation.classification.code, labels.get(kind, kind),
                              decisions.get(before, before or "-"), decisions.get(after, after),
                              names(row.reasons), names(codes_after), before or "", after, list(row.reasons),
                              list(codes_after)))
    extract = reference.extract if reference is not None else None
    info = extract.info if extract is not None else None
    named = (f"{reference.unis_extract}（抽出日時 {info.extracted_at:%Y-%m-%d %H:%M}）"
             if info is not None and info.extracted_at else "なし（UNISとの突合は行っていません）")
    return ReplayResult(changes, replayed, missing, named)

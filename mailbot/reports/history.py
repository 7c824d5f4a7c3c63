"""Everything mailbot did for a customer code (`mailbot history CODE`): its mails, oldest first,
each with its decision, events and replies."""

from __future__ import annotations

import json
from pathlib import Path

from mailbot.record.store import Store
from mailbot.reports.summary import StateReader, local_time


def code_history(store: Store, code: str, rules_dir: Path) -> list[dict[str, object]]:
    """Every mail with this customer code, oldest first, with its events and replies."""
    q = StateReader(store, rules_dir)
    rows = store.mail_rows_with_code(code)
    out = []
    for r in sorted(rows, key=lambda r: (local_time(r["received"] or r["first_seen"]), r["id"])):
        item = q.item(r)
        events = [{"at": local_time(e["at"]), "event": e["event"], "event_label": q.event_label(e["event"]),
                   "detail": e["detail"] or ""}
                  for e in store.event_rows(r["id"])]
        replies = [{"message_id": p["message_id"], "action": p["action"],
                    "action_label": q.rules.decision_labels.get(p["action"], p["action"]), "state": p["state"],
                    "state_label": q.rules.send_state_labels.get(p["state"], p["state"]),
                    "attempts": p["attempts"], "sent_at": local_time(p["sent_at"]), "last_error": p["last_error"],
                    "recipients": json.loads(p["recipients"])}
                   for p in store.reply_rows(r["id"])]
        out.append({"id": item.id, "received": item.received, "kind": item.kind, "kind_label": item.kind_label,
                    "subject": item.subject, "sender": item.sender, "branch": item.branch,
                    "decision": item.action, "decision_label": item.decision_label, "reasons": item.reasons,
                    "reason_labels": item.reason_labels,
                    "state": r["state"], "events": events, "replies": replies})
    return out

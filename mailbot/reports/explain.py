"""Why mailbot decided what it did, for staff, in Japanese (`mailbot explain MESSAGE-ID|CODE`):
each reason with its evidence (what was found, compared, computed), the decision its rule
prescribes, who decided in the end, the version of the rules and templates in force and the UNIS
extract consulted, and the replies."""

from __future__ import annotations

import json
from email.parser import BytesParser
from email.policy import default

from mailbot.record.store import MailRow, Store
from mailbot.reports.replay import bot_decision
from mailbot.reports.summary import local_time
from mailbot.rules import load_rules
from mailbot.text import japanese_time


def find_mails(store: Store, key: str) -> list[MailRow]:
    """The mails of a customer code, or the mail of a Message-ID (with or without <>)."""
    key = key.strip()
    if key.isdigit():
        return [MailRow.from_sql(r) for r in store.mail_rows_with_code(key)]
    return [MailRow.from_sql(r) for r in store.mail_rows_with_message_id(key if key.startswith("<") else f"<{key}>")]


def explain(store: Store, rows: list[MailRow], rules_dir) -> list[str]:
    rules = load_rules(rules_dir)
    reasons, kinds, decisions = rules.reasons, rules.kind_labels, rules.digest.decision_labels
    staff = rules.digest.staff_labels
    out: list[str] = []
    for row in rows:
        r = store.mail_row(row.id)
        when = local_time(r["received"] or r["first_seen"])
        out.append(f"■ メール No.{row.id}　{japanese_time(when)}　{kinds.get(row.kind or 'unknown', row.kind or '不明')}"
                   + (f"　顧客コード {row.code}" if row.code else ""))
        out.append(f"　件名：{row.subject or '（件名なし）'}")
        out.append(f"　差出人：{row.sender or '（不明）'}" + (f"（{r['branch']}）" if r["branch"] else ""))
        bot = bot_decision(store, row)
        line = f"　mailbotの判定：{decisions.get(bot, bot or '未判定')}"
        item = store.held_item(row.sha256)
        if item is not None and item[1].outcome and item[1].closed_at:
            outcome = item[1].outcome
            line += f"　→ 担当者の判断：{staff.get(outcome, outcome)}（{japanese_time(item[1].closed_at)}）"
        out.append(line)
        findings = row.findings or [(c, "") for c in row.reasons]
        if findings:
            out.append("　理由と根拠：")
        for i, (code, detail) in enumerate(findings, 1):
            reason = reasons.get(code)
            if reason is None:
                out.append(f"　　{i}. （現在の規則にない理由です）")
                continue
            out.append(f"　　{i}. {reason.label} — {reason.title}")
            if detail and not reason.technical:
                out.append(f"　　　根拠：{detail}")
            out.append(f"　　　規則：この理由の判定は「{decisions.get(reason.action.value, reason.action.value)}」"
                       "（規則ファイル reasons.toml）")
        if not findings and bot:
            out.append("　理由と根拠：問題は見つかりませんでした。")
        out.append(f"　判定に使った規則の版：{r['rules_version'] or '（記録なし）'}"
                   f"　UNIS抽出データの版：{r['data_version'] or '（使用なし）'}")
        for p in store.reply_rows(row.id):
            subject = str(BytesParser(policy=default).parsebytes(p["data"], headersonly=True)["Subject"] or "")
            state = rules.digest.send_state_labels.get(p["state"], p["state"])
            sent = local_time(p["sent_at"])
            out.append(f"　返信：{decisions.get(p['action'], p['action'])}　{state}"
                       + (f"（{japanese_time(sent)}）" if sent else "")
                       + f"　宛先 {'、'.join(json.loads(p['recipients']))}" + (f"　件名 {subject}" if subject else ""))
        out.append("")
    return out

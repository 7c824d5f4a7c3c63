"""The naive contender of bench/run.py: the script a person would write for the shared mailbox.

    python bench/naive.py --imap HOST:PORT --user U --password P --smtp HOST:PORT
                          [--unis EXTRACT.csv] [--pdf-password uspot] [--folder Processed]

One mail at a time, with the standard library and the two PDF libraries:
  imaplib UID FETCH of the mail → `email` parse → every PDF attachment opened with pikepdf and the
  password, saved decrypted, its text extracted with pdfplumber → the customer code of the subject
  looked up in the UNIS extract (read once with `csv`) → a templated reply over a new smtplib
  connection (to internal senders, not to auto-replies or bounces) → UID MOVE to one folder.
No state, no checks beyond that, no retries.  Prints one JSON line: mails, pdfs, replies, seconds.
"""

from __future__ import annotations

import argparse
import csv
import email
import email.policy
import imaplib
import io
import json
import re
import smtplib
import time
import unicodedata
from email.message import EmailMessage
from email.utils import parseaddr

import pdfplumber
import pikepdf

TEMPLATE = """{name} 様

いつもお世話になっております。USEN SPOT 事務局です。
以下のメールを受け付けました。

件名: {subject}
顧客CD: {code}（UNIS: {status}）

内容を確認のうえ、担当者よりご連絡いたします。
"""


def read_pdf_text(data: bytes, password: str) -> str:
    with pikepdf.open(io.BytesIO(data), password=password) as pdf:
        plain = io.BytesIO()
        pdf.save(plain)
    plain.seek(0)
    with pdfplumber.open(plain) as doc:
        return "\n".join(page.extract_text() or "" for page in doc.pages)


def load_unis(path: str | None) -> dict[str, list[dict[str, str]]]:
    lines: dict[str, list[dict[str, str]]] = {}
    if not path:
        return lines
    with open(path, encoding="cp932", newline="") as f:
        for row in csv.DictReader(f):
            lines.setdefault(row["顧客CD"], []).append(row)
    return lines


def should_reply(msg) -> bool:
    sender = parseaddr(str(msg.get("From", "")))[1].lower()
    if not sender.endswith("@usen.co.jp") or "mailer-daemon" in sender:
        return False
    return str(msg.get("Auto-Submitted", "no")).lower() == "no" and msg.get_content_type() != "multipart/report"


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--imap", required=True, help="HOST:PORT")
    p.add_argument("--user", required=True)
    p.add_argument("--password", required=True)
    p.add_argument("--smtp", required=True, help="HOST:PORT")
    p.add_argument("--unis")
    p.add_argument("--pdf-password", default="uspot")
    p.add_argument("--folder", default="Processed")
    p.add_argument("--from", dest="sender", default="usen_spot@usen.co.jp")
    args = p.parse_args()
    t0 = time.perf_counter()
    imap_host, imap_port = args.imap.rsplit(":", 1)
    smtp_host, smtp_port = args.smtp.rsplit(":", 1)

    unis = load_unis(args.unis)
    imap = imaplib.IMAP4(imap_host, int(imap_port))
    imap.login(args.user, args.password)
    imap.create(args.folder)  # "NO" when it exists already: fine
    imap.select("INBOX")
    _, data = imap.uid("SEARCH", None, "ALL")
    uids = data[0].split()
    pdfs = replies = errors = 0
    for uid in uids:
        try:
            _, data = imap.uid("FETCH", uid, "(BODY.PEEK[])")
            msg = email.message_from_bytes(data[0][1], policy=email.policy.default)
            subject = str(msg.get("Subject", ""))
            texts = []
            for part in msg.walk():
                name = part.get_filename() or ""
                if part.get_content_type() == "application/pdf" or name.lower().endswith(".pdf"):
                    try:
                        texts.append(read_pdf_text(part.get_payload(decode=True), args.pdf_password))
                        pdfs += 1
                    except Exception:  # noqa: BLE001 - wrong password, broken file: a person would look
                        errors += 1
            found = re.search(r"\d{8,9}", unicodedata.normalize("NFKC", subject + " " + " ".join(texts)))
            code = found.group() if found else "-"
            status = unis[code][0]["契約状態"] if code in unis else "該当なし"
            if should_reply(msg):
                name, addr = parseaddr(str(msg["From"]))
                reply = EmailMessage()
                reply["From"] = args.sender
                reply["To"] = addr
                reply["Subject"] = "Re: " + subject
                if msg["Message-ID"]:
                    reply["In-Reply-To"] = msg["Message-ID"]
                    reply["References"] = msg["Message-ID"]
                reply.set_content(TEMPLATE.format(name=name or addr, subject=subject, code=code, status=status))
                with smtplib.SMTP(smtp_host, int(smtp_port)) as smtp:
                    smtp.send_message(reply)
                replies += 1
        except Exception:  # noqa: BLE001 - keep going with the next mail
            errors += 1
        imap.uid("MOVE", uid, args.folder)
    imap.logout()
    print(json.dumps({"mails": len(uids), "pdfs": pdfs, "replies": replies, "errors": errors,
                      "seconds": time.perf_counter() - t0}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

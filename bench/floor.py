"""The floor of bench/run.py: the least any program must do with the backlog, and nothing more.

    python bench/floor.py --imap HOST:PORT --user U --password P [--pdf-password uspot]

One batched UID FETCH of every mail in the INBOX (imapclient, one connection, read-only), then, in
this process and one after the other, every PDF attachment opened with pikepdf and the password,
saved decrypted and its text extracted with pdfplumber (bench/naive.py's read_pdf_text).
Nothing is decided, sent, moved or written.  Prints one JSON line: mails, pdfs, fetch_s, pdf_s,
seconds.
"""

from __future__ import annotations

import argparse
import email
import json
import time
from email.policy import compat32

from imapclient import IMAPClient
from naive import read_pdf_text  # the same PDF work as the naive script, by construction


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--imap", required=True, help="HOST:PORT")
    p.add_argument("--user", required=True)
    p.add_argument("--password", required=True)
    p.add_argument("--pdf-password", default="uspot")
    args = p.parse_args()
    t0 = time.perf_counter()
    host, port = args.imap.rsplit(":", 1)
    client = IMAPClient(host, port=int(port), ssl=False, timeout=60)
    client.login(args.user, args.password)
    client.select_folder("INBOX", readonly=True)
    uids = client.search(["ALL"])
    response = client.fetch(uids, ["BODY.PEEK[]"]) if uids else {}
    client.logout()
    fetched = time.perf_counter()
    pdfs = chars = errors = 0
    for uid in uids:
        msg = email.message_from_bytes(response[uid][b"BODY[]"], policy=compat32)
        for part in msg.walk():
            name = part.get_filename() or ""
            if part.get_content_type() == "application/pdf" or name.lower().endswith(".pdf"):
                try:
                    chars += len(read_pdf_text(part.get_payload(decode=True), args.pdf_password))
                    pdfs += 1
                except Exception:  # noqa: BLE001 - counted, not read
                    errors += 1
    end = time.perf_counter()
    print(json.dumps({"mails": len(uids), "pdfs": pdfs, "errors": errors, "chars": chars,
                      "fetch_s": fetched - t0, "pdf_s": end - fetched, "seconds": end - t0}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""A realistic backlog of N distinct branch mails, built from the sample morning of `demo.samples`.

    backlog = make_backlog(300, mix=MIX_MORNING, seed=1)
    backlog.mails            # [BacklogMail], in the order to append them
    backlog.write_reference(dir)   # → (UNIS extract path, branch directory path)

Each mail is a copy of one sample mail (Outlook ISO-2022-JP / Shift_JIS, Outlook for Mac and
iPhone UTF-8, Gmail, the out-of-office reply, the bounce …) made into a mail of its own:

- a new Message-ID of the sample's shape;
- a customer code of its own (9 digits; 8 for the 8-digit sample) wherever the sample names its
  code: the subject (full-width digits where the sample writes them so), the body's 顧客CD in
  the plain and HTML parts, the attachment's file name;
- for equipment orders and terminations the attached form regenerated for that code
  (`demo.forms`, the sample's layout and values, AES-256, password `uspot`;
  one PDF per code);
- the UNIS extract carries, for each new code, the lines the sample's own code has in
  `sample_extract` (so the checks find the order exactly as they find the sample's).

Each mail carries its expected outcome: the sample's decision (accept / remand / hold / ignore,
as `tests/test_loop.py` EXPECTED) and whether it is due a reply (accept and remand are; a held
mail only with `acknowledge_held`, and never the outsider's; ignored mail never).

`mix` weighs sample names or the groups of `GROUPS` (`orders`: equipment orders with a one-page
encrypted form, `terminations`: terminations with an encrypted form, `body`: everything without
a form).  Counts follow the weights exactly (largest remainder), the samples within a group take
turns, and the order of the mails is shuffled with `seed`: the same arguments give the same bytes
(AES salts aside: a form's bytes are stable within a process).

Times: the mails keep the sample morning's Date and Received (Friday 2026-11-20, 06:54–10:23
Asia/Tokyo); `BacklogMail.received` is the delivery time to APPEND them with as INTERNALDATE, so
the decisions do not depend on the day the test runs.
"""

from __future__ import annotations

import base64
import csv
import email
import functools
import hashlib
import html
import io
import quopri
import random
import re
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from email.message import Message
from email.policy import compat32
from email.utils import parsedate_to_datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from demo import samples
from demo.forms import application_pdf, sample_application, termination_pdf
from demo.samples import (
    _FORMS,  # the values of each sample order's form (private: the samples' source of truth)
    _TERMINATIONS,
    PDF_PASSWORD,
    SAMPLES,
    sample_directory,
    sample_extract,
    sample_mails,
)
from mailbot.forms.model import TerminationForm

TOKYO = ZoneInfo("Asia/Tokyo")
NOW = datetime(2026, 11, 20, 10, 30, tzinfo=TOKYO)  # the sample morning (tests/test_loop.py NOW)

# What each sample comes to (tests/test_loop.py EXPECTED).
DECISIONS: dict[str, str] = {
    "auto_reply": "ignore", "bounce": "ignore", "order_shibuya": "accept", "cancellation": "accept",
    "order_fullwidth": "accept", "contract_change": "accept", "order_forwarded": "accept",
    "outside_gmail": "hold", "order_multi_units": "accept", "termination": "accept",
    "order_no_code": "remand", "router_not_removed": "accept", "order_resubmission": "accept",
    "relocation": "accept", "order_8digit": "remand", "registration_notice": "remand",
    "termination_withdrawal": "accept", "order_no_pdf": "remand", "unknown_subject": "hold",
}
SILENT = {"outside_gmail"}  # held as SENDER_NOT_ALLOWED: never acknowledged, even with acknowledge_held

GROUPS: dict[str, tuple[str, ...]] = {
    # equipment orders carrying a one-page encrypted application form (5 accepted, 2 remanded)
    "orders": ("order_shibuya", "order_fullwidth", "order_forwarded", "order_multi_units",
               "order_resubmission", "order_no_code", "order_8digit"),
    # terminations carrying the encrypted termination form
    "terminations": ("termination",),
    # everything without a form: the other kinds, the order that forgot its form, machine mail,
    # the outsider and the question no kind matches
    "body": ("cancellation", "contract_change", "router_not_removed", "relocation", "registration_notice",
             "termination_withdrawal", "order_no_pdf", "auto_reply", "bounce", "outside_gmail",
             "unknown_subject"),
}
assert sorted(n for g in GROUPS.values() for n in g) == sorted(SAMPLES) == sorted(DECISIONS)

MIX_MORNING: dict[str, float] = {name: 1 for name in SAMPLES}  # every sample equally often
MIX_BENCH: dict[str, float] = {"orders": 60, "terminations": 10, "body": 30}  # issue 7's backlog
MIX_LIGHT: dict[str, float] = {"orders": 5, "terminations": 5, "body": 90}  # mostly no PDF to read

# The code each sample's body and form carry (the subject's, or the body's where the subject has none).
_BASE_CODES = {**{name: s.code for name, s in SAMPLES.items() if s.code},
               "auto_reply": "912345678", "order_no_code": "954320018", "registration_notice": "955443322"}
_CODECS = {"iso-2022-jp": "iso-2022-jp", "shift_jis": "cp932", "utf-8": "utf-8", "us-ascii": "ascii"}
_WIDE = str.maketrans("0123456789", "０１２３４５６７８９")


@dataclass(frozen=True)
class BacklogMail:
    index: int  # position in the backlog (append order)
    sample: str  # the sample it is a copy of
    code: str | None  # its customer code (None: the sample names none)
    message_id: str  # "<…>", as in its header
    data: bytes  # RFC 5322, CRLF
    received: datetime  # delivery time: APPEND it with this INTERNALDATE
    decision: str  # accept | remand | hold | ignore
    replied: bool  # due exactly one reply

    @property
    def role(self) -> str:
        """Where it ends up: "processed" (accepted, remanded), "held" (its original in the held
        originals folder, a note carrying it in the held folder) or "ignored"."""
        return {"accept": "processed", "remand": "processed", "hold": "held", "ignore": "ignored"}[self.decision]


@dataclass(frozen=True)
class Backlog:
    mails: tuple[BacklogMail, ...]
    extract: bytes  # the UNIS extract (CP932 CSV): the sample extract plus the lines of every new code
    directory: bytes  # the branch directory (the sample one)

    def __len__(self) -> int:
        return len(self.mails)

    def write_reference(self, directory: Path) -> tuple[Path, Path]:
        """Write the UNIS extract and the branch directory; returns their paths."""
        directory.mkdir(parents=True, exist_ok=True)
        extract, branches = directory / "usen_spot_orders.csv", directory / "branches.csv"
        extract.write_bytes(self.extract)
        branches.write_bytes(self.directory)
        return extract, branches

    def counts(self) -> Counter:
        return Counter(m.decision for m in self.mails)

    def by_message_id(self) -> dict[str, BacklogMail]:
        return {m.message_id: m for m in self.mails}


def make_backlog(n: int, *, mix: Mapping[str, float] = MIX_MORNING, seed: int = 0, now: datetime = NOW,
                 acknowledge_held: bool = False, producer: str | None = "reportlab",
                 start: int = 0) -> Backlog:
    """`n` distinct mails mixed as `mix` says (sample or group names → weights).

    producer: the form producer of the regenerated forms ("reportlab" ~35 ms a form; None keeps
    each sample's, fpdf2's embedded fonts cost ~300 ms a form).  start: the first index; it enters
    the Message-IDs and (when not 0) the draw of the codes, so that backlogs made with different
    starts are told apart."""
    rng = random.Random(f"mailbot-backlog|{seed}" + (f"|{start}" if start else ""))
    names = _allocate(n, mix)
    rng.shuffle(names)
    base = _samples(now)
    taken = {c for c in _BASE_CODES.values()}
    extract_header, extract_rows = _extract(now)
    mails, extra_rows = [], []
    for i, name in enumerate(names, start=start):
        code = _new_code(rng, taken, len(_BASE_CODES[name])) if name in _BASE_CODES else None
        data = _vary(name, base[name][0], code, f"{seed}|{i}", now, producer)
        message_id = " ".join(email.message_from_bytes(data, policy=compat32)["Message-ID"].split())
        decision = DECISIONS[name]
        replied = decision in ("accept", "remand") or (decision == "hold" and acknowledge_held and name not in SILENT)
        mails.append(BacklogMail(i, name, code, message_id, data, base[name][1], decision, replied))
        if code:
            extra_rows += [{**r, "顧客CD": code} for r in extract_rows if r["顧客CD"] == _BASE_CODES[name]]
    assert len({m.message_id for m in mails}) == len(mails) == len({hashlib.sha256(m.data).digest() for m in mails})
    return Backlog(tuple(mails), _write_extract(extract_header, extract_rows + extra_rows), sample_directory())


# ---- composition -------------------------------------------------------------------------------


def _allocate(n: int, mix: Mapping[str, float]) -> list[str]:
    """Sample names, `n` in all, in the proportions of `mix` (largest remainder); within a group
    the samples take turns."""
    total = sum(mix.values())
    if n < 0 or total <= 0 or any(w < 0 for w in mix.values()):
        raise ValueError(f"bad backlog size or mix: {n}, {mix}")
    shares = {k: n * w / total for k, w in mix.items()}
    counts = {k: int(s) for k, s in shares.items()}
    for k in sorted(shares, key=lambda k: counts[k] - shares[k])[: n - sum(counts.values())]:
        counts[k] += 1
    names: list[str] = []
    for key, count in counts.items():
        members = GROUPS.get(key) or ((key,) if key in SAMPLES else None)
        if members is None:
            raise ValueError(f"unknown sample or group {key!r}; groups: {sorted(GROUPS)}")
        names += [members[j % len(members)] for j in range(count)]
    return names


def _new_code(rng: random.Random, taken: set[str], digits: int) -> str:
    while True:
        code = "9" + str(rng.randrange(10 ** (digits - 1))).zfill(digits - 1)
        if code not in taken:
            taken.add(code)
            return code


@functools.cache
def _samples(now: datetime) -> dict[str, tuple[bytes, datetime]]:
    """name → (bytes, delivery time).  Placeholder forms: every form is regenerated anyway."""
    placeholder = b"%PDF-1.4\n%placeholder\n"
    out = {}
    for name, data in sample_mails(now, application_pdf=lambda code: placeholder,
                                   termination_pdf=lambda code: placeholder):
        top = email.message_from_bytes(data, policy=compat32)["Received"]
        out[name] = (data, parsedate_to_datetime(" ".join(top.rpartition(";")[2].split())))
    return out


# ---- the UNIS extract --------------------------------------------------------------------------


@functools.cache
def _extract(now: datetime) -> tuple[list[str], list[dict[str, str]]]:
    reader = csv.reader(io.StringIO(sample_extract(now).decode("cp932"), newline=""))
    header = next(reader)
    return header, [dict(zip(header, row, strict=True)) for row in reader]


def _write_extract(header: list[str], rows: list[dict[str, str]]) -> bytes:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\r\n")
    writer.writerow(header)
    for row in rows:
        writer.writerow([row[h] for h in header])
    return buf.getvalue().encode("cp932")


# ---- forms -------------------------------------------------------------------------------------


@functools.lru_cache(maxsize=4096)
def application_form(base_code: str, code: str, producer: str | None = "reportlab") -> bytes:
    """The application form of the sample order `base_code` (its layout and values) for `code`."""
    layout, own_producer, values = _FORMS[base_code]
    return application_pdf(sample_application(code, **values), layout=layout, producer=producer or own_producer,
                           encryption="aes256", password=PDF_PASSWORD)


@functools.lru_cache(maxsize=4096)
def termination_form(base_code: str, code: str, end: date, producer: str | None = "reportlab") -> bytes:
    layout, own_producer, shop, reason = _TERMINATIONS[base_code]
    form = TerminationForm(customer_code=code, termination_date=end, shop_name=shop or None, reason=reason or None)
    return termination_pdf(form, layout=layout, producer=producer or own_producer, encryption="aes256",
                           password=PDF_PASSWORD)


def _month_end(d: date, months_ahead: int) -> date:
    y, m = divmod(d.month - 1 + months_ahead, 12)
    first_after = date(d.year + y + (m + 1) // 12, (m + 1) % 12 + 1, 1)
    return first_after - timedelta(days=1)


# ---- making a sample into a mail of its own ----------------------------------------------------


def _encoded_words(text: str, label: str) -> str:
    """RFC 2047 B-encoded words as the mail client writes them (each word self-contained)."""
    return samples.encoded_words(text, label, _CODECS[label.lower()])


def _edit_texts(msg: Message, pairs: list[tuple[str, str]]) -> None:
    """Replace text in every text part (plain and HTML), in its charset and transfer encoding."""
    for part in msg.walk():
        if part.get_content_maintype() != "text" or part.get_filename() or part.is_multipart():
            continue
        codec = _CODECS.get((part.get_content_charset() or "us-ascii").lower())
        if codec is None:
            continue
        raw = part.get_payload(decode=True)
        text = raw.decode(codec).replace("\r\n", "\n")
        edited = text
        for old, new in pairs:
            edited = edited.replace(old, new)
            if part.get_content_subtype() == "html":
                edited = edited.replace(html.escape(old), html.escape(new))
        if edited != text:
            set_text(part, edited, codec)


def set_text(part: Message, text: str, codec: str) -> None:
    """Put `text` into a text part in the part's own charset codec and transfer encoding."""
    cte = (part["Content-Transfer-Encoding"] or "7bit").lower()
    if cte == "base64":
        part.set_payload(base64.encodebytes(text.replace("\n", "\r\n").encode(codec)).decode("ascii"))
    elif cte == "quoted-printable":
        part.set_payload(quopri.encodestring(text.encode(codec)).decode("ascii"))
    else:
        part.set_payload(text.encode(codec).decode("ascii"))


def _replace_header(msg: Message, name: str, value: str) -> None:
    if name in msg:
        msg.replace_header(name, value)
    else:
        msg[name] = value


def _new_message_id(old: str, key: str) -> str:
    """The sample's Message-ID with its hex digits drawn anew (same shape, another mail)."""
    local, _, domain = old.strip().strip("<>").rpartition("@")
    digits = iter(hashlib.sha256(f"mailbot-backlog-id|{key}".encode()).hexdigest() * 4)
    local = re.sub(r"[0-9A-Fa-f]", lambda m: next(digits) if not m.group().isupper() else next(digits).upper(),
                   local)
    return f"<{local}@{domain}>"


def _vary(name: str, data: bytes, code: str | None, key: str, now: datetime, producer: str | None) -> bytes:
    msg = email.message_from_bytes(data, policy=compat32)
    _replace_header(msg, "Message-ID", _new_message_id(msg["Message-ID"], key))
    if code is None:
        return msg.as_bytes(policy=compat32.clone(linesep="\r\n"))
    old = _BASE_CODES[name]
    plain = next((p for p in msg.walk() if p.get_content_type() == "text/plain"), msg)
    label = plain.get_param("charset") or "utf-8"
    subject = SAMPLES[name].subject.replace(old, code).replace(old.translate(_WIDE), code.translate(_WIDE))
    if subject != SAMPLES[name].subject:
        _replace_header(msg, "Subject", _encoded_words(subject, label))
    _edit_texts(msg, [(old, code), (old.translate(_WIDE), code.translate(_WIDE))])
    for part in msg.walk():
        filename = part.get_filename()
        if not filename:
            continue
        filename = filename.replace(old, code)
        if name in GROUPS["terminations"]:
            pdf = termination_form(old, code, _month_end(now.date(), 1), producer)
        else:
            pdf = application_form(old, code, producer)
        ctype = part.get_content_type()
        del part["Content-Type"], part["Content-Disposition"]
        part["Content-Type"] = f'{ctype};\r\n\tname="{_encoded_words(filename, label)}"'
        part.add_header("Content-Disposition", "attachment", filename=("utf-8", "", filename))
        part.set_payload(base64.encodebytes(pdf).decode("ascii"))
    return msg.as_bytes(policy=compat32.clone(linesep="\r\n"))

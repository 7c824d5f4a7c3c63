"""The extract stage: the body items (the `label : value` lines a branch writes into the mail,
DOMAIN.md §2) and the required form, read from its PDF in a sandbox."""

from __future__ import annotations

import re
from dataclasses import replace
from pathlib import Path

from mailbot.config import Settings
from mailbot.forms.model import PdfReading
from mailbot.forms.read import form_from_reading
from mailbot.forms.sandbox import PdfLimits, read_pdf
from mailbot.model import Attachment, Kind, Request
from mailbot.rules import load_rules
from mailbot.text import normalise

# Where the quoted or forwarded original starts: nothing below belongs to this request.
_ORIGINAL_STARTS = re.compile(
    r"^\s*(-{2,}\s*(Original Message|Forwarded message|転送メッセージ|元のメッセージ)"
    r"|_{10,}\s*$|差出人\s*[:：]|From:\s.*\bSent:|On .* wrote:$|.*(さん|様)は書きました\s*[:：]$)",
    re.IGNORECASE,
)


def split_original(body: str) -> tuple[str, str]:
    """(what the sender wrote, the quoted or forwarded original below it, without quote marks)."""
    own, original = [], []
    for line in body.splitlines():
        quoted = line.lstrip().startswith((">", "＞"))
        if original or quoted or _ORIGINAL_STARTS.match(line):
            original.append(line.lstrip().lstrip(">＞ ") if quoted else line)
        else:
            own.append(line)
    return "\n".join(own), "\n".join(original)


def body_items(body: str, rules_dir: Path) -> dict[str, str]:
    """Item name → value of the labelled lines (first one wins).

    The sender's own text comes first; items it lacks are taken from the forwarded or quoted
    original, since a branch forwarding a request or answering a remand leaves them there.
    """
    rules = load_rules(rules_dir).requests
    items: dict[str, str] = {}
    for text in split_original(body):
        for line in text.splitlines():
            m = rules.label_pattern.match(normalise(line))
            if m and m.group("value").strip():
                items.setdefault(rules.label_names[_label_group(m)], m.group("value").strip())
    return items


def _label_group(m: re.Match[str]) -> str:
    return next(k for k, v in m.groupdict().items() if v is not None and k != "value")


# Which attachment is the form: the checks ask the same (checks/attachments.py).
_PDF_TYPES = {"application/pdf", "application/x-pdf", "application/acrobat"}
# Containers a mail client wraps around everything: not a form sent in the wrong format.
_NOT_A_DOCUMENT = {"text/plain", "text/html", "message/rfc822", "application/ms-tnef"}
_SIGNATURE_IMAGE_BYTES = 20_000


def is_pdf(attachment: Attachment) -> bool:
    if attachment.data.lstrip()[:5] == b"%PDF-":
        return True
    return attachment.content_type in _PDF_TYPES or attachment.filename.lower().endswith(".pdf")


def documents(request: Request) -> list[Attachment]:
    """Attachments that could be the form (not inline logos or forwarded mails)."""
    return [a for a in request.mail.attachments
            if a.data and a.content_type not in _NOT_A_DOCUMENT and not _is_signature_image(a)]


def _is_signature_image(attachment: Attachment) -> bool:
    # Outlook attaches signature logos as small inline images; a photographed form is larger.
    return attachment.content_type.startswith("image/") and len(attachment.data) < _SIGNATURE_IMAGE_BYTES



def required_form(request: Request, rules_dir: Path) -> tuple[Attachment, str] | None:
    """The PDF attachment holding the form this kind of request requires, and the form's name."""
    form_name = load_rules(rules_dir).requests.form.get(request.classification.kind.value)
    if not form_name:
        return None
    pdf = next((a for a in documents(request) if is_pdf(a)), None)
    return (pdf, form_name) if pdf is not None else None


def read_form(data: bytes, form_name: str, settings: Settings) -> PdfReading:
    """A form read from its PDF in a sandbox, within the configured limits."""
    f = settings.forms
    return read_pdf(data, form_name, password=f.password, rules_dir=settings.rules_dir,
                    limits=PdfLimits(max_bytes=f.max_bytes, max_pages=f.max_pages, timeout_s=f.timeout_s,
                                     memory_mb=f.memory_mb))


# A line of 3 or more rule characters: the signature (or a quote block) starts.
_SEPARATOR = re.compile(r"^\s*[-―ー━─=＝_＿*＊~～・]{3,}\s*$")


def free_text(body: str, subject: str, rules_dir: Path) -> str:
    """The branch's own sentences about the request (DOMAIN.md §4 free text): not greetings,
    the mail's framing, a self-introduction, the signature, quoted or forwarded mail, the
    subject repeated or label lines; "" when there are none."""
    rules = load_rules(rules_dir).requests
    ft = rules.free_text
    own, _quoted = split_original(body)
    subject_key = normalise(subject)
    kept = []
    for raw in own.splitlines():
        if _SEPARATOR.match(raw) or normalise(raw).startswith(ft.signature_starts):
            break  # the signature: nothing below is about the request
        line = normalise(raw)
        if (len(line.replace(" ", "")) < ft.min_chars or line == subject_key or rules.label_pattern.match(line)
                or any(g in line for g in ft.greetings) or line.endswith(ft.framing)
                or ft.self_introduction.search(line)):
            continue
        kept.append(raw.strip())
    return " ".join(kept)


def is_child_unit_order(request: Request, rules_dir: Path) -> bool:
    """An equipment order whose own text mentions a child unit and that carries no form (a new
    installation 親機1台・子機2台 comes with its form and stays a normal order)."""
    if request.classification.kind is not Kind.EQUIPMENT_ORDER or any(is_pdf(a) for a in documents(request)):
        return False
    own = normalise(split_original(request.mail.body)[0])
    return any(w in own for w in load_rules(rules_dir).requests.child_units.mention)


def stated_child_unit_purpose(request: Request, rules_dir: Path) -> str | None:
    """What a child-unit order is for, as its own text says: "addition" (追加/増設) or
    "exchange" (交換), whichever it names first; None when it says neither."""
    rules = load_rules(rules_dir).requests.child_units
    own = normalise(split_original(request.mail.body)[0])
    found = [(own.find(w), purpose) for purpose, words in (("addition", rules.addition), ("exchange", rules.exchange))
             for w in words if w in own]
    return min(found)[1] if found else None


def stated_units(request: Request, rules_dir: Path) -> dict[str, int] | None:
    """The routers the request is for, where it says: 親N台、子M台 in the body or the form's 備考
    (an order), 子機N台 in its own text (a child-unit order: no parent); None when not said."""
    requests = load_rules(rules_dir).requests
    if request.child_unit_order:
        found = requests.child_units.count.search(normalise(split_original(request.mail.body)[0]))
        return {"parents": 0, "children": int(found["children"])} if found else None
    remarks = getattr(request.form, "remarks", None) or ""
    pattern = load_rules(rules_dir).agreement.units_given
    found = pattern.search(normalise(request.mail.body)) or pattern.search(normalise(remarks))
    return {"parents": int(found["parents"]), "children": int(found["children"])} if found else None


def extract(request: Request, rules_dir: Path, reading: PdfReading | None) -> Request:
    """The request with its body items (an item the kind lets the branch write as free text
    taken from its own sentences), and its required form as `reading` read it."""
    items = body_items(request.mail.body, rules_dir)
    kind = request.classification.kind.value
    for item, kinds in load_rules(rules_dir).requests.free_text.items.items():
        if kind in kinds and not items.get(item):
            text = free_text(request.mail.body, request.classification.subject, rules_dir)
            if text:
                items[item] = text
    request = replace(request, body_items=items, child_unit_order=is_child_unit_order(request, rules_dir))
    found = required_form(request, rules_dir)
    if found is None or reading is None:
        return request
    return replace(request, form_reading=reading, form=form_from_reading(reading, found[1]))

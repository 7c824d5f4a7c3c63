"""Which reader reads which form, in the sandbox child (`read_form`), and a reading back to the
form's dataclass in the parent (`form_from_reading`), by the form's name in rules/requests.toml."""

from __future__ import annotations

from pathlib import Path

from mailbot.forms.application import application_form, read_application
from mailbot.forms.layout import layout_text
from mailbot.forms.model import ApplicationForm, PdfReading, PdfStatus, TerminationForm
from mailbot.forms.pdf import TEXT_LIMIT, PdfContent, open_pdf
from mailbot.forms.termination import read_termination, termination_form

READERS = {"application": read_application, "termination": read_termination}


def read_form(data: bytes, form: str, *, password: str, max_pages: int, rules_dir: Path) -> PdfReading:
    """Unlock and read one PDF; `form` is "application", "termination" or anything else (text
    only).  Runs in the sandbox child; exceptions are the sandbox's to turn into UNREADABLE."""
    content = open_pdf(data, password=password, max_pages=max_pages)
    if not isinstance(content, PdfContent):
        return content
    acro, layout = content.acro, content.layout
    text = layout_text(layout)
    reader = READERS.get(form)
    shape, fields = reader(acro, layout, rules_dir) if reader else (("acroform" if acro else "layout"), {})
    if shape != "acroform" and not layout.words:
        return PdfReading(PdfStatus.UNREADABLE, detail="no text layer (a scan?)", shape="scan")
    if shape == "acroform":  # the values live in the fields, not in the page text
        filled = "\n".join(f"{k}: {v}" for k, v in acro.items() if v not in (False, "", None))
        text = (text + "\n\f\n" + filled)[:TEXT_LIMIT] if text.strip() else filled[:TEXT_LIMIT]
    return PdfReading(content.status, detail=content.detail, shape=shape, fields=fields, text=text,
                      pages=content.pages)


def form_from_reading(reading: PdfReading, form_name: str) -> ApplicationForm | TerminationForm | None:
    """The fields as read, or None when the PDF could not be read (its finding says why)."""
    if reading.status not in (PdfStatus.READ, PdfStatus.NOT_ENCRYPTED):
        return None
    if form_name == "application":
        return application_form(reading)
    if form_name == "termination":
        return termination_form(reading)
    raise ValueError(f"unknown form {form_name!r} (rules/requests.toml)")

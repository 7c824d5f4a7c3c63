"""A sandbox reading → the form's dataclass, by the form's name in rules/requests.toml."""

from __future__ import annotations

from mailbot.forms.model import ApplicationForm, PdfReading, PdfStatus, TerminationForm


def form_from_reading(reading: PdfReading, form_name: str) -> ApplicationForm | TerminationForm | None:
    """The fields as read, or None when the PDF could not be read (its finding says why)."""
    if reading.status not in (PdfStatus.READ, PdfStatus.NOT_ENCRYPTED):
        return None
    if form_name == "application":
        from mailbot.forms.application import application_form

        return application_form(reading)
    if form_name == "termination":
        from mailbot.forms.termination import termination_form

        return termination_form(reading)
    raise ValueError(f"unknown form {form_name!r} (rules/requests.toml)")

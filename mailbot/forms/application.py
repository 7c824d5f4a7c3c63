"""Words and cells (or AcroForm fields) → the application form's fields (申込書), read with the
engine of layout.py by the labels of rules/forms/application.toml.

    read_application(acro, layout, rules_dir) -> (shape, fields)   in the sandbox child
    application_form(reading) -> ApplicationForm                    in the parent
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mailbot.forms.layout import extract, from_acroform, plain_fields
from mailbot.forms.model import ApplicationForm, PdfReading
from mailbot.forms.pdf import Layout
from mailbot.rules import load_rules

FORM = "application"


def read_application(acro: dict[str, object], layout: Layout, rules_dir: Path) -> tuple[str, dict[str, Any]]:
    """(shape, fields): "acroform" when the fillable fields carry values, else "layout"."""
    rules = load_rules(rules_dir).forms[FORM]
    fields = from_acroform(acro, rules) if acro else {}
    if any(v not in (None, "", [], False) for v in fields.values()):
        return "acroform", plain_fields(fields)
    printed = extract(layout, rules) if layout.words else {}
    if not printed and acro:
        return "acroform", plain_fields(fields)
    return "layout", plain_fields(printed)


def application_form(reading: PdfReading) -> ApplicationForm:
    """Rebuild the ApplicationForm from a reading's plain fields."""
    f = reading.fields or {}
    kwargs: dict[str, Any] = {}
    for name in ApplicationForm.__dataclass_fields__:
        if name not in f:
            continue
        v = f[name]
        if name == "mail_addresses":
            kwargs[name] = tuple(str(x) for x in (v if isinstance(v, list | tuple) else [v]))
        elif name in ("plus", "tourist"):
            kwargs[name] = v if isinstance(v, bool) else None
        else:
            kwargs[name] = str(v) if v is not None else None
    return ApplicationForm(**kwargs)

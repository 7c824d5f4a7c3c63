"""Words and cells (or AcroForm fields) → the termination form (解約申請書).

    read_termination(acro, layout, rules_dir) -> (shape, fields)   in the sandbox child
    termination_form(reading) -> TerminationForm                    in the parent
    parse_date(text, rules_dir) -> date | None                       「2026年11月27日」「令和8年11月27日」…

The labels and the date patterns live in rules/forms/termination.toml; the reading engine is
layout.py's.
"""

from __future__ import annotations

import unicodedata
from datetime import date
from pathlib import Path
from typing import Any

from mailbot.forms.layout import extract, from_acroform, plain_fields
from mailbot.forms.model import PdfReading, TerminationForm
from mailbot.forms.pdf import Layout
from mailbot.rules import load_rules

FORM = "termination"


def parse_date(text: str | None, rules_dir: Path) -> date | None:
    """The first date written in `text` (NFKC first: full-width digits are digits)."""
    if not text:
        return None
    dates = load_rules(rules_dir).termination_dates
    eras, patterns = dates.eras, dates.patterns
    s = unicodedata.normalize("NFKC", text)
    for pattern in patterns:
        for m in pattern.finditer(s):
            groups = m.groupdict()
            try:
                y = 1 if groups.get("y") == "元" else int(groups["y"])
                if groups.get("era"):
                    first = eras.get(groups["era"])
                    if first is None:
                        continue
                    y = first + y - 1
                return date(y, int(groups["m"]), int(groups["d"]))
            except (ValueError, KeyError, TypeError):
                continue
    return None


def read_termination(acro: dict[str, object], layout: Layout, rules_dir: Path) -> tuple[str, dict[str, Any]]:
    rules = load_rules(rules_dir).forms[FORM]
    fields = from_acroform(acro, rules) if acro else {}
    shape = "acroform"
    if not any(v not in (None, "", [], False) for v in fields.values()):
        printed = extract(layout, rules) if layout.words else {}
        if printed or not acro:
            fields, shape = printed, "layout"
    out = plain_fields(fields)
    if "termination_date" in out:
        written = str(out["termination_date"])
        d = parse_date(written, rules_dir)
        if d is not None:
            out["termination_date"] = d.isoformat()
        else:
            out.pop("termination_date")
            out["termination_date_written"] = written  # kept for staff: a date not understood
    return shape, out


def termination_form(reading: PdfReading) -> TerminationForm:
    """Rebuild the TerminationForm from a reading's plain fields."""
    f = reading.fields or {}
    d = None
    if isinstance(f.get("termination_date"), str):
        try:
            d = date.fromisoformat(f["termination_date"])
        except ValueError:
            d = None
    return TerminationForm(
        customer_code=str(f["customer_code"]) if f.get("customer_code") else None,
        termination_date=d,
        shop_name=str(f["shop_name"]) if f.get("shop_name") else None,
        reason=str(f["reason"]) if f.get("reason") else None,
    )

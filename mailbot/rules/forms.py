"""rules/forms/*.toml: the labels, options and marks the forms are read by (the layout engine of
mailbot/forms/layout.py), and how the termination form writes its dates."""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from typing import Any

from mailbot.rules.base import RulesFile
from mailbot.text import compact as key


@dataclass(frozen=True)
class Option:
    value: Any
    keys: tuple[str, ...]  # normalised spellings


@dataclass(frozen=True)
class FieldRule:
    name: str
    labels: tuple[str, ...]  # normalised
    kind: str = "text"  # text | choice | flag | mail | code | date
    section: str = ""
    options: tuple[Option, ...] = ()
    anywhere: tuple[str, ...] = ()  # normalised option spellings that count anywhere when marked
    acroform: tuple[str, ...] = ()
    domain_hint: str = ""
    strip_prefix: tuple[str, ...] = ()  # printed decorations dropped from the value: 〒
    strip_suffix: tuple[str, ...] = ()  # units dropped from the value: 円


@dataclass(frozen=True)
class FormRules:
    fields: dict[str, FieldRule]
    chosen: frozenset[str]
    unchosen: frozenset[str]
    mark_gap: frozenset[str]
    prefixes: frozenset[str]
    suffixes: frozenset[str]
    examples: tuple[str, ...]
    notes: tuple[str, ...]  # a line starting with one of these is a note: no labels on it
    headings: tuple[str, ...]  # bracket pairs: a line 「【…】」 is a heading
    sections: dict[str, tuple[str, ...]]  # section → normalised headers
    stops: tuple[str, ...]

    @property
    def marks(self) -> frozenset[str]:
        return self.chosen | self.unchosen


def _chars(value: Any) -> frozenset[str]:
    if isinstance(value, str):
        return frozenset(key(value))
    return frozenset(k for v in value for k in key(v))


# What each key of a form's rules must hold: a string, or a list of strings.
_TEXTS = {"marks.chosen": list, "marks.unchosen": list, "marks.gap": str, "label.prefixes": str,
          "label.suffixes": str, "label.example_markers": list, "label.note_markers": list,
          "label.heading_brackets": list, "stop.labels": list}
_FIELD_TEXTS = {"labels": list, "anywhere": list, "acroform": list, "strip_prefix": list, "strip_suffix": list,
                "kind": str, "section": str, "domain_hint": str}
FIELD_KINDS = ("text", "choice", "flag", "mail", "code", "date")


def _check_texts(file: RulesFile, table: dict[str, Any], shapes: dict[str, type], where: str = "") -> None:
    for dotted, shape in shapes.items():
        node: Any = table
        for part in dotted.split("."):
            node = node.get(part) if isinstance(node, dict) else None
        if node is None:
            continue
        ok = isinstance(node, str) if shape is str else isinstance(node, list) and all(isinstance(x, str) for x in node)
        if not ok:
            raise file.error(f"{where}{dotted}", "expected a string" if shape is str else "expected a list of strings")


def build_form_rules(file: RulesFile) -> FormRules:
    data = file.data
    _check_texts(file, data, _TEXTS)
    for name, f in data.get("fields", {}).items():
        if not isinstance(f, dict):
            raise file.error(f"fields.{name}", "expected a table")
        _check_texts(file, f, _FIELD_TEXTS, f"fields.{name}.")
        if f.get("kind", "text") not in FIELD_KINDS:
            raise file.error(f"fields.{name}.kind", f"{f['kind']!r} is none of {', '.join(FIELD_KINDS)}")
    with file.building():
        fields = {}
        for name, f in data.get("fields", {}).items():
            options = tuple(Option(o["value"], tuple(key(t) for t in o["texts"])) for o in f.get("options", []))
            fields[name] = FieldRule(
                name=name, labels=tuple(key(x) for x in f.get("labels", [])), kind=f.get("kind", "text"),
                section=f.get("section", ""), options=options,
                anywhere=tuple(key(x) for x in f.get("anywhere", [])),
                acroform=tuple(f.get("acroform", [])), domain_hint=key(f.get("domain_hint", "")),
                strip_prefix=tuple(f.get("strip_prefix", [])), strip_suffix=tuple(f.get("strip_suffix", [])))
        marks = data.get("marks", {})
        label = data.get("label", {})
        return FormRules(
            fields=fields,
            chosen=_chars(marks.get("chosen", [])), unchosen=_chars(marks.get("unchosen", [])),
            mark_gap=_chars(marks.get("gap", "")),
            prefixes=_chars(label.get("prefixes", "")), suffixes=_chars(label.get("suffixes", "")),
            examples=tuple(key(x) for x in label.get("example_markers", [])),
            notes=tuple(key(x) for x in label.get("note_markers", [])),
            headings=tuple(key(x) for x in label.get("heading_brackets", [])),
            sections={s: tuple(key(h) for h in v.get("headers", [])) for s, v in data.get("sections", {}).items()},
            stops=tuple(key(x) for x in data.get("stop", {}).get("labels", [])),
        )


@dataclass(frozen=True)
class DateRules:
    """How a termination form writes its 解約日: era names and date patterns."""

    eras: dict[str, int]  # era name (NFKC) → its first year
    patterns: tuple[re.Pattern[str], ...]


def build_date_rules(file: RulesFile) -> DateRules:
    data = file.data.get("dates", {})
    eras = {unicodedata.normalize("NFKC", k): int(v) for k, v in data.get("eras", {}).items()}
    return DateRules(eras, tuple(re.compile(p) for p in data.get("patterns", [])))

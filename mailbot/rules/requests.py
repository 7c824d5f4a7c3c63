"""rules/requests.toml: what each kind of request must carry, how body labels are spelled, and the
rules the form, agreement and history checks apply."""

from __future__ import annotations

import re
from dataclasses import dataclass

from mailbot.model import Kind
from mailbot.rules.base import RulesFile, number, strings, table_of
from mailbot.text import fold, normalise


@dataclass(frozen=True)
class RequestRules:
    """rules/requests.toml: what each kind must carry and how body labels are spelled."""

    attachment: dict[str, str]  # kind → "required" | "optional"
    form: dict[str, str]  # kind → form name (application, termination)
    body_items: dict[str, tuple[str, ...]]  # kind → required item names
    label_pattern: re.Pattern[str]
    label_names: dict[str, str]  # spelling group name → item name
    display: dict[str, str]  # item name → the label as the manual prints it (its first spelling)
    free_text: FreeTextRules | None = None
    child_units: ChildUnitRules | None = None


@dataclass(frozen=True)
class ChildUnitRules:
    """A child-unit order (DOMAIN.md §3a): the words that make one, and say what it is for."""

    mention: tuple[str, ...]
    addition: tuple[str, ...]
    exchange: tuple[str, ...]
    count: re.Pattern[str]  # group `children`: how many units the order is for


@dataclass(frozen=True)
class FreeTextRules:
    """How the branch's own sentences stand in for an item it did not label (DOMAIN.md §4)."""

    items: dict[str, tuple[str, ...]]  # item → the kinds where free text counts for it
    greetings: tuple[str, ...]
    framing: tuple[str, ...]  # line endings
    self_introduction: re.Pattern[str]
    signature_starts: tuple[str, ...]
    min_chars: int


def build_request_rules(file: RulesFile) -> RequestRules:
    data = file.data
    labels: dict[str, list[str]] = data["labels"]
    data = {k: v for k, v in data.items() if k in {kind.value for kind in Kind}}  # the per-kind tables
    spellings = sorted(((normalise(s), name) for name, ss in labels.items() for s in ss),
                       key=lambda item: len(item[0]), reverse=True)
    groups, names = [], {}
    for i, (spelling, name) in enumerate(spellings):
        chars = r"\s*".join(re.escape(c) for c in spelling.replace(" ", ""))
        groups.append(f"(?P<l{i}>{chars})")
        names[f"l{i}"] = name
    # A label at the start of a line (after list marks), then ":" or spaces, then the value.
    pattern = re.compile(
        rf"^[\s・●■◆※\-*]*(?:{'|'.join(groups)})\s*(?:[:=]\s*|\s+|$)(?P<value>.*)$", re.IGNORECASE
    )
    return RequestRules(
        attachment={k: v["attachment"] for k, v in data.items() if "attachment" in v},
        form={k: v["form"] for k, v in data.items() if "form" in v},
        body_items={k: tuple(v.get("body_items", ())) for k, v in data.items()},
        label_pattern=pattern,
        label_names=names,
        display={name: spellings_[0] for name, spellings_ in labels.items()},
        free_text=_free_text(file),
        child_units=_child_units(file),
    )


def _child_units(file: RulesFile) -> ChildUnitRules:
    t = table_of(file, file.data, "child_units")
    words = (tuple(normalise(w) for w in strings(file, t, key, "child_units")) for key in ("mention", "addition", "exchange"))
    return ChildUnitRules(*words, count=_pattern(file, t, "count", "child_units", ("children",)))


def _pattern(file: RulesFile, table: dict, key: str, where: str, groups: tuple[str, ...]) -> re.Pattern[str]:
    """A regular expression with these named groups, or an error naming the key."""
    try:
        pattern = re.compile(table.get(key) if isinstance(table.get(key), str) else "")
    except re.error as e:
        raise file.error(f"{where}.{key}", f"not a regular expression ({e})") from None
    missing = [g for g in groups if g not in pattern.groupindex]
    if not table.get(key) or missing:
        raise file.error(f"{where}.{key}", f"expected a regular expression with the groups {', '.join(groups)}")
    return pattern


def _free_text(file: RulesFile) -> FreeTextRules:
    t = table_of(file, file.data, "free_text")
    items = table_of(file, t, "items", "free_text")
    for item, kinds in items.items():
        strings(file, items, item, "free_text.items")
        if item not in file.data["labels"]:
            raise file.error(f"free_text.items.{item}", "not an item of [labels]")
    return FreeTextRules(
        items={item: tuple(kinds) for item, kinds in items.items()},
        greetings=tuple(normalise(g) for g in strings(file, t, "greetings", "free_text")),
        framing=tuple(normalise(f) for f in strings(file, t, "framing", "free_text")),
        self_introduction=re.compile(t["self_introduction"]),
        signature_starts=tuple(normalise(s) for s in strings(file, t, "signature_starts", "free_text")),
        min_chars=number(file, t, "min_chars", "free_text", minimum=1),
    )


@dataclass(frozen=True)
class AgreementRules:
    answers: dict[str, bool]  # folded answer → yes/no
    units_given: re.Pattern[str]
    several_words: tuple[str, ...]  # folded
    line_kinds: dict[str, str]  # folded spelling → canonical name
    line_types: dict[str, str]


def build_agreement_rules(file: RulesFile) -> AgreementRules:
    data = file.data

    def spellings(table: dict[str, list[str]]) -> dict[str, str]:
        return {fold(s): name for name, ss in table.items() for s in (name, *ss)}

    answers = {fold(a): True for a in data["answers"]["yes"]} | {fold(a): False for a in data["answers"]["no"]}
    return AgreementRules(
        answers=answers,
        units_given=_pattern(file, data["unit_count"], "given", "unit_count", ("parents", "children")),
        several_words=tuple(fold(w) for w in data["unit_count"]["several_words"]),
        line_kinds=spellings(data["line_kinds"]),
        line_types=spellings(data["line_types"]),
    )


@dataclass(frozen=True)
class ApplicationRules:
    address_domain: str
    address_local: re.Pattern[str]
    kinds_needing_type: tuple[str, ...]
    ssid_max_bytes: int


def build_application_rules(file: RulesFile) -> ApplicationRules:
    data = file.data["application_checks"]
    return ApplicationRules(
        address_domain=data["mail_address_domain"].lower(),
        address_local=re.compile(data["mail_address_local"]),
        kinds_needing_type=tuple(normalise(k) for k in data["line_kinds_needing_type"]),
        ssid_max_bytes=int(data["ssid_max_bytes"]),
    )


@dataclass(frozen=True)
class OpenRequestRules:
    business_days: int
    closed_by: dict[Kind, frozenset[Kind]]


def build_open_request_rules(file: RulesFile) -> OpenRequestRules:
    data = file.data["open_requests"]
    return OpenRequestRules(
        business_days=int(data["business_days"]),
        closed_by={Kind(k): frozenset(Kind(v) for v in vs) for k, vs in data.get("closed_by", {}).items()},
    )

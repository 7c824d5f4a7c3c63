"""rules/unis.toml: the columns of the daily UNIS extract, their formats, the 契約状態 spellings and
the item codes the checks know."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from mailbot.rules.base import RulesError, RulesFile
from mailbot.text import compact as norm_header


class Status(StrEnum):
    """契約状態, as the bot understands it (the UNIS spellings are in rules/unis.toml)."""

    ORDERED = "ordered"  # 受注
    CONFIRMED = "confirmed"  # 確定
    CANCELLED = "cancelled"  # キャンセル
    TERMINATING = "terminating"  # 解約予定
    TERMINATED = "terminated"  # 解約


FIELD_TYPES = ("text", "customer_code", "item_code", "status", "date", "datetime")

# The table's columns, in order, with the type each must have in the rules.
COLUMNS: dict[str, str] = {
    "customer_code": "customer_code", "customer_name": "text", "shop_name": "text", "branch": "text",
    "item_code": "item_code", "status": "status", "order_date": "date", "termination_date": "date",
    "serial": "text", "acquisition": "text", "line_kind": "text", "line_type": "text",
    "install_address": "text", "contract_address": "text", "billing_address": "text",
}
EXTRACTED_AT = "extracted_at"  # not stored per row: the extract's time


@dataclass(frozen=True)
class FieldSpec:
    name: str
    headers: tuple[str, ...]  # as written in the rules
    type: str
    required: bool
    empty: bool


@dataclass(frozen=True)
class UnisRules:
    fields: tuple[FieldSpec, ...]
    customer_code_digits: int
    item_code_pattern: re.Pattern[str]
    date_formats: tuple[str, ...]
    datetime_formats: tuple[str, ...]
    status: dict[str, Status]  # UNIS spelling (NFKC, no spaces) → status
    order: frozenset[Status]
    live: frozenset[Status]
    terminating: frozenset[Status]
    cancellable: frozenset[Status]
    registered_termination: frozenset[Status]
    plus: frozenset[str]
    enterprise_fgn1000: frozenset[str]
    routers: frozenset[str]
    corporate_acquisition: tuple[str, ...]  # 獲得区分 words of a corporate sales case
    digest: str  # SHA-256 of the rules file: an extract imported under other rules is imported again

    @classmethod
    def build(cls, file: RulesFile) -> UnisRules:
        data = file.data
        digest = hashlib.sha256(file.text.encode("utf-8")).hexdigest()

        def fail(key: str, what: str) -> RulesError:
            return file.error(key, what)

        def strings(table: dict[str, Any], key: str, where: str) -> tuple[str, ...]:
            v = table.get(key)
            if not isinstance(v, list) or not all(isinstance(s, str) and s for s in v):
                raise fail(f"{where}.{key}", "expected a list of non-empty strings")
            return tuple(v)

        fields = []
        for name, entry in (data.get("fields") or {}).items():
            key = f"fields.{name}"
            if name not in COLUMNS and name != EXTRACTED_AT:
                raise fail(key, f"unknown field (known: {', '.join([*COLUMNS, EXTRACTED_AT])})")
            if not isinstance(entry, dict):
                raise fail(key, "expected a table")
            ftype = entry.get("type")
            want = COLUMNS.get(name, "datetime")
            if ftype != want:
                raise fail(f"{key}.type", f"must be {want!r}, got {ftype!r}")
            required, empty = entry.get("required", False), entry.get("empty", ftype == "text")
            if not isinstance(required, bool) or not isinstance(empty, bool):
                raise fail(key, "required and empty must be true or false")
            fields.append(FieldSpec(name, strings(entry, "headers", key), ftype, required, empty))
        names = {f.name for f in fields}
        for must in ("customer_code", "item_code", "status"):
            if must not in names or not next(f for f in fields if f.name == must).required:
                raise fail(f"fields.{must}", "must be present and required")

        formats = data.get("formats") or {}
        digits = formats.get("customer_code_digits", 9)
        if not isinstance(digits, int) or isinstance(digits, bool) or digits < 1:
            raise fail("formats.customer_code_digits", "expected a positive integer")
        try:
            item_re = re.compile(formats.get("item_code_pattern", r"^[0-9A-Z]{7}$"))
        except (re.error, TypeError) as e:
            raise fail("formats.item_code_pattern", f"not a regular expression ({e})") from None

        status: dict[str, Status] = {}
        for label, value in (data.get("status") or {}).items():
            try:
                status[norm_header(label)] = Status(value)
            except ValueError:
                raise fail(f"status.{label}", f"{value!r} is not one of {', '.join(Status)}") from None
        if not status:
            raise fail("status", "no 契約状態 values")

        def group(name: str) -> frozenset[Status]:
            values = strings(data.get("status_groups") or {}, name, "status_groups")
            try:
                return frozenset(Status(v) for v in values)
            except ValueError as e:
                raise fail(f"status_groups.{name}", str(e)) from None

        items = data.get("items") or {}
        return cls(
            fields=tuple(fields), customer_code_digits=digits, item_code_pattern=item_re,
            date_formats=strings(formats, "dates", "formats"),
            datetime_formats=strings(formats, "datetimes", "formats"),
            status=status, order=group("order"), live=group("live"), terminating=group("terminating"),
            cancellable=group("cancellable"), registered_termination=group("registered_termination"),
            plus=frozenset(strings(items, "plus", "items")),
            enterprise_fgn1000=frozenset(strings(items, "enterprise_fgn1000", "items")),
            routers=frozenset(strings(items, "routers", "items")),
            corporate_acquisition=strings(data.get("acquisition") or {}, "corporate", "acquisition"),
            digest=digest,
        )

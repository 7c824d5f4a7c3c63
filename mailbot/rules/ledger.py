"""rules/ledger.toml: the 管理台帳's categories and columns, and how its daily share is written."""

from __future__ import annotations

from dataclasses import dataclass

from mailbot.model import Kind
from mailbot.rules.base import RulesFile, number, strings, table_of
from mailbot.rules.unis import Status

CATEGORIES = ("new", "child_addition", "child_exchange", "cancellation", "relocation", "termination",
              "termination_withdrawal", "router_not_removed", "forced_termination")
COLUMNS = ("category", "day", "code", "customer_name", "shop_name", "branch", "parents", "children", "plus",
           "line_kind", "line_type", "address", "mail_addresses", "ssid", "termination_date", "corporate", "note",
           "message_id")


@dataclass(frozen=True)
class LedgerRules:
    category_labels: dict[str, str]  # category → 区分, in the order of the file
    kinds: dict[Kind, str]  # accepted kind → category
    cancellation_cases_without_line: frozenset[str]
    columns: dict[str, str]  # field → header, in order
    values: dict[str, str]
    unis_statuses: dict[str, frozenset[Status]]  # category (or "default") → statuses
    child_items: frozenset[str]
    forced_business_day: int
    forced_statuses: frozenset[Status]
    file_prefix: str
    sheet: str
    corporate_sheet: str
    replacement: str
    formula_starts: tuple[str, ...]
    subject: str  # with {date}

    def statuses_for(self, category: str) -> frozenset[Status]:
        return self.unis_statuses.get(category, self.unis_statuses["default"])


def build_ledger_rules(file: RulesFile) -> LedgerRules:
    data = file.data

    def texts(key: str, known: tuple[str, ...] | None = None) -> dict[str, str]:
        t = table_of(file, data, key)
        for k, v in t.items():
            if not isinstance(v, str) or (known is not None and k not in known):
                raise file.error(f"{key}.{k}", f"expected one of {', '.join(known)} with a text" if known
                                 else "expected a text")
        return dict(t)

    def statuses(table: dict, key: str, where: str) -> frozenset[Status]:
        try:
            return frozenset(Status(v) for v in strings(file, table, key, where))
        except ValueError as e:
            raise file.error(f"{where}.{key}", f"{e} (known: {', '.join(Status)})") from None

    labels = texts("categories", CATEGORIES)
    if missing := [c for c in CATEGORIES if c not in labels]:
        raise file.error("categories", f"lacks {', '.join(missing)}")
    kinds: dict[Kind, str] = {}
    for kind, category in texts("kinds").items():
        try:
            kinds[Kind(kind)] = category
        except ValueError:
            raise file.error(f"kinds.{kind}", f"no such kind (known: {', '.join(k.value for k in Kind)})") from None
        if category not in labels:
            raise file.error(f"kinds.{kind}", f"{category!r} is no category of [categories]")
    columns = texts("columns", COLUMNS)
    values = texts("values")
    for key in ("plus", "corporate", "address_separator", "cancel_after_order", "cancel_same_day", "relocated_from"):
        if key not in values:
            raise file.error(f"values.{key}", "missing")
    unis = table_of(file, data, "unis_lines")
    unis_statuses = {k: statuses(unis, k, "unis_lines") for k in unis if k != "child_items"}
    if "default" not in unis_statuses:
        raise file.error("unis_lines.default", "missing")
    forced = table_of(file, data, "forced_termination")
    files = table_of(file, data, "files")
    mail = table_of(file, data, "mail")
    subject = mail.get("subject")
    if not isinstance(subject, str) or "{date}" not in subject:
        raise file.error("mail.subject", "expected a text with {date}")
    for key in ("prefix", "sheet", "corporate_sheet", "replacement"):
        if not isinstance(files.get(key), str) or not files[key]:
            raise file.error(f"files.{key}", "expected a non-empty text")
    return LedgerRules(
        category_labels=labels, kinds=kinds,
        cancellation_cases_without_line=frozenset(strings(file, data, "cancellation_cases_without_line", "")),
        columns=columns, values=values, unis_statuses=unis_statuses,
        child_items=frozenset(strings(file, unis, "child_items", "unis_lines")),
        forced_business_day=number(file, forced, "business_day", "forced_termination", minimum=1),
        forced_statuses=statuses(forced, "statuses", "forced_termination"),
        file_prefix=files["prefix"], sheet=files["sheet"], corporate_sheet=files["corporate_sheet"],
        replacement=files["replacement"], formula_starts=strings(file, files, "formula_starts", "files"),
        subject=subject)

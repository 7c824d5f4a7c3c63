"""The USEN SPOT 管理台帳 (DOMAIN.md §8): one line per router event an accepted request causes.

    line = ledger_line(AcceptedRequest(...), key, rules, unis, calendar)   # or None: no line
    forced_terminations(unis, rules, calendar, day, covered)               # 強制解約, seed 001 VI

A line is built from what the pipeline already knows of the request (its kind, code, the fields
read from body and form, its reasons) and, where the request does not say, from the code's UNIS
router lines ([unis_lines] of rules/ledger.toml).  The store writes it in the same commit as the
decision that causes it (`Store.record_decision`, `Store.staff_decision`).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict, dataclass, fields
from datetime import date, datetime, timedelta

from mailbot.model import Kind
from mailbot.reference.calendar import BusinessCalendar
from mailbot.reference.unis import OrderLine, UnisData
from mailbot.rules.ledger import LedgerRules


@dataclass(frozen=True)
class LedgerLine:
    """One line of the ledger; the fields are the share's columns (rules/ledger.toml [columns])."""

    key: str  # one line per event: "mail:<id>" (a request), "unis:<code>:<item>:<serial>:<解約日>" (強制解約)
    category: str  # rules/ledger.toml [categories]
    day: date  # 受付日: day N of the acceptance (of the share, for 強制解約)
    code: str  # 顧客CD
    customer_name: str = ""
    shop_name: str = ""
    branch: str = ""
    parents: int = 0  # 親機台数
    children: int = 0  # 子機台数
    plus: bool = False
    line_kind: str = ""  # 回線種別
    line_type: str = ""  # 回線タイプ
    address: str = ""  # 設置先住所 (a relocation: the new one)
    mail_addresses: tuple[str, ...] = ()  # new orders
    ssid: str = ""  # new orders
    termination_date: date | None = None  # 解約日
    corporate: bool = False  # a corporate sales case (法人営業): listed apart
    note: str = ""  # 備考
    message_id: str = ""  # the request's Message-ID

    def to_json(self) -> str:
        data = asdict(self)
        data["day"] = self.day.isoformat()
        data["termination_date"] = self.termination_date.isoformat() if self.termination_date else None
        return json.dumps(data, ensure_ascii=False)

    @classmethod
    def from_json(cls, text: str) -> LedgerLine:
        data = json.loads(text)
        known = {f.name for f in fields(cls)}
        data = {k: v for k, v in data.items() if k in known}
        data["day"] = date.fromisoformat(data["day"])
        data["termination_date"] = date.fromisoformat(data["termination_date"]) if data.get("termination_date") else None
        data["mail_addresses"] = tuple(data.get("mail_addresses") or ())
        return cls(**data)


@dataclass(frozen=True)
class AcceptedRequest:
    """What the ledger needs of an accepted request."""

    kind: Kind
    code: str | None
    fields: dict[str, object]  # as the pipeline reports them (body, form, units, child_unit, cancellation …)
    reasons: tuple[str, ...]  # the findings' codes (a staff acceptance keeps the hold's, e.g. CORPORATE_CASE)
    branch: str | None
    message_id: str | None
    accepted_at: datetime  # when it was accepted: received (bot) or the staff's decision


def _date(value: object) -> date | None:
    try:
        return date.fromisoformat(value) if isinstance(value, str) and value else None
    except ValueError:
        return None


def _text(value: object) -> str:
    return value.strip() if isinstance(value, str) else ""


def ledger_line(request: AcceptedRequest, key: str, rules: LedgerRules, unis: UnisData | None,
                calendar: BusinessCalendar) -> LedgerLine | None:
    """The line an accepted request writes; None when it changes no router (rules/ledger.toml)."""
    category = rules.kinds.get(request.kind)
    code = request.code
    if category is None or not code:
        return None
    f = request.fields
    body: dict = f.get("body") or {}  # type: ignore[assignment]
    form: dict = f.get("form") or {}  # type: ignore[assignment]
    child_unit = f.get("child_unit")
    if request.kind is Kind.EQUIPMENT_ORDER and isinstance(child_unit, dict):
        category = "child_exchange" if child_unit.get("purpose") == "exchange" else "child_addition"
    cancellation: dict = f.get("cancellation") or {}  # type: ignore[assignment]
    if category == "cancellation" and cancellation.get("case") in rules.cancellation_cases_without_line:
        return None

    lines = unis.router_lines(code, rules.statuses_for(category)) if unis is not None else []
    known = lines or (unis.lines(code) if unis is not None else [])
    first: OrderLine | None = known[0] if known else None
    units: dict = f.get("units") or {}  # type: ignore[assignment]
    if category == "new":
        parents, children = units.get("parents", 1), units.get("children", 0)
    elif category in ("child_addition", "child_exchange"):
        parents, children = 0, units.get("children", 1)
    else:
        children = sum(line.item_code in rules.child_items for line in lines)
        parents = len(lines) - children
    new = category == "new"
    values = rules.values
    note = ""
    address = _text(form.get("shop_address")) if new else ""
    line_kind = _text(form.get("line_kind")) if new else ""
    line_type = _text(form.get("line_type")) if new else ""
    if category == "relocation":
        address, line_kind = _text(body.get("new_address")), _text(body.get("new_line_kind"))
        if first is not None and first.install_address:
            note = values["relocated_from"].format(address=first.install_address)
    elif category == "cancellation":
        note = values["cancel_after_order"] if "CANCEL_AFTER_ORDER" in request.reasons else values["cancel_same_day"]
    if not address and first is not None:
        address = first.install_address
    if not line_kind and first is not None and category != "relocation":
        line_kind, line_type = first.line_kind, line_type or first.line_type
    termination: dict = f.get("termination") or {}  # type: ignore[assignment]
    return LedgerLine(
        key=key, category=category, day=calendar.day_n(request.accepted_at), code=code,
        customer_name=_text(form.get("contractor_name")) or (first.customer_name if first else ""),
        shop_name=_text(form.get("shop_name")) or _text(body.get("shop_name")) or (first.shop_name if first else ""),
        branch=request.branch or (first.branch if first else ""),
        parents=int(parents), children=int(children),
        plus=bool(form["plus"]) if new and isinstance(form.get("plus"), bool) else any(line.plus for line in lines),
        line_kind=line_kind, line_type=line_type, address=address,
        mail_addresses=tuple(form.get("mail_addresses") or ()) if new else (),
        ssid=_text(form.get("ssid")) if new else "",
        termination_date=(_date(form.get("termination_date")) or _date(termination.get("unis_termination_date"))
                          if category == "termination" else None),
        corporate="CORPORATE_CASE" in request.reasons or bool(unis is not None and unis.corporate_lines(code)),
        note=note, message_id=request.message_id or "")


def forced_terminations(unis: UnisData, rules: LedgerRules, calendar: BusinessCalendar, day: date,
                        covered: Callable[[str], bool]) -> list[LedgerLine]:
    """On the month's [forced_termination] business_day: the UNIS router lines terminated (or to
    be) in the previous month that no accepted 解約申請 covered (`covered(code)`), one line each
    (seed 001 VI: UNIS extracts every termination on that day; no mail comes from the branch)."""
    if day != calendar.nth_business_day(day.year, day.month, rules.forced_business_day):
        return []
    last = day.replace(day=1) - timedelta(days=1)
    out: list[LedgerLine] = []
    keys: set[str] = set()
    for line in unis.terminations_between(last.replace(day=1), last, rules.forced_statuses):
        if covered(line.customer_code):
            continue
        child = line.item_code in rules.child_items
        key = base = f"unis:{line.customer_code}:{line.item_code}:{line.serial}:{line.termination_date}"
        while key in keys:  # two lines alike (child units without serials): one line each
            key = f"{base}#{len(keys)}"
        keys.add(key)
        out.append(LedgerLine(
            key=key,
            category="forced_termination", day=day, code=line.customer_code, customer_name=line.customer_name,
            shop_name=line.shop_name, branch=line.branch, parents=0 if child else 1, children=1 if child else 0,
            plus=line.plus, line_kind=line.line_kind, line_type=line.line_type, address=line.install_address,
            termination_date=line.termination_date,
            corporate=any(w in line.acquisition for w in unis.rules.corporate_acquisition)))
    return out

"""Form checks: the attached PDF could be opened as agreed, and the form is filled in (DOMAIN.md §4).

They read `request.form_reading` (what the sandbox gave) and `request.form` (the fields); a form
that could not be read gets its PDF finding and no field findings.
"""

from __future__ import annotations

from mailbot.checks.base import CheckContext
from mailbot.classify import code_is_valid
from mailbot.forms.model import ApplicationForm, PdfStatus
from mailbot.model import Finding, Request
from mailbot.rules import load_rules
from mailbot.rules.requests import ApplicationRules
from mailbot.text import normalise

_PDF_FINDINGS = {
    PdfStatus.NOT_ENCRYPTED: "PDF_NOT_ENCRYPTED",
    PdfStatus.WRONG_PASSWORD: "PDF_WRONG_PASSWORD",
    PdfStatus.UNREADABLE: "PDF_UNREADABLE",
}


def pdf_opened_as_agreed(request: Request, ctx: CheckContext) -> list[Finding]:
    reading = request.form_reading
    if reading is None or reading.status not in _PDF_FINDINGS:
        return []
    # The title says all a branch needs of a password; an unreadable file's detail is for staff.
    detail = reading.detail if reading.status is PdfStatus.UNREADABLE else ""
    return [Finding(_PDF_FINDINGS[reading.status], detail)]


def readable_application(request: Request) -> ApplicationForm | None:
    reading = request.form_reading
    if reading is None or reading.status not in (PdfStatus.READ, PdfStatus.NOT_ENCRYPTED):
        return None
    return request.form if isinstance(request.form, ApplicationForm) else None


def application_filled_in(request: Request, ctx: CheckContext) -> list[Finding]:
    form = readable_application(request)
    if form is None:
        return []
    rules = load_rules(ctx.rules_dir).application_checks
    findings = []
    if not form.line_kind:
        findings.append(Finding("LINE_KIND_MISSING"))
    elif normalise(form.line_kind) in rules.kinds_needing_type and not form.line_type:
        findings.append(Finding("LINE_TYPE_MISSING", form.line_kind))
    if not form.opening_check:
        findings.append(Finding("OPENING_CHECK_MISSING"))
    findings += _mail_address_findings(form.mail_addresses, rules)
    findings += _ssid_findings(form.ssid, rules)
    return findings


def _mail_address_findings(addresses: tuple[str, ...], rules: ApplicationRules) -> list[Finding]:
    written = [a for a in addresses if a and a.strip()]
    if not written:
        return [Finding("MAIL_ADDRESS_MISSING")]
    invalid = [a for a in written if not _valid_address(a, rules)]
    return [Finding("MAIL_ADDRESS_INVALID", "、".join(invalid))] if invalid else []


def _valid_address(address: str, rules: ApplicationRules) -> bool:
    # Written by hand into a form: spaces around "@" are layout, full-width letters are not allowed.
    text = "".join(address.split())
    local, at, domain = text.rpartition("@")
    return bool(at) and text.isascii() and domain.lower() == rules.address_domain \
        and bool(rules.address_local.match(local.lower()))


def _ssid_findings(ssid: str | None, rules: ApplicationRules) -> list[Finding]:
    if not ssid:
        return []  # the Original SSID is an option: no SSID is no finding
    findings = []
    # 半角英数字・記号: printable ASCII only (half-width kana and accented letters are not).
    wide = [c for c in ssid if not (" " <= c <= "~")]
    if wide:
        findings.append(Finding("SSID_NOT_HALFWIDTH", "".join(dict.fromkeys(wide))))
    size = len(ssid.encode("utf-8"))
    if size > rules.ssid_max_bytes:
        findings.append(Finding("SSID_TOO_LONG", f"{size}バイト（上限{rules.ssid_max_bytes}バイト）"))
    return findings


def form_code_matches(request: Request, ctx: CheckContext) -> list[Finding]:
    subject_code = request.classification.code
    reading = request.form_reading
    if request.form is None or reading is None or reading.status not in (PdfStatus.READ, PdfStatus.NOT_ENCRYPTED):
        return []
    if not subject_code or not code_is_valid(subject_code, ctx.rules_dir):
        return []
    form_code = normalise(getattr(request.form, "customer_code", None) or "").replace(" ", "")
    if form_code and form_code != subject_code:
        return [Finding("CODE_MISMATCH", f"件名 {subject_code} / 申込書 {form_code}")]
    return []

"""Business policy, as data: every file of rules/ loaded and validated once, into typed parts.

    load_rules(rules_dir)              -> Rules (cached per directory)
    check_templates(templates_dir)     every template parses; the ones the bot renders are there

A broken file stops the bot before it touches a mail, with one line `path:line: what is wrong`
(`RulesError`; the commands print it and exit 2).  This package is the only reader of rules/.

    reasons.py   reasons.toml            every reason code: decision, Japanese title and fix
    kinds.py     kinds.toml              subject words of each kind, the kinds' names
    requests.py  requests.toml           what each kind carries, body labels, form/agreement/history checks
    senders.py   senders.toml            automatic mail, sender authentication
    replies.py   replies.toml            the subjects of replies and held notes
    calendar.py  calendar.toml           business days, cut-off, closed days
    unis.py      unis.toml               the UNIS extract's columns and statuses
    digest.py    digest.toml             the supervisors' digest
    ledger.py    ledger.toml             the 管理台帳 and its daily share with FiberGate
    forms.py     forms/*.toml            the forms' labels and marks, termination dates
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from pathlib import Path

import jinja2

from mailbot.rules.base import RulesError, RulesFile
from mailbot.rules.calendar import CalendarRules, build_calendar_rules
from mailbot.rules.digest import DigestRules, build_digest_rules
from mailbot.rules.forms import DateRules, FormRules, build_date_rules, build_form_rules
from mailbot.rules.kinds import SubjectRules, build_kind_labels, build_subject_rules
from mailbot.rules.ledger import LedgerRules, build_ledger_rules
from mailbot.rules.reasons import Reason, build_reasons
from mailbot.rules.replies import ReplyRules, build_reply_rules
from mailbot.rules.requests import (
    AgreementRules,
    ApplicationRules,
    OpenRequestRules,
    RequestRules,
    build_agreement_rules,
    build_application_rules,
    build_open_request_rules,
    build_request_rules,
)
from mailbot.rules.senders import SenderRules, build_sender_rules
from mailbot.rules.unis import UnisRules
from mailbot.text import normalise

__all__ = ["Reason", "Rules", "RulesError", "check_templates", "kind_labels", "load_rules", "reasons", "rules_version"]

# The templates the bot renders whatever the rules say (the accept/ ones per kind are optional:
# accept/default.txt.j2 stands in).
REQUIRED_TEMPLATES = ("accept/default.txt.j2", "remand.txt.j2", "hold.txt.j2", "held/note.txt.j2",
                      "held/note.html.j2", "digest.txt.j2", "digest.html.j2", "ledger/share.txt.j2")


@dataclass(frozen=True)
class Rules:
    """All of rules/, typed."""

    dir: Path
    reasons: dict[str, Reason]
    kind_labels: dict[str, str]
    subjects: SubjectRules
    requests: RequestRules
    agreement: AgreementRules
    application_checks: ApplicationRules
    open_requests: OpenRequestRules
    senders: SenderRules
    calendar: CalendarRules
    unis: UnisRules
    digest: DigestRules
    ledger: LedgerRules
    forms: dict[str, FormRules]  # form name (rules/requests.toml) → its labels
    termination_dates: DateRules
    replies: ReplyRules


def _part(rules_dir: Path, name: str, build):
    file = RulesFile.read(rules_dir, name)
    with file.building():
        return build(file)


@cache
def _load(rules_dir: Path) -> Rules:
    kinds = RulesFile.read(rules_dir, "kinds.toml")
    with kinds.building():
        labels = build_kind_labels(kinds)
        subjects = build_subject_rules(kinds)
    requests = RulesFile.read(rules_dir, "requests.toml")
    with requests.building():
        request_rules = build_request_rules(requests)
        agreement = build_agreement_rules(requests)
        application_checks = build_application_rules(requests)
        open_requests = build_open_request_rules(requests)
    termination = RulesFile.read(rules_dir, "forms/termination.toml")
    with termination.building():
        dates = build_date_rules(termination)
    rules = Rules(
        dir=rules_dir, reasons=_part(rules_dir, "reasons.toml", build_reasons), kind_labels=labels,
        subjects=subjects, requests=request_rules, agreement=agreement, application_checks=application_checks,
        open_requests=open_requests, senders=_part(rules_dir, "senders.toml", build_sender_rules),
        calendar=calendar_rules(rules_dir), unis=unis_rules(rules_dir),
        digest=_part(rules_dir, "digest.toml", lambda f: build_digest_rules(f, labels)),
        ledger=_part(rules_dir, "ledger.toml", build_ledger_rules),
        forms={"application": _part(rules_dir, "forms/application.toml", build_form_rules),
               "termination": _part(rules_dir, "forms/termination.toml", build_form_rules)},
        termination_dates=dates, replies=_part(rules_dir, "replies.toml", build_reply_rules),
    )
    _cross_check(rules, requests, kinds)
    return rules


@cache
def rules_version(rules_dir: Path, templates_dir: Path) -> str:
    """A hash of every rules file and template in force: which policy a decision was made under."""
    import hashlib

    h = hashlib.sha256()
    for base, pattern in ((Path(rules_dir), "*.toml"), (Path(templates_dir), "*.j2")):
        for path in sorted(base.rglob(pattern)):
            h.update(str(path.relative_to(base)).encode() + b"\0" + path.read_bytes() + b"\0")
    return h.hexdigest()[:16]


_by_argument: dict[object, Rules] = {}  # as asked for: resolving the path at every call costs syscalls


def load_rules(rules_dir: Path) -> Rules:
    """Every rules file of `rules_dir`, validated; loaded once per process and directory."""
    rules = _by_argument.get(rules_dir)
    if rules is None:
        rules = _by_argument[rules_dir] = _load(Path(rules_dir).resolve())
    return rules


def _cross_check(rules: Rules, requests: RulesFile, kinds_file: RulesFile) -> None:
    """What one file names that another must define."""
    for action, prefix in rules.replies.subject_prefix.items():
        if normalise(prefix) not in rules.subjects.bot_prefixes:
            raise kinds_file.error("bot_prefixes", f"lacks {prefix!r}, the {action.value} tag of replies.toml: "
                                   "a branch's answer to such a reply would not be known as one")
    for kind, form in rules.requests.form.items():
        if form not in rules.forms:
            raise requests.error(f"{kind}.form", f"no form {form!r} (known: {', '.join(rules.forms)})")
    for kind, items in rules.requests.body_items.items():
        for item in items:
            if item not in rules.requests.display:
                raise requests.error(f"{kind}.body_items", f"{item!r} has no spellings in [labels]")


def calendar_rules(rules_dir: Path) -> CalendarRules:
    """calendar.toml alone (a calendar of its own, e.g. in the tests)."""
    return _part(rules_dir, "calendar.toml", build_calendar_rules)


def unis_rules(rules_dir: Path) -> UnisRules:
    """unis.toml alone (the UNIS import, which needs nothing else)."""
    return _part(rules_dir, "unis.toml", UnisRules.build)


def reasons(rules_dir: Path) -> dict[str, Reason]:
    return load_rules(rules_dir).reasons


def kind_labels(rules_dir: Path) -> dict[str, str]:
    """Kind value → its Japanese name (rules/kinds.toml [labels]), in the order written there;
    kinds it leaves out come last, under their value."""
    return load_rules(rules_dir).kind_labels


@cache
def check_templates(templates_dir: Path) -> None:
    """Every template of `templates_dir` parses, and the ones the bot always renders exist."""
    templates_dir = Path(templates_dir)
    for name in REQUIRED_TEMPLATES:
        if not (templates_dir / name).is_file():
            raise RulesError(f"{templates_dir / name}: template not found")
    env = jinja2.Environment()
    for path in sorted(templates_dir.rglob("*.j2")):
        try:
            env.parse(path.read_text(encoding="utf-8"), name=str(path))
        except jinja2.TemplateSyntaxError as e:
            raise RulesError(f"{path}:{e.lineno}: template syntax error: {e.message}") from None
        except (OSError, UnicodeDecodeError) as e:
            raise RulesError(f"{path}: cannot be read ({e})") from None

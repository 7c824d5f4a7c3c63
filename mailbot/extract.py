"""Body items: the `label : value` lines a branch writes into the mail (DOMAIN.md §2)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from mailbot.classify import normalise
from mailbot.model import Kind
from mailbot.rules import load_toml

# Where the quoted or forwarded original starts: nothing below belongs to this request.
_ORIGINAL_STARTS = re.compile(
    r"^\s*(-{2,}\s*(Original Message|Forwarded message|転送メッセージ|元のメッセージ)"
    r"|_{10,}\s*$|差出人\s*[:：]|From:\s.*\bSent:|On .* wrote:$|.*(さん|様)は書きました\s*[:：]$)",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class RequestRules:
    """rules/requests.toml: what each kind must carry and how body labels are spelled."""

    attachment: dict[str, str]  # kind → "required" | "optional"
    form: dict[str, str]  # kind → form name (application, termination)
    body_items: dict[str, tuple[str, ...]]  # kind → required item names
    label_pattern: re.Pattern[str]
    label_names: dict[str, str]  # spelling group name → item name
    display: dict[str, str]  # item name → the label as the manual prints it (its first spelling)


@cache
def request_rules(rules_dir: Path) -> RequestRules:
    data = load_toml(rules_dir, "requests.toml")
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
    )


def split_original(body: str) -> tuple[str, str]:
    """(what the sender wrote, the quoted or forwarded original below it, without quote marks)."""
    own, original = [], []
    for line in body.splitlines():
        quoted = line.lstrip().startswith((">", "＞"))
        if original or quoted or _ORIGINAL_STARTS.match(line):
            original.append(line.lstrip().lstrip(">＞ ") if quoted else line)
        else:
            own.append(line)
    return "\n".join(own), "\n".join(original)


def body_items(body: str, rules_dir: Path) -> dict[str, str]:
    """Item name → value of the labelled lines (first one wins).

    The sender's own text comes first; items it lacks are taken from the forwarded or quoted
    original, since a branch forwarding a request or answering a remand leaves them there.
    """
    rules = request_rules(rules_dir)
    items: dict[str, str] = {}
    for text in split_original(body):
        for line in text.splitlines():
            m = rules.label_pattern.match(normalise(line))
            if m and m.group("value").strip():
                items.setdefault(rules.label_names[_label_group(m)], m.group("value").strip())
    return items


def _label_group(m: re.Match[str]) -> str:
    return next(k for k, v in m.groupdict().items() if v is not None and k != "value")

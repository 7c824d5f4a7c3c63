"""All of rules/ and templates/ loaded and validated once, at start (issue 13): a rules file or
template broken in a typical way stops every command before a mail is touched, with one line on
stderr naming the file and the line, and exit status 2."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import ROOT

from mailbot.model import Action, Kind
from mailbot.rules import Rules, RulesError, check_templates, load_rules

RULES, TEMPLATES = ROOT / "rules", ROOT / "templates"


def test_the_projects_rules_load_into_typed_parts():
    rules = load_rules(RULES)
    assert isinstance(rules, Rules)
    assert rules.reasons["CODE_MISSING"].action is Action.REMAND
    assert rules.reasons["AUTO_REPLY"].silent and not rules.reasons["CODE_MISSING"].silent
    assert rules.kind_labels[Kind.EQUIPMENT_ORDER.value] == "器材発注依頼"
    assert rules.subjects.code_digits == 9
    assert rules.requests.form == {"equipment_order": "application", "termination": "termination"}
    assert set(rules.forms) == {"application", "termination"} and rules.forms["application"].fields
    assert rules.calendar.cutoff.hour == 17 and rules.unis.customer_code_digits == 9
    assert rules.replies.subject_prefix[Action.ACCEPT] == "【受付】"
    assert load_rules(RULES) is rules  # loaded once
    check_templates(TEMPLATES)


# (file, what is replaced, by what, the text of the line the error must name)
BREAKAGES = [
    ("calendar.toml", 'cutoff = "17:00"', 'cutoff = "5pm"', 'cutoff = "5pm"'),
    ("digest.toml", "catch_up_days = 10", 'catch_up_days = "ten"', 'catch_up_days = "ten"'),
    ("kinds.toml", 'code_digits = 9', 'code_digits = 9\nservice = "again"', 'service = "again"'),  # TOML: key twice
    ("reasons.toml", 'decision = "remand"\ntitle = "件名にUNIS顧客コードがありません。"',
     'decision = "refuse"\ntitle = "件名にUNIS顧客コードがありません。"', 'decision = "refuse"'),
    ("requests.toml", 'form = "termination"', 'form = "terminaton"', 'form = "terminaton"'),
    ("senders.toml", '[auto_reply]\n', '[auto_reply\n', '[auto_reply'),
    ("unis.toml", 'type = "status"', 'type = "text"', 'type = "text"'),
    ("replies.toml", 'remand = "【差戻】"', 'remand = ""', 'remand = ""'),
    ("forms/application.toml", 'kind = "code"', 'kind = "number"', 'kind = "number"'),
    ("forms/termination.toml", None, None, None),  # a pattern that is no regular expression
]


def _copy(tmp_path: Path) -> tuple[Path, Path]:
    rules, templates = tmp_path / "rules", tmp_path / "templates"
    shutil.copytree(RULES, rules)
    shutil.copytree(TEMPLATES, templates)
    return rules, templates


def _run_check(tmp_path: Path, rules: Path, templates: Path) -> subprocess.CompletedProcess:
    config = tmp_path / "mailbot.toml"
    config.write_text(f'[maildir]\npath = "mb"\n[paths]\nrules = "{rules}"\ntemplates = "{templates}"\n', "utf-8")
    mail = tmp_path / "m.eml"
    mail.write_bytes(b"From: a@usen.co.jp\r\nSubject: USEN SPOT \xe5\xa5\x91\xe7\xb4\x84\xe5\xa4\x89\xe6\x9b\xb4_"
                     b"932104567\r\n\r\nbody\r\n")
    return subprocess.run([sys.executable, "-m", "mailbot", "check", "--config", str(config), str(mail)],
                          capture_output=True, text=True, timeout=120, cwd=tmp_path)


def _one_line(result: subprocess.CompletedProcess, path: Path) -> int:
    assert result.returncode == 2, result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    m = re.fullmatch(re.escape(f"mailbot: {path}:") + r"(\d+): .+", lines[0])
    assert m, lines[0]
    return int(m[1])


@pytest.mark.parametrize(("name", "old", "new", "line_text"), BREAKAGES, ids=[b[0] for b in BREAKAGES])
def test_a_broken_rules_file_stops_the_command_with_one_line(tmp_path, name, old, new, line_text):
    rules, templates = _copy(tmp_path)
    path = rules / name
    text = path.read_text("utf-8")
    if old is None:  # forms/termination.toml: its first date pattern made no regular expression
        pattern = re.search(r'patterns = \[\s*\n?\s*(["\'])', text)
        assert pattern, "the termination rules have date patterns"
        broken = text[:pattern.end()] + "(?P<y>[" + text[pattern.end():]
        line_text = "(?P<y>["
    else:
        assert old in text, f"{name} no longer has {old!r}"
        broken = text.replace(old, new, 1)
    path.write_text(broken, "utf-8")
    line = _one_line(_run_check(tmp_path, rules, templates), path)
    assert line_text in broken.splitlines()[line - 1]


def test_a_missing_rules_file_is_named(tmp_path):
    rules, templates = _copy(tmp_path)
    (rules / "senders.toml").unlink()
    result = _run_check(tmp_path, rules, templates)
    assert result.returncode == 2 and result.stderr.strip() == f"mailbot: {rules / 'senders.toml'}: rules file not found"


def test_a_template_with_a_syntax_error_is_named_with_its_line(tmp_path):
    rules, templates = _copy(tmp_path)
    path = templates / "remand.txt.j2"
    lines = path.read_text("utf-8").splitlines()
    lines.insert(2, "{% for f in findings %}")  # never closed
    path.write_text("\n".join(lines) + "\n", "utf-8")
    assert _one_line(_run_check(tmp_path, rules, templates), path) >= 3


def test_a_missing_template_is_named(tmp_path):
    rules, templates = _copy(tmp_path)
    (templates / "held" / "note.txt.j2").unlink()
    result = _run_check(tmp_path, rules, templates)
    assert result.returncode == 2
    assert result.stderr.strip() == f"mailbot: {templates / 'held' / 'note.txt.j2'}: template not found"


def test_the_loader_reports_the_line_of_a_nested_key(tmp_path):
    rules, _ = _copy(tmp_path)
    path = rules / "unis.toml"
    text = path.read_text("utf-8").replace('type = "status"', 'type = "text"', 1)
    path.write_text(text, "utf-8")
    with pytest.raises(RulesError, match=r"unis\.toml:(\d+): fields\.status\.type: must be 'status'") as e:
        load_rules(rules)
    line = int(re.search(r"unis\.toml:(\d+):", str(e.value))[1])
    assert text.splitlines()[line - 1] == 'type = "text"'

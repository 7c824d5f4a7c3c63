"""The regrouping of the package (issue 13) must not change a single decision: `check --json`
output for every sample mail and every corpus mail, and the demo's decision table, compared with
what the package decided before it was regrouped (tests/golden/, written by this file's
`python tests/test_same_decisions.py --write`).

Where a later change is meant to change a decision, the golden file is rewritten in the same
commit, and the commit says which lines changed and why."""

from __future__ import annotations

import json
import sys
from datetime import datetime
from pathlib import Path

if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).parent))

import pytest
from helpers import CORPORA, TOKYO

GOLDEN = Path(__file__).parent / "golden"
NOW = datetime(2026, 11, 20, 10, 30, tzinfo=TOKYO)


def _check_lines(mails: list[tuple[str, bytes]], tmp: Path) -> list[dict]:
    """What `mailbot check --json` prints for these mails, checked at NOW, with the samples'
    UNIS extract and branch directory."""
    from demo.samples import sample_directory, sample_extract
    from mailbot.config import embedded_default
    from mailbot.pipeline import evaluate
    from mailbot.record.history import MemoryHistory, PastRequest
    from mailbot.reference.data import ReferenceData

    settings = embedded_default(tmp)
    settings.unis_extract.parent.mkdir(parents=True, exist_ok=True)
    settings.unis_extract.write_bytes(sample_extract(NOW))
    settings.branch_directory.write_bytes(sample_directory())
    reference = ReferenceData.load(settings, unis_db=tmp / "unis.sqlite3", strict=True)
    history = MemoryHistory()
    out = []
    try:
        for name, data in mails:
            e = evaluate(data, None, settings, now=NOW, reference=reference, history=history)
            if e.classification.code and e.received is not None:
                history.add(PastRequest(e.classification.kind, e.classification.code, e.decision.action,
                                        e.received))
            out.append(json.loads(json.dumps(
                {"file": name, "kind": e.classification.kind.value, "customer_code": e.classification.code,
                 "decision": e.decision.action.value, "reasons": e.decision.reasons, "fields": e.fields},
                ensure_ascii=False, default=str)))
    finally:
        reference.close()
    return out


def _samples() -> list[tuple[str, bytes]]:
    from demo.samples import sample_mails

    return sample_mails(NOW)


def _corpus() -> list[tuple[str, bytes]]:
    root = CORPORA / "email"
    return [(str(p.relative_to(root)), p.read_bytes()) for p in sorted(root.rglob("*")) if p.is_file()]


CASES = {"samples": _samples, "corpus": _corpus}


@pytest.mark.parametrize("case", sorted(CASES))
def test_check_json_is_what_it_was(case, tmp_path):
    expected = [json.loads(line) for line in (GOLDEN / f"check_{case}.jsonl").read_text("utf-8").splitlines()]
    got = _check_lines(CASES[case](), tmp_path)
    assert [o["file"] for o in got] == [o["file"] for o in expected]
    changed = [(e["file"], e, g) for e, g in zip(expected, got, strict=True) if e != g]
    assert not changed, f"{len(changed)} decisions changed, the first: {changed[0]}"


def write(tmp: Path) -> None:
    GOLDEN.mkdir(exist_ok=True)
    for case, mails in CASES.items():
        lines = _check_lines(mails(), tmp)
        (GOLDEN / f"check_{case}.jsonl").write_text(
            "".join(json.dumps(o, ensure_ascii=False, sort_keys=True) + "\n" for o in lines), "utf-8")
        print(f"{case}: {len(lines)} mails")


if __name__ == "__main__" and sys.argv[1:] == ["--write"]:
    import tempfile

    with tempfile.TemporaryDirectory() as d:
        write(Path(d))

"""Nothing lost, nothing answered twice, under SIGKILL; and a long run that stays flat.

Both tests drive `python -m mailbot run` as a subprocess against the real servers of conftest.py
(Dovecot, the SMTP sink), on a backlog of distinct realistic mails from tests/backlog.py, and
judge only from outside: the IMAP folders, the replies the sink received and (read-only) the
state database.

    test_sigkill_at_random_moments_loses_nothing_and_answers_once
        ≥ 300 mails; the bot is killed with SIGKILL (its whole process group, as systemd or the
        OOM killer would: the PDF sandbox's forkserver with it) at seeded random moments, ≥ 20
        times, restarted each time, then left to finish and stopped with SIGTERM.  Every mail is
        filed once, in its folder, byte for byte; every mail due a reply has exactly one.  Each
        reply's copy comes back to the shared mailbox ([smtp] copy_to_mailbox, the relay
        delivering it before its 250): the reply whose SMTP transaction a kill interrupted after
        the server took it is found by its copy and not sent again.  Every copy is filed once
        to the sent folder.
    test_sigkill_while_sharing_the_ledger_sends_one_share
        `mailbot ledger --send` for the day's 管理台帳 share with FiberGate, killed at seeded random
        moments (before the share is made, between queueing and sending, in the SMTP transaction
        with the server hanging, after it) and run again until it reports the share sent: one
        share, one Message-ID, the same bytes in every copy; each line in that share once.
    test_long_run_keeps_memory_and_open_files_flat
        ≥ 2,000 mails appended in waves while one `mailbot run` works through them; its memory
        (RSS of the process and its children) and open descriptors are sampled after each wave.

Each prints its figures (run with -s to see them).  About 1 and 1¼ minutes on 2 cores.
"""

from __future__ import annotations

import email
import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from backlog import (
    DECISIONS,
    GROUPS,
    MIX_BENCH,
    MIX_LIGHT,
    MIX_MORNING,
    Backlog,
    _allocate,
    make_backlog,
)
from helpers import ROOT
from test_ledger import office  # noqa: F401 - the fixture: the state after the sample morning
from test_ledger import write_config as ledger_config
from test_loop import HELD, IGNORED, ORIGINALS, PROCESSED, crlf, write_config

from demo.samples import SAMPLES
from mailbot.reply.note import original_of

SEED = 20261120
CRASH_MAILS = 300
CRASH_KILLS = 24
# 10 waves of 200: 2,000 mails (MAILBOT_LONG_RUN_WAVES=30 for 6,000)
LONG_RUN_WAVES, LONG_RUN_WAVE_SIZE = int(os.environ.get("MAILBOT_LONG_RUN_WAVES", "10")), 200
SENT = "送信済"  # the default [folders] sent
SHARED_MAILBOX = "usen_spot@usen.co.jp"  # the bot's [smtp] from (tests/test_loop.write_config)
FOLDER_OF_ROLE = {"processed": PROCESSED, "held": ORIGINALS, "ignored": IGNORED}


# ---- the bot as a process ----------------------------------------------------------------------


class BotProcess:
    """`python -m mailbot run --config F` in a process group of its own (its PDF forkserver and
    sandbox children belong to it), output appended to a log file."""

    def __init__(self, config: Path, log: Path):
        self.config = config
        self.log = log
        self.proc: subprocess.Popen | None = None
        self.started = 0.0

    def start(self) -> None:
        with open(self.log, "ab") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "mailbot", "run", "--config", str(self.config)],
                cwd=ROOT, stdin=subprocess.DEVNULL, stdout=out, stderr=out, start_new_session=True)
        self.started = time.monotonic()

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def kill(self) -> None:
        """SIGKILL to the whole group at once: nothing of it runs another instruction."""
        assert self.proc is not None
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.proc.wait(10)
        self.proc = None

    def stop(self, timeout: float = 60) -> int:
        """SIGTERM to the bot itself (it finishes the mail in hand); then whatever of its group is left."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        try:
            code = self.proc.wait(timeout)
        finally:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            if self.proc.poll() is None:
                self.proc.wait(10)
        self.proc = None
        return code

    def tree(self) -> list[int]:
        """The bot's pid and its descendants' (the forkserver, sandbox children)."""
        assert self.proc is not None
        parents: dict[int, list[int]] = {}
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            ppid = int(stat.rpartition(")")[2].split()[1])
            parents.setdefault(ppid, []).append(int(entry))
        out, todo = [], [self.proc.pid]
        while todo:
            pid = todo.pop()
            out.append(pid)
            todo += parents.get(pid, [])
        return out

    def log_tail(self) -> str:
        return self.log.read_text("utf-8", "replace")[-3000:] if self.log.exists() else ""


def rss_kb(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def open_fds(pid: int) -> int:
    try:
        return len(os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        return 0


def resting_fds(pid: int, samples: int = 20) -> int:
    """The fewest open descriptors over a second: what stays open between cycles (a cycle holds its
    IMAP, SMTP and database connections only while it runs, every second)."""
    counts = []
    for _ in range(samples):
        counts.append(open_fds(pid))
        time.sleep(1 / samples)
    return min(counts)


# ---- looking from outside ----------------------------------------------------------------------


@dataclass
class Snapshot:
    """The state database, read-only: mails by state, replies by state."""

    mails: Counter = field(default_factory=Counter)
    replies: Counter = field(default_factory=Counter)

    @property
    def total(self) -> int:
        return sum(self.mails.values())

    @property
    def decided(self) -> int:
        return self.total - self.mails["received"]

    @property
    def unfinished(self) -> int:
        return self.total - self.mails["filed"]

    @property
    def pending_replies(self) -> int:
        return self.replies["queued"] + self.replies["sending"]


def snapshot(database: Path) -> Snapshot:
    if not database.exists():
        return Snapshot()
    try:
        db = sqlite3.connect(f"file:{database}?mode=ro", uri=True, timeout=10)
        try:
            return Snapshot(Counter(dict(db.execute("SELECT state, COUNT(*) FROM mails GROUP BY state"))),
                            Counter(dict(db.execute("SELECT state, COUNT(*) FROM replies GROUP BY state"))))
        finally:
            db.close()
    except sqlite3.OperationalError:  # not made yet (the bot was killed while creating it)
        return Snapshot()


def sink_count(sink) -> int:
    folder = sink.root / "messages"
    return len(list(folder.glob("*.json"))) if folder.exists() else 0


def inbox_count(account) -> int:
    return len(account.uids("INBOX"))


def append_all(account, backlog_mails) -> None:
    """APPEND each mail to the INBOX over one connection, with its delivery time as INTERNALDATE."""
    client = account.client()
    try:
        for m in backlog_mails:
            client.append("INBOX", crlf(m.data), msg_time=m.received)
    finally:
        client.logout()


def wait_until_done(account, sink, database: Path, expected: int, bot: BotProcess, timeout: float) -> float:
    """Until every mail is recorded and filed, no reply is pending and the INBOX is empty; returns
    the seconds waited."""
    t0 = time.monotonic()
    while True:
        s = snapshot(database)
        if s.total >= expected and s.unfinished == 0 and s.pending_replies == 0 and inbox_count(account) == 0:
            return time.monotonic() - t0
        if not bot.running:
            pytest.fail(f"the bot exited with {bot.proc.returncode if bot.proc else '?'}:\n{bot.log_tail()}")
        if time.monotonic() - t0 > timeout:
            pytest.fail(f"not done after {timeout:.0f} s: {s}, INBOX {inbox_count(account)}\n{bot.log_tail()}")
        time.sleep(0.25)


def crash_config(tmp_path: Path, account, sink, backlog: Backlog, poll_interval: int = 1, **policy: object) -> Path:
    """The configuration of tests/test_loop.py with the backlog's UNIS extract and branch directory,
    polling every `poll_interval` seconds (also bench/run.py's).  The reply brakes are opened wide:
    a backlog of hundreds of mails from the samples' two dozen people is no runaway loop (the
    per-sender daily cap would hold their 31st mail as REPLY_LIMIT, the hourly circuit breaker keep
    the 201st reply back for an hour)."""
    tmp_path.mkdir(parents=True, exist_ok=True)
    extract, directory = backlog.write_reference(tmp_path / "reference")
    policy = {"max_replies_per_sender_per_day": 100_000, "max_replies_per_hour": 100_000, **policy}
    config = write_config(tmp_path, account, sink, **policy)
    config.write_text(config.read_text("utf-8") + (
        f'\n[unis]\nextract = "{extract}"\n\n[branches]\ndirectory = "{directory}"\n\n'
        f"[scheduler]\npoll_interval = {poll_interval}\n"), encoding="utf-8")
    return config


@dataclass
class Verdict:
    lost: list[str]  # not filed anywhere (or stuck in the INBOX)
    misfiled: list[str]  # filed, but not (only) where its decision puts it
    filed_twice: int  # copies beyond the first of a backlog mail, over every folder
    strays: int  # filed messages that are no backlog mail
    notes_missing: list[str]
    notes_extra: int
    unanswered: list[str]  # due a reply, got none
    duplicates: int  # replies beyond the first, per mail
    distinct_second_replies: int  # mails that got two *different* replies (Message-IDs)
    unwanted: list[str]  # replies to mails not due one, or to no backlog mail
    replies: int

    @property
    def ok(self) -> bool:
        return not (self.lost or self.misfiled or self.filed_twice or self.strays or self.notes_missing
                    or self.notes_extra or self.unanswered or self.duplicates or self.unwanted)


def verdict(account, sink, backlog: Backlog) -> Verdict:
    """Every backlog mail in exactly one folder (its decision's), byte for byte; one note per held
    mail; one reply per mail due one, none to any other."""
    inbox = [crlf(d) for d in account.messages("INBOX").values()]
    folders = {name: Counter(crlf(d) for d in account.messages(name).values())
               for name in (PROCESSED, ORIGINALS, IGNORED)}
    lost, misfiled, filed_twice = [], [], 0
    known = set()
    for m in backlog.mails:
        data = crlf(m.data)
        known.add(data)
        where = {name: c[data] for name, c in folders.items() if c[data]}
        copies = sum(where.values())
        if not copies:
            lost.append(f"{m.index}:{m.sample}" + (" (still in the INBOX)" if data in inbox else ""))
            continue
        filed_twice += copies - 1
        if set(where) != {FOLDER_OF_ROLE[m.role]}:
            misfiled.append(f"{m.index}:{m.sample} {m.decision} in {where}")
    strays = sum(n for c in folders.values() for data, n in c.items() if data not in known)

    notes = Counter(crlf(original_of(n)) for n in account.messages(HELD).values())
    held = {crlf(m.data): m for m in backlog.mails if m.role == "held"}
    notes_missing = [f"{m.index}:{m.sample}" for data, m in held.items() if notes[data] == 0]
    notes_extra = sum(n - 1 if data in held else n for data, n in notes.items() if n > 1 or data not in held)

    by_id = backlog.by_message_id()
    answers: dict[str, list[str]] = {}
    unwanted = []
    messages = sink.messages()
    for r in messages:
        source = " ".join(str(r.message["In-Reply-To"] or "").split())
        if source not in by_id:
            unwanted.append(f"reply {r.message['Message-ID']} to no backlog mail ({source!r})")
            continue
        answers.setdefault(source, []).append(" ".join(str(r.message["Message-ID"]).split()))
    unanswered, duplicates, distinct = [], 0, 0
    for m in backlog.mails:
        got = answers.get(m.message_id, [])
        if m.replied and not got:
            unanswered.append(f"{m.index}:{m.sample}")
        if not m.replied and got:
            unwanted.append(f"{m.index}:{m.sample} ({m.decision}) got {len(got)} replies")
        duplicates += max(0, len(got) - 1)
        distinct += len(set(got)) > 1
    return Verdict(lost, misfiled, filed_twice, strays, notes_missing, notes_extra, unanswered, duplicates,
                   distinct, unwanted, len(messages))


# ---- 0. the backlog itself -------------------------------------------------------------------


def test_backlog_mails_are_distinct_and_decided_like_their_samples(tmp_path):
    """Two copies of every sample, each a mail of its own, decided as the sample is (the pipeline
    alone, with the backlog's UNIS extract and branch directory, in the order appended)."""
    from mailbot.config import embedded_default
    from mailbot.pipeline import evaluate
    from mailbot.record.history import MemoryHistory, PastRequest
    from mailbot.reference.data import ReferenceData

    backlog = make_backlog(2 * len(DECISIONS), mix=MIX_MORNING, seed=SEED)
    assert Counter(m.sample for m in backlog.mails) == Counter({name: 2 for name in DECISIONS})
    assert len({m.code for m in backlog.mails if m.code}) == sum(1 for m in backlog.mails if m.code)
    again = make_backlog(2 * len(DECISIONS), mix=MIX_MORNING, seed=SEED)
    assert [(m.sample, m.code, m.message_id) for m in again.mails] == \
        [(m.sample, m.code, m.message_id) for m in backlog.mails], "deterministic"
    extract, directory = backlog.write_reference(tmp_path)
    settings = embedded_default(tmp_path / "demo")
    reference = ReferenceData.load(settings, unis_extract=extract, branch_directory=directory,
                                   unis_db=tmp_path / "unis.sqlite3", strict=True)
    history = MemoryHistory()
    try:
        for m in backlog.mails:
            e = evaluate(m.data, m.received, settings, reference=reference, history=history)
            if e.classification.code and e.received is not None:
                history.add(PastRequest(e.classification.kind, e.classification.code, e.decision.action,
                                        e.received))
            assert (m.sample, e.decision.action.value) == (m.sample, m.decision), e.decision.reasons
            assert e.mail.message_id == m.message_id
            if m.code and len(m.code) == 9 and SAMPLES[m.sample].code:
                assert e.classification.code == m.code
    finally:
        reference.close()

    groups = Counter(next(g for g, names in GROUPS.items() if name in names) for name in _allocate(1000, MIX_BENCH))
    assert groups == {"orders": 600, "terminations": 100, "body": 300}


# ---- 1. SIGKILL at random moments --------------------------------------------------------------


@dataclass
class Kill:
    stage: str  # deciding | sending | filing: the part of the backlog's way this kill is meant for
    trigger: str  # start | deciding | sending | filing: what it waits for before its delay
    delay: float  # seconds after the trigger
    alive: float = 0.0  # seconds from spawn to the kill
    fired: str = ""  # the trigger as it happened ("timeout": never came)
    before: Snapshot | None = None  # at the spawn
    after: Snapshot | None = None  # right after the kill
    sink_before: int = 0
    sink_after: int = 0
    unrecorded: int = 0  # replies the server had accepted that the bot had not recorded as sent

    @property
    def mid_cycle(self) -> bool:
        """Mails recorded but not yet filed, or replies in their SMTP transaction, at the kill."""
        return bool(self.after and (self.after.unfinished or self.after.replies["sending"]))

    @property
    def phase(self) -> str:
        """What this life was doing when it died, from what it got done."""
        a, b = self.after, self.before
        if a.mails["filed"] > b.mails["filed"]:
            return "filing"
        if self.sink_after > self.sink_before or a.replies["sending"] > b.replies["sending"]:
            return "sending"
        if a.decided > b.decided or a.total > b.total:
            return "deciding"
        return "starting"


def kill_schedule(rng: random.Random, n: int) -> list[Kill]:
    """Random moments along the backlog's way: the first half while mails are decided, then
    during the SMTP batch, then while mails are filed.  A third of them come at a plain random time
    after the start (0.05–1.5 s: imports, login, fetching, or wherever the bot is by then); the
    others a random delay after the first sign of that stage's work in this life (a decision
    recorded, a reply arriving at the server, a mail filed)."""
    kills = []
    for i in range(n):
        stage = "deciding" if i < n // 2 else "sending" if i < 4 * n // 5 else "filing"
        trigger = "start" if rng.random() < 1 / 3 else stage
        delay = {"start": rng.uniform(0.05, 1.5), "deciding": rng.uniform(0.0, 1.0),
                 "sending": rng.uniform(0.0, 0.15), "filing": rng.uniform(0.0, 0.5)}[trigger]
        kills.append(Kill(stage, trigger, delay))
    return kills


def wait_for_trigger(kill: Kill, bot: BotProcess, database: Path, sink, timeout: float = 20.0) -> str:
    if kill.trigger == "start":
        return "start"
    before = kill.before
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and bot.running:
        if kill.trigger == "sending":
            if sink_count(sink) > kill.sink_before:
                return "sending"
        else:
            s = snapshot(database)
            if kill.trigger == "deciding" and (s.decided > before.decided or s.total > before.total):
                return "deciding"
            if kill.trigger == "filing" and s.mails["filed"] > before.mails["filed"]:
                return "filing"
        time.sleep(0.005)
    return "timeout"


def unrecorded_at_kills(kills: list[Kill], messages) -> None:
    """For each kill, the replies delivered in that life that were delivered again later: the
    server had accepted them, but the bot died before recording it."""
    ids = [" ".join(str(m.message["Message-ID"]).split()) for m in messages]
    for kill in kills:
        later = set(ids[kill.sink_after:])
        kill.unrecorded = sum(1 for i in ids[kill.sink_before:kill.sink_after] if i in later)


@pytest.fixture
def bot_process(tmp_path):
    """bot_process(config) → a BotProcess (not started); whatever is left of it is killed after the test."""
    made: list[BotProcess] = []

    def make(config: Path) -> BotProcess:
        made.append(BotProcess(config, tmp_path / "bot.log"))
        return made[-1]

    yield make
    for bot in made:
        if bot.proc is not None:
            bot.kill()


def test_sigkill_at_random_moments_loses_nothing_and_answers_once(imap_account, smtp_sink, bot_process, tmp_path):
    t_start = time.monotonic()
    backlog = make_backlog(CRASH_MAILS, mix=MIX_MORNING, seed=SEED)
    append_all(imap_account, backlog.mails)
    # A kill counts as a failed attempt on the mail in hand (poison-mail protection, by design);
    # the same mail in hand at 3 random kills would be held as PROCESSING_FAILED, which is right
    # for a mail that crashes the bot but not what this test is about.
    config = crash_config(tmp_path, imap_account, smtp_sink, backlog, max_processing_attempts=1_000)
    # Each reply's copy comes back to the shared mailbox (delivered by the relay before its 250):
    # after a kill mid-send it tells whether the interrupted reply went out.
    smtp_sink.deliver_to(SHARED_MAILBOX, imap_account)
    config.write_text(config.read_text("utf-8").replace(
        f'from = "{SHARED_MAILBOX}"\n', f'from = "{SHARED_MAILBOX}"\ncopy_to_mailbox = true\ncopy_wait = 3\n'),
        encoding="utf-8")
    assert "copy_to_mailbox" in config.read_text("utf-8")
    database = tmp_path / "state.sqlite3"
    bot = bot_process(config)
    t_ready = time.monotonic()

    kills = kill_schedule(random.Random(SEED), CRASH_KILLS)
    for kill in kills:
        kill.before, kill.sink_before = snapshot(database), sink_count(smtp_sink)
        if kill.trigger != "start" and kill.before.total == len(backlog) and (
                kill.trigger == "deciding" and not kill.before.mails["received"]
                or kill.trigger == "sending" and not kill.before.pending_replies
                or kill.trigger == "filing" and not kill.before.unfinished):
            kill.trigger, kill.delay = "start", random.Random(f"{SEED}|{kill.delay}").uniform(0.05, 1.5)
        bot.start()
        kill.fired = wait_for_trigger(kill, bot, database, smtp_sink)
        time.sleep(kill.delay)
        assert bot.running, f"the bot exited on its own:\n{bot.log_tail()}"
        kill.alive = time.monotonic() - bot.started
        bot.kill()
        kill.after, kill.sink_after = snapshot(database), sink_count(smtp_sink)

    bot.start()
    t_final = time.monotonic()
    waited = wait_until_done(imap_account, smtp_sink, database, len(backlog), bot, timeout=150)
    time.sleep(max(0.0, bot.started + 4 - time.monotonic()))  # a few idle cycles: nothing more may happen
    stopped = bot.stop()
    runtime = time.monotonic() - t_start

    v = verdict(imap_account, smtp_sink, backlog)
    messages = smtp_sink.messages()
    unrecorded_at_kills(kills, messages)
    copies: dict[str, set[bytes]] = {}
    for m in messages:
        copies.setdefault(" ".join(str(m.message["Message-ID"]).split()), set()).add(m.raw)
    sent_copies = Counter(" ".join(str(email.message_from_bytes(d)["Message-ID"]).split())
                          for d in imap_account.messages(SENT).values())
    final = snapshot(database)
    db = sqlite3.connect(f"file:{database}?mode=ro", uri=True)
    max_attempts = db.execute("SELECT MAX(attempts) FROM mails").fetchone()[0]
    resent = db.execute("SELECT COUNT(*) FROM replies WHERE attempts > 1").fetchone()[0]
    db.close()

    print(f"\ncrash: {len(backlog)} mails {dict(backlog.counts())}, {sum(m.replied for m in backlog.mails)} due a reply")
    print(f"crash: {len(kills)} SIGKILLs, {sum(k.mid_cycle for k in kills)} mid-cycle (mails recorded but not "
          f"filed, or replies in their SMTP transaction); by what the life was doing: "
          f"{dict(Counter(k.phase for k in kills))}; {sum(bool(k.after.replies['sending']) for k in kills)} "
          f"with replies marked sending")
    for i, k in enumerate(kills, 1):
        print(f"  kill {i:2}: {k.trigger:8} +{k.delay:.2f}s fired={k.fired:8} alive {k.alive:5.2f}s {k.phase:8} "
              f"mails {dict(k.after.mails)} replies {dict(k.after.replies)} sink {k.sink_after}"
              + (f"  {k.unrecorded} accepted by the server, not recorded" if k.unrecorded else ""))
    print(f"crash: losses {len(v.lost)}, misfiled {len(v.misfiled)}, filed twice {v.filed_twice}, "
          f"strays {v.strays}, held notes missing {len(v.notes_missing)} / extra {v.notes_extra}")
    print(f"crash: {sum(bool(k.after.replies['sending']) for k in kills)} kills left a reply 'sending'; "
          f"{sum(k.unrecorded for k in kills)} replies delivered again; copies in {SENT}: {sum(sent_copies.values())}")
    print(f"crash: replies {v.replies}, unanswered {len(v.unanswered)}, duplicates {v.duplicates} "
          f"({v.distinct_second_replies} with a different Message-ID), unwanted {len(v.unwanted)}; "
          f"replies the bot attempted more than once: {resent}; most attempts on one mail: {max_attempts}")
    print(f"crash: runtime {runtime:.1f} s (backlog and APPEND {t_ready - t_start:.1f} s, "
          f"final run {time.monotonic() - t_final:.1f} s of which {waited:.1f} s until done)")

    assert stopped == 0, bot.log_tail()
    assert len(kills) >= 20 and sum(k.mid_cycle for k in kills) >= 15
    # The backlog and the copy of each reply, all filed; nothing left to send.
    assert final.total == len(backlog) + sum(sent_copies.values()), final
    assert final.unfinished == 0 and final.pending_replies == 0, final
    assert not v.lost, f"lost: {v.lost}"
    assert not v.misfiled, f"misfiled: {v.misfiled}"
    assert v.filed_twice == 0 and v.strays == 0
    assert not v.notes_missing and v.notes_extra == 0
    assert not v.unanswered, f"unanswered: {v.unanswered}"
    assert not v.unwanted, f"unwanted replies: {v.unwanted}"
    # Never a second, different answer: a reply delivered again is the same message, byte for byte.
    assert v.distinct_second_replies == 0
    assert all(len(c) == 1 for c in copies.values()), "a reply delivered twice differs from its first copy"
    # A kill between the server's 250 to the final "." and the bot's commit of "sent" used to send
    # that reply again (SMTP has no way to ask the server): its copy in the shared mailbox now
    # shows it went out.
    assert v.duplicates == 0, f"{v.duplicates} replies went out twice: {[k.unrecorded for k in kills]}"
    # Every reply's copy is filed to the sent folder, once; no copy anywhere else (strays above).
    assert sent_copies == Counter(set(copies)), "each reply's copy once in the sent folder"


# ---- 1b. the ledger share under SIGKILL -------------------------------------------------------


LEDGER_KILLS = 8  # per day


def share_row(database: Path, day: str) -> tuple[str | None, int]:
    """(state of the share of `day`, lines marked as in it), read-only."""
    db = sqlite3.connect(f"file:{database}?mode=ro", uri=True)
    try:
        row = db.execute("SELECT state FROM ledger_shares WHERE day=?", (day,)).fetchone()
        lines = db.execute("SELECT COUNT(*) FROM ledger WHERE share_day=?", (day,)).fetchone()[0]
        return (row[0] if row else None), lines
    except sqlite3.OperationalError:  # not created yet
        return None, 0
    finally:
        db.close()


def test_sigkill_while_sharing_the_ledger_sends_one_share(office, smtp_sink, tmp_path):  # noqa: F811
    from helpers import private_copy

    state = private_copy(office, tmp_path)
    config = ledger_config(state, smtp_sink)
    database = state / "state.sqlite3"
    rng = random.Random(SEED)
    report = []
    # Friday's share (12 lines), then Tuesday's (the corporate order staff accepted that morning).
    for day, expected in (("2026-11-20", 12), ("2026-11-24", 1)):
        command = [sys.executable, "-m", "mailbot", "ledger", "--config", str(config), "--date", day, "--send"]
        lives = []
        for i in range(LEDGER_KILLS):
            how = ("random", "hang", "random", "queued")[i % 4]
            smtp_sink.set_mode("hang" if how == "hang" else "accept")
            before = len(smtp_sink.messages())
            proc = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                    start_new_session=True)
            deadline = time.monotonic() + 20
            if how == "random":  # anywhere from start-up to the end of the send
                time.sleep(rng.uniform(0.05, 0.6))
            else:  # the moment the share is queued, or the SMTP transaction it hangs in
                while time.monotonic() < deadline and proc.poll() is None:
                    st = share_row(database, day)[0]
                    if (how == "queued" and st is not None) or st == "sending":
                        break
                    time.sleep(0.002)
                if how == "hang":
                    time.sleep(0.3)  # inside DATA
            finished = proc.poll() is not None
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass  # it had finished
            proc.wait()
            after = share_row(database, day)[0]
            delivered = len(smtp_sink.messages()) - before
            # Delivered in this life, but killed before recording it: the next life sends it again.
            lives.append((how, finished, after, delivered, delivered > 0 and after != "sent"))
            if after == "sent":
                break
        smtp_sink.set_mode("accept")
        final = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=60)
        assert final.returncode == 0, final.stderr
        messages = [m for m in smtp_sink.messages() if str(m.message["Message-ID"]) == f"<ledger.{day.replace('-', '')}.mailbot@usen.co.jp>"]
        report.append(f"{day}: {len(lives)} SIGKILLs " + ", ".join(
            f"{how}{'(done)' if done else ''}→{st or '-'}{f' +{n}' if n else ''}" for how, done, st, n, _ in lives)
            + f"; {len(messages)} copies, {sum(u for *_, u in lives)} after a kill between the 250 and the commit"
            + f"; final run: {final.stdout.strip().splitlines()[0]}")
        assert share_row(database, day) == ("sent", expected)
        assert len(messages) == 1 + sum(u for *_, u in lives)
        assert len({m.raw for m in messages}) == 1, "a share sent again differs from its first copy"
        assert sorted(messages[0].rcpt_tos) == sorted(["usen-spot@fibergate.co.jp", "usen_spot@usen.co.jp"])
        # The files the command leaves are the ones FiberGate got.
        got = {p.get_filename(): p.get_payload(decode=True) for p in messages[0].message.iter_attachments()}
        assert {n: (state / "share" / n).read_bytes() for n in got} == got
    print("\nledger share: " + "\nledger share: ".join(report))
    db = sqlite3.connect(f"file:{database}?mode=ro", uri=True)
    assert db.execute("SELECT COUNT(*) FROM ledger WHERE share_day IS NULL").fetchone()[0] == 0
    assert db.execute("SELECT COUNT(*) FROM ledger_shares WHERE state='sent'").fetchone()[0] == 2
    db.close()


# ---- 2. a long run ---------------------------------------------------------------------------


def test_long_run_keeps_memory_and_open_files_flat(imap_account, smtp_sink, bot_process, tmp_path):
    t_start = time.monotonic()
    n = LONG_RUN_WAVES * LONG_RUN_WAVE_SIZE
    backlog = make_backlog(n, mix=MIX_LIGHT, seed=SEED + 1)
    config = crash_config(tmp_path, imap_account, smtp_sink, backlog)
    database = tmp_path / "state.sqlite3"
    bot = bot_process(config)
    bot.start()
    samples = []  # (mails so far, RSS of the bot kB, RSS of its children kB, fds of the bot, processes)
    try:
        for w in range(LONG_RUN_WAVES):
            wave = backlog.mails[w * LONG_RUN_WAVE_SIZE:(w + 1) * LONG_RUN_WAVE_SIZE]
            append_all(imap_account, wave)
            wait_until_done(imap_account, smtp_sink, database, (w + 1) * LONG_RUN_WAVE_SIZE, bot, timeout=120)
            tree = bot.tree()
            samples.append(((w + 1) * LONG_RUN_WAVE_SIZE, rss_kb(tree[0]), sum(rss_kb(p) for p in tree[1:]),
                            resting_fds(tree[0]), len(tree)))
    finally:
        code = bot.stop() if bot.running else None
    runtime = time.monotonic() - t_start
    assert code == 0, bot.log_tail()

    v = verdict(imap_account, smtp_sink, backlog)
    print(f"\nlong run: {n} mails {dict(backlog.counts())} in {LONG_RUN_WAVES} waves, {runtime:.1f} s")
    print("  mails   RSS bot   RSS children   fds   processes")
    for mails, rss, children, fds, procs in samples:
        print(f"  {mails:5}  {rss / 1024:7.1f} MB  {children / 1024:9.1f} MB  {fds:5}  {procs:5}")
    warm = samples[1:]
    slope = _slope([m for m, *_ in warm], [rss for _, rss, *_ in warm])
    print(f"long run: the bot's RSS after the first wave grows {slope:.2f} kB per mail")
    print(f"long run: losses {len(v.lost)}, misfiled {len(v.misfiled)}, duplicates {v.duplicates}, "
          f"unanswered {len(v.unanswered)}, replies {v.replies}")
    assert v.ok, v

    # Flat: after a warm-up wave, the last third's average memory is within +20% (or +30 MB) of
    # the first third's, and the descriptors move by no more than a few.
    third = max(1, len(warm) // 3)
    total = [rss + children for _, rss, children, _, _ in warm]
    first, last = sum(total[:third]) / third, sum(total[-third:]) / third
    assert last <= max(first * 1.2, first + 30 * 1024), f"RSS grew from {first / 1024:.1f} to {last / 1024:.1f} MB"
    fds = [f for _, _, _, f, _ in warm]
    assert max(fds) - min(fds) <= 2, f"open descriptors {fds}"


def _slope(xs: list[float], ys: list[float]) -> float:
    """Least-squares slope of ys over xs."""
    n = len(xs)
    if n < 2:
        return 0.0
    mx, my = sum(xs) / n, sum(ys) / n
    den = sum((x - mx) ** 2 for x in xs)
    return sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / den if den else 0.0

"""Benchmarks of issue 7, on a real Dovecot and SMTP server on loopback: one command, one table.

    .venv/bin/python bench/run.py [--quick] [--only abcde] [--profile]

a. throughput: a backlog of 1,000 distinct mails (60 % equipment orders with a one-page encrypted
   form, 10 % terminations with an encrypted form, 30 % body-only kinds; tests/backlog.py),
   APPENDed to a fresh Dovecot INBOX, processed by
     - mailbot: `mailbot poll --config F` (the real CLI, a subprocess: decide, reply, file);
     - naive:   bench/naive.py, the script a person would write (imaplib one mail at a time,
                pikepdf + pdfplumber, a new smtplib connection per reply, a MOVE per mail);
     - floor:   bench/floor.py, one batched FETCH and every PDF read in-process, one after the
                other, nothing written.
   Each contender starts from its own freshly appended mailbox (a new Dovecot user) and an empty
   SMTP sink; the times are wall clock of the subprocess (interpreter start included).
   Ratios: naive / mailbot (target >= 3), mailbot / floor (target <= 0.75).
b. reaction time while `mailbot run` runs (IMAP IDLE wakes it; poll_interval 30 s as the safety
   net): mails APPENDed one at a time, 2-5 s apart; from the APPEND to the reply's arrival at the
   SMTP sink; p50 and p95 (target p95 <= 1 s, issue 19).
c. peak memory of `mailbot poll` on the backlog of (a) with 5 % of the mails carrying an extra
   15 MB attachment (random bytes, application/octet-stream): the PSS of the poll process and its
   children (PDF forkserver, readers) summed, each shared page counted once, sampled every 50 ms
   from /proc (target <= 300 MB); also the RSS sum (which counts the pages the readers share with
   their forkserver three times) and the poll process's own high-water mark.
d. importing a 1,000,000-row CP932 UNIS extract (bench/unis_import.py) against the sqlite3
   command-line `.import` of the same rows (best of 3; target <= 1.2x, issue 19).
f. the everyday mix of issue 19 (500 mails: 60 % orders and 10 % terminations with the samples' own
   forms, 30 % body-only, about a fifth held), the three contenders as in (a); targets naive /
   mailbot >= 3, mailbot / floor <= 0.6; peak memory <= 200 MB, from one more run sampled as in (c)
   (PSS of the poll process and its children; the RSS sum beside it).
e. one-page encrypted form through the PDF sandbox (`mailbot.forms.sandbox.read_pdf`): median and
   p95 of 200 reads; for comparison the same reads in-process (mailbot's reader, and the floor's
   pikepdf + pdfplumber extract_text).

--quick: 100 mails, 5 reaction mails at a 10 s poll interval, 100,000 rows, 30 reads.
Prints the table as text and as Markdown, and writes everything to bench/results.json
(bench/results-quick.json with --quick).  Needs Dovecot (apt-get install dovecot-imapd) and the
sqlite3 command.  The PDF sandbox uses a forkserver: this module's work is under __main__.
"""

from __future__ import annotations

import argparse
import email
import json
import os
import platform
import random
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime
from email.mime.application import MIMEApplication
from email.parser import BytesHeaderParser
from email.policy import compat32
from pathlib import Path
from typing import Self

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "bench"
for _p in (ROOT, ROOT / "tests", BENCH):
    if str(_p) not in sys.path:
        sys.path.insert(0, str(_p))

MIX = {"orders": 0.6, "terminations": 0.1, "body": 0.3}
# f. the everyday mix (issue 19): 60 % equipment orders and 10 % terminations with the forms of
# the samples' own producers (LibreOffice-like, 35–70 KB, fonts embedded), 30 % body-only kinds
# of which two thirds are held (the outsider, the question no kind matches): about a fifth held.
EVERYDAY = {"orders": 60, "terminations": 10, "outside_gmail": 10, "unknown_subject": 10, "cancellation": 2,
            "contract_change": 2, "router_not_removed": 2, "relocation": 2, "termination_withdrawal": 2}
FULL = {"mails": 1000, "everyday": 500, "repeat": 3, "big_share": 0.05, "big_mb": 15, "reaction": 20, "interval": 30,
        "rows": 1_000_000, "unis_repeat": 3, "reads": 200}
QUICK = {"mails": 100, "everyday": 100, "repeat": 1, "big_share": 0.05, "big_mb": 15, "reaction": 5, "interval": 10,
         "rows": 100_000, "unis_repeat": 1, "reads": 30}
PAGE = os.sysconf("SC_PAGE_SIZE")
MB = 1024 * 1024


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')} load {os.getloadavg()[0]:.2f}] {msg}", file=sys.stderr, flush=True)


def loadavg() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def child_env() -> dict[str, str]:
    """The contenders' environment: the mailbot package next to this bench/ directory comes first
    (an editable install may point elsewhere, e.g. when this runs in a git worktree)."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), *filter(None, [env.get("PYTHONPATH")])])
    return env


def mailbot_cmd() -> list[str]:
    """The installed console script (the real CLI), else `python -m mailbot`."""
    script = Path(sys.executable).parent / "mailbot"
    return [str(script)] if script.exists() else [sys.executable, "-m", "mailbot"]


# ------------------------------------------------------------------------------ mailboxes


def append_all(account, mails) -> float:
    """APPEND (bytes, internaldate) pairs to the INBOX over one connection; returns seconds."""
    t = time.perf_counter()
    client = account.client()
    try:
        for data, received in mails:
            client.append("INBOX", data, msg_time=received)
    finally:
        client.logout()
    return time.perf_counter() - t


def sink_count(sink) -> int:
    folder = sink.root / "messages"
    return len(list(folder.glob("*.eml"))) if folder.exists() else 0


# ------------------------------------------------------------------------------ memory


class MemorySampler:
    """Every `period` s: the process `root` and all its descendants, from /proc; peaks of the
    summed RSS and PSS, and of the root's own RSS and VmHWM."""

    def __init__(self, root: int, period: float = 0.05, pss: bool = True):
        self.root = root
        self.period = period
        self.pss = pss  # smaps_rollup is costly to read: only where the memory is the measure
        self.peak_rss = self.peak_pss = self.peak_root_rss = self.root_hwm = 0
        self.peak_procs = 0
        self.samples = 0
        self.peak_at = 0.0
        self.per_second: dict[int, int] = {}  # second → max summed RSS
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="rss-sampler", daemon=True)
        self._t0 = time.monotonic()
        self._child_ticks: dict[int, int] = {}  # last seen CPU ticks of each direct child

    def children_cpu(self) -> float:
        """CPU seconds of the root's descendants (and what they reaped), which the root never
        waits for (the forkserver, the readers); as last seen, up to one period before they ended."""
        return sum(self._child_ticks.values()) / os.sysconf("SC_CLK_TCK")

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()

    def _tree(self) -> list[int]:
        """The root and its descendants, from the children lists of each process's threads (a
        thread's children are listed under that thread: the forkserver is started by a reader
        thread); a few small reads, not a scan of all of /proc, so the sampler takes no core
        from what it measures.  Notes each descendant's CPU ticks as last seen."""
        out, todo = [], [self.root]
        while todo:
            pid = todo.pop()
            out.append(pid)
            try:
                tids = os.listdir(f"/proc/{pid}/task")
            except OSError:
                continue
            for tid in tids:
                try:
                    with open(f"/proc/{pid}/task/{tid}/children", "rb") as f:
                        todo.extend(int(k) for k in f.read().split())
                except (OSError, ValueError):
                    continue
            if pid != self.root:
                try:
                    with open(f"/proc/{pid}/stat", "rb") as f:
                        fields = f.read().rpartition(b")")[2].split()
                except OSError:
                    continue
                # utime + stime, as last seen (a reader replaced during the run keeps its count;
                # the cutime of its reaper would count it twice)
                self._child_ticks[pid] = int(fields[11]) + int(fields[12])
        return out

    def _read(self, pid: int) -> tuple[int, int, int]:
        """(rss, pss, hwm) in bytes; zeros for a process that ended meanwhile."""
        rss = pss = hwm = 0
        try:
            with open(f"/proc/{pid}/statm", "rb") as f:
                rss = int(f.read().split()[1]) * PAGE
            if self.pss:
                with open(f"/proc/{pid}/smaps_rollup", "rb") as f:
                    for line in f:
                        if line.startswith(b"Pss:"):
                            pss = int(line.split()[1]) * 1024
                            break
            with open(f"/proc/{pid}/status", "rb") as f:
                for line in f:
                    if line.startswith(b"VmHWM:"):
                        hwm = int(line.split()[1]) * 1024
                        break
        except (OSError, ValueError, IndexError):
            pass
        return rss, pss, hwm

    def _run(self) -> None:
        while not self._stop.is_set():
            pids = self._tree()
            total_rss = total_pss = 0
            for pid in pids:
                rss, pss, hwm = self._read(pid)
                total_rss += rss
                total_pss += pss
                if pid == self.root:
                    self.peak_root_rss = max(self.peak_root_rss, rss)
                    self.root_hwm = max(self.root_hwm, hwm)
            self.samples += 1
            now = time.monotonic() - self._t0
            if total_rss > self.peak_rss:
                self.peak_rss, self.peak_at = total_rss, now
            self.peak_pss = max(self.peak_pss, total_pss)
            self.peak_procs = max(self.peak_procs, len(pids))
            sec = int(now)
            self.per_second[sec] = max(self.per_second.get(sec, 0), total_rss)
            self._stop.wait(self.period)

    def result(self) -> dict:
        return {"peak_rss_mb": round(self.peak_rss / MB, 1), "peak_pss_mb": round(self.peak_pss / MB, 1),
                "peak_poll_process_rss_mb": round(self.peak_root_rss / MB, 1),
                "poll_process_vmhwm_mb": round(self.root_hwm / MB, 1), "peak_processes": self.peak_procs,
                "peak_at_s": round(self.peak_at, 2), "samples": self.samples,
                "rss_mb_per_second": [round(self.per_second[s] / MB, 1) for s in sorted(self.per_second)]}


# ------------------------------------------------------------------------------ contenders


def run_process(cmd: list[str], log_path: Path, timeout: float = 3600, memory: bool = False) -> dict:
    """Run a contender in a session of its own: wall-clock seconds, CPU seconds (its own and its
    children's; the servers' not), exit code, stdout, peak memory (`memory`: sampled every 50 ms
    with PSS, for (c); else every 250 ms, RSS only, to take no CPU from a timed run)."""
    with open(log_path, "wb") as err:
        t = time.perf_counter()
        proc = subprocess.Popen(cmd, cwd=ROOT, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=err,
                                start_new_session=True, env=child_env())
        with MemorySampler(proc.pid, period=0.05 if memory else 0.25, pss=memory) as sampler:
            timer = threading.Timer(timeout, _killpg, (proc.pid,))
            timer.start()
            out = proc.stdout.read()
            _, status, usage = os.wait4(proc.pid, 0)
            seconds = time.perf_counter() - t
            timer.cancel()
    proc.returncode = os.waitstatus_to_exitcode(status)
    proc.stdout.close()
    _killpg(proc.pid)  # whatever the contender left behind (e.g. a forkserver on its way out)
    text = out.decode("utf-8", "replace")
    own, children = usage.ru_utime + usage.ru_stime, sampler.children_cpu()
    result = {"seconds": round(seconds, 2), "cpu_s": round(own + children, 2), "cpu_own_s": round(own, 2),
              "cpu_children_s": round(children, 2), "returncode": proc.returncode,
              "stdout_tail": text.strip().splitlines()[-1:],
              "stderr_tail": log_path.read_text("utf-8", "replace").strip().splitlines()[-5:],
              "memory": sampler.result()}
    if text.strip().startswith("{"):
        result["report"] = json.loads(text.strip().splitlines()[-1])
    return result


def _killpg(pgid: int) -> None:
    try:
        os.killpg(pgid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def run_bot(dovecot, sink, backlog, mails, work: Path, name: str, profile: Path | None = None,
            memory: bool = False) -> dict:
    from test_crash import crash_config

    account = dovecot.add_user()
    sink.clear()
    appended = append_all(account, mails)
    config = crash_config(work / name, account, sink, backlog)
    cmd = mailbot_cmd() + ["poll", "--config", str(config)]
    if profile:
        cmd = [sys.executable, "-m", "cProfile", "-o", str(profile), "-m", "mailbot", "poll", "--config", str(config)]
    log(f"{name}: {len(mails)} mails appended in {appended:.1f} s; {' '.join(cmd[-4:])}")
    result = run_process(cmd, work / f"{name}.log", memory=memory)
    result.update(appended_s=round(appended, 2), replies=sink_count(sink), inbox_left=len(account.uids("INBOX")),
                  replies_due=sum(m.replied for m in backlog.mails))
    log(f"{name}: {result['seconds']:.1f} s, rc {result['returncode']}, {result['replies']} replies, "
        f"{result['inbox_left']} left in the INBOX; {result['stdout_tail']}")
    return result


def run_script(dovecot, sink, mails, work: Path, name: str, script: str, extra: list[str]) -> dict:
    account = dovecot.add_user()
    sink.clear()
    appended = append_all(account, mails)
    cmd = [sys.executable, str(BENCH / script), "--imap", f"{account.host}:{account.port}",
           "--user", account.username, "--password", account.password, *extra]
    log(f"{name}: {len(mails)} mails appended in {appended:.1f} s")
    result = run_process(cmd, work / f"{name}.log")
    result.update(appended_s=round(appended, 2), replies=sink_count(sink), inbox_left=len(account.uids("INBOX")))
    log(f"{name}: {result['seconds']:.1f} s, rc {result['returncode']}, {result.get('report')}")
    return result


# ------------------------------------------------------------------------------ a and c


def with_attachment(data: bytes, size: int, seed: int) -> bytes:
    """The mail with one more part: `size` random bytes as application/octet-stream (base64)."""
    msg = email.message_from_bytes(data, policy=compat32)
    part = MIMEApplication(random.Random(seed).randbytes(size), "octet-stream")
    part.add_header("Content-Disposition", "attachment", filename=f"site_photos_{seed}.zip")
    msg.attach(part)
    return msg.as_bytes(policy=compat32.clone(linesep="\r\n"))


def big_mails(backlog, share: float, size_mb: int, seed: int = 7):
    """(bytes, internaldate) of the backlog, `share` of the multipart/mixed mails (the ones with a
    form) carrying an extra attachment; built one at a time while appending."""
    mixed = [i for i, m in enumerate(backlog.mails)
             if email.message_from_bytes(m.data, policy=compat32).get_content_type() == "multipart/mixed"]
    big = set(random.Random(seed).sample(mixed, min(len(mixed), round(share * len(backlog.mails)))))

    class Lazy:
        count = len(big)

        def __len__(self) -> int:
            return len(backlog.mails)

        def __iter__(self):
            for i, m in enumerate(backlog.mails):
                yield (with_attachment(m.data, size_mb * MB, i) if i in big else m.data), m.received

    return Lazy()


def bench_throughput(dovecot, sink, sizes: dict, work: Path, profile: bool, *, mix: dict = MIX,
                     producer: str | None = "reportlab", n: int | None = None, name: str = "a") -> tuple[dict, object]:
    from backlog import make_backlog

    t = time.perf_counter()
    backlog = make_backlog(n or sizes["mails"], mix=mix, seed=1, producer=producer)
    log(f"{name}: backlog of {len(backlog)} mails built in {time.perf_counter() - t:.1f} s: {dict(backlog.counts())}")
    mails = [(m.data, m.received) for m in backlog.mails]
    out: dict = {"mails": len(mails), "mix": mix, "decisions": dict(backlog.counts()),
                 "bytes": sum(len(d) for d, _ in mails), "repeat": sizes["repeat"], "load_before": loadavg()}
    extract, _ = backlog.write_reference(work / "naive-reference")
    runs: dict[str, list[dict]] = {"mailbot": [], "naive": [], "floor": []}
    for i in range(sizes["repeat"]):  # interleaved, so that the other load on the machine hits all alike
        runs["mailbot"].append(run_bot(dovecot, sink, backlog, mails, work, f"{name}-mailbot-{i}"))
        runs["naive"].append(run_script(dovecot, sink, mails, work, f"{name}-naive-{i}", "naive.py",
                                        ["--smtp", f"{sink.host}:{sink.port}", "--unis", str(extract)]))
        runs["floor"].append(run_script(dovecot, sink, mails, work, f"{name}-floor-{i}", "floor.py", []))
        for r in (runs["mailbot"][-1], runs["naive"][-1], runs["floor"][-1]):
            r["load_after"] = loadavg()
    for contender, rs in runs.items():
        best = min(rs, key=lambda r: r["seconds"])
        out[contender] = {**best, "runs_s": [r["seconds"] for r in rs], "runs_cpu_s": [r["cpu_s"] for r in rs],
                          "peak_rss_mb": max(r["memory"]["peak_rss_mb"] for r in rs)}
        out[contender]["memory"] = best["memory"]
    out["naive_over_mailbot"] = round(out["naive"]["seconds"] / out["mailbot"]["seconds"], 2)
    out["mailbot_over_floor"] = round(out["mailbot"]["seconds"] / out["floor"]["seconds"], 2)
    out["cpu_naive_over_mailbot"] = round(min(out["naive"]["runs_cpu_s"]) / min(out["mailbot"]["runs_cpu_s"]), 2)
    out["cpu_mailbot_over_floor"] = round(min(out["mailbot"]["runs_cpu_s"]) / min(out["floor"]["runs_cpu_s"]), 2)
    if name == "f":  # its memory: one more run, sampled with PSS (costly to read: not in the timed runs)
        out["memory_run"] = run_bot(dovecot, sink, backlog, mails, work, f"{name}-memory", memory=True)
    if profile:
        prof = Path(tempfile.gettempdir()) / f"mailbot-bench-poll-{name}.prof"  # kept after the run
        out["profile"] = run_bot(dovecot, sink, backlog, mails, work, f"{name}-profile", profile=prof)
        out["profile"]["top"] = profile_summary(prof)
        log(f"{name}: profile of the poll written to {prof}")
    return out, backlog


def profile_summary(path: Path, limit: int = 40) -> list[str]:
    import io
    import pstats

    buf = io.StringIO()
    pstats.Stats(str(path), stream=buf).sort_stats("cumulative").print_stats(limit)
    print(buf.getvalue(), file=sys.stderr)
    return buf.getvalue().splitlines()


def bench_memory(dovecot, sink, backlog, sizes: dict, work: Path) -> dict:
    mails = big_mails(backlog, sizes["big_share"], sizes["big_mb"])
    out = {"mails": len(mails), "big_mails": mails.count, "big_mb": sizes["big_mb"], "load_before": loadavg()}
    out["mailbot"] = run_bot(dovecot, sink, backlog, mails, work, "c-mailbot", memory=True)
    out["load_after"] = loadavg()
    return out


# ------------------------------------------------------------------------------ b


def bench_reaction(dovecot, sink, sizes: dict, work: Path) -> dict:
    from backlog import make_backlog
    from test_crash import crash_config

    n, interval = sizes["reaction"], sizes["interval"]
    backlog = make_backlog(3 * (n + 1), mix=MIX, seed=2, start=100_000)
    due = [m for m in backlog.mails if m.replied][: n + 1]
    account = dovecot.add_user()
    sink.clear()
    config = crash_config(work / "b", account, sink, backlog, poll_interval=interval)
    seen: dict[str, float] = {}  # In-Reply-To → arrival (the sink's clock: time.time())
    done: set[str] = set()

    def arrivals() -> dict[str, float]:
        folder = sink.root / "messages"
        for meta in sorted(folder.glob("*.json")) if folder.exists() else ():
            if meta.name in done:
                continue
            eml = meta.with_suffix(".eml")
            if not eml.exists():
                continue
            head = BytesHeaderParser(policy=compat32).parsebytes(eml.read_bytes())
            source = " ".join(str(head["In-Reply-To"] or "").split())
            seen.setdefault(source, json.loads(meta.read_text("utf-8"))["received_at"])
            done.add(meta.name)
        return seen

    def wait_reply(message_id: str, deadline: float) -> float | None:
        while time.time() < deadline:
            if message_id in arrivals():
                return seen[message_id]
            time.sleep(0.05)
        return None

    log_path = work / "b-mailbot-run.log"
    with open(log_path, "wb") as err:
        proc = subprocess.Popen(mailbot_cmd() + ["run", "--config", str(config)], cwd=ROOT, stdin=subprocess.DEVNULL,
                                stdout=err, stderr=err, start_new_session=True, env=child_env())
    out: dict = {"mails": n, "poll_interval_s": interval, "load_before": loadavg()}
    try:
        warm = due[0]
        t0 = time.time()
        account.append("INBOX", warm.data, warm.received)
        got = wait_reply(warm.message_id, t0 + 2 * interval + 60)
        out["warmup_s"] = round(got - t0, 2) if got else None
        log(f"b: `mailbot run` every {interval} s; warm-up reply after {out['warmup_s']} s")
        rng = random.Random(3)
        appended: list[tuple[str, float]] = []
        for m in due[1:]:
            time.sleep(rng.uniform(2.0, 5.0))
            t = time.time()
            account.append("INBOX", m.data, m.received)
            appended.append((m.message_id, t))
        deadline = time.time() + 2 * interval + 60
        while time.time() < deadline and not all(mid in arrivals() for mid, _ in appended):
            time.sleep(0.1)
        latencies = [seen[mid] - t for mid, t in appended if mid in seen]
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            pass
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait(10)
    out.update(latencies_s=[round(x, 2) for x in latencies], answered=len(latencies), missing=n - len(latencies),
               load_after=loadavg())
    if latencies:
        out.update(p50_s=round(percentile(latencies, 50), 2), p95_s=round(percentile(latencies, 95), 2),
                   min_s=round(min(latencies), 2), max_s=round(max(latencies), 2))
    log(f"b: {out.get('answered')} answered, p50 {out.get('p50_s')} s, p95 {out.get('p95_s')} s")
    return out


def percentile(values: list[float], p: float) -> float:
    """Linear interpolation between closest ranks (numpy's default)."""
    s = sorted(values)
    k = (len(s) - 1) * p / 100
    lo = int(k)
    hi = min(lo + 1, len(s) - 1)
    return s[lo] + (s[hi] - s[lo]) * (k - lo)


# ------------------------------------------------------------------------------ d


def bench_unis(sizes: dict, work: Path) -> dict:
    import unis_import

    rows, repeat = sizes["rows"], sizes["unis_repeat"]
    src, utf8 = work / "unis_cp932.csv", work / "unis_utf8.csv"
    t = time.perf_counter()
    unis_import.generate(src, rows)
    unis_import.to_utf8(src, utf8)
    log(f"d: {rows:,} rows generated in {time.perf_counter() - t:.1f} s")

    out: dict = {"rows": rows, "repeat": repeat, "cp932_mb": round(src.stat().st_size / 1e6, 1),
                 "load_before": loadavg()}
    for key, fn in (("sqlite3_cli_s", lambda: unis_import.sqlite_cli_import(utf8, work / "cli.sqlite3", False)),
                    ("sqlite3_cli_index_s", lambda: unis_import.sqlite_cli_import(utf8, work / "cli.sqlite3", True)),
                    ("mailbot_s", lambda: unis_import.mailbot_import(src, work / "mailbot-unis.sqlite3", rows)),
                    ("mailbot_in_process_s",
                     lambda: unis_import.mailbot_import(src, work / "mailbot-unis.sqlite3", rows, command=False))):
        runs = [fn() for _ in range(repeat)]
        out[key] = round(min(runs), 2)
        out[key.replace("_s", "_runs_s")] = [round(r, 2) for r in runs]
    out["ratio"] = round(out["mailbot_s"] / out["sqlite3_cli_s"], 2)
    out["ratio_index"] = round(out["mailbot_s"] / out["sqlite3_cli_index_s"], 2)
    out["load_after"] = loadavg()
    for p in (src, utf8, work / "mailbot-unis.sqlite3", work / "cli.sqlite3"):
        p.unlink(missing_ok=True)
    log(f"d: mailbot {out['mailbot_s']} s, sqlite3 CLI {out['sqlite3_cli_s']} s: {out['ratio']}x")
    return out


# ------------------------------------------------------------------------------ e


def form_pdfs(backlog, limit: int = 20) -> list[bytes]:
    """The one-page encrypted application forms of the backlog's equipment orders."""
    from backlog import GROUPS

    out = []
    for m in backlog.mails:
        if m.sample not in GROUPS["orders"]:
            continue
        for part in email.message_from_bytes(m.data, policy=compat32).walk():
            if part.get_content_type() == "application/pdf":
                out.append(part.get_payload(decode=True))
        if len(out) >= limit:
            break
    return out


def forkserver_cpu() -> float:
    """CPU seconds of the PDF sandbox's forkserver, the readers it reaped and the readers alive
    (they are reused, so most live until the end; 0 before it runs)."""
    from multiprocessing import forkserver

    pid = getattr(forkserver._forkserver, "_forkserver_pid", None)
    if not pid:
        return 0.0
    sampler = MemorySampler(pid, pss=False)
    sampler._tree()  # notes the readers' utime + stime
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            fields = f.read().rpartition(b")")[2].split()
    except OSError:
        return 0.0
    return sum(int(x) for x in fields[11:15]) / os.sysconf("SC_CLK_TCK") + sampler.children_cpu()


def bench_sandbox(backlog, sizes: dict) -> dict:
    import naive

    from mailbot.config import DEFAULT_RULES
    from mailbot.forms.model import PdfStatus
    from mailbot.forms.read import read_form
    from mailbot.forms.sandbox import read_pdf

    if backlog is None:
        from backlog import make_backlog

        backlog = make_backlog(40, mix={"orders": 1}, seed=1)
    pdfs = form_pdfs(backlog)
    n = sizes["reads"]
    out: dict = {"reads": n, "distinct_pdfs": len(pdfs), "pdf_kb": round(statistics.mean(map(len, pdfs)) / 1024, 1),
                 "load_before": loadavg()}
    t = time.perf_counter()
    first = read_pdf(pdfs[0], "application", password="uspot", rules_dir=DEFAULT_RULES)
    out["first_read_s"] = round(time.perf_counter() - t, 3)  # the forkserver starts
    assert first.status is PdfStatus.READ, first

    def timed(fn) -> tuple[list[float], float]:
        """Wall-clock seconds of each call; CPU seconds per call, this process's and the readers'
        (children of the forkserver, which reaps them)."""
        times = []
        cpu0 = time.process_time() + forkserver_cpu()
        for i in range(n):
            t = time.perf_counter()
            fn(pdfs[i % len(pdfs)])
            times.append(time.perf_counter() - t)
        return times, (time.process_time() + forkserver_cpu() - cpu0) / n

    statuses = []
    sandbox = timed(lambda d: statuses.append(read_pdf(d, "application", password="uspot",
                                                       rules_dir=DEFAULT_RULES).status))
    assert all(s is PdfStatus.READ for s in statuses), set(statuses)
    inproc = timed(lambda d: read_form(d, "application", password="uspot", max_pages=30, rules_dir=DEFAULT_RULES))
    text = timed(lambda d: naive.read_pdf_text(d, "uspot"))
    for key, (times, cpu) in (("sandbox", sandbox), ("in_process", inproc), ("extract_text", text)):
        out[key] = {"p50_ms": round(percentile(times, 50) * 1000, 1), "p95_ms": round(percentile(times, 95) * 1000, 1),
                    "mean_ms": round(statistics.mean(times) * 1000, 1), "cpu_ms": round(cpu * 1000, 1)}
    out["load_after"] = loadavg()
    log(f"e: sandbox p50 {out['sandbox']['p50_ms']} ms p95 {out['sandbox']['p95_ms']} ms; "
        f"in-process p50 {out['in_process']['p50_ms']} ms; extract_text p50 {out['extract_text']['p50_ms']} ms")
    return out


# ------------------------------------------------------------------------------ the table


def verdict(ok: bool | None) -> str:
    return "—" if ok is None else ("yes" if ok else "**no**")


def table(results: dict) -> list[tuple[str, str, str, str, str]]:
    rows: list[tuple[str, str, str, str, str]] = []
    for letter, floor_target in (("a", 0.75), ("f", 0.6)):
        a = results.get(letter)
        if not a:
            continue
        size = f"{a['mails']:,} mails" + (f", best of {a['repeat']}" if a["repeat"] > 1 else "")
        mix = "" if letter == "a" else " (everyday mix)"
        for key, label in (("mailbot", "mailbot poll (decide, reply, file)"),
                           ("naive", "naive script (one mail at a time)"),
                           ("floor", "floor (batched FETCH, PDFs read in-process)")):
            r = a[key]
            rows.append((f"{letter}. {label}{mix}", size,
                         f"{r['seconds']:.1f} s (CPU {min(r['runs_cpu_s']):.0f} s, peak RSS {r['peak_rss_mb']:.0f} MB)",
                         "", ""))
        rows.append((f"{letter}. naive / mailbot (CPU)", "",
                     f"{a['naive_over_mailbot']:.2f} ({a['cpu_naive_over_mailbot']:.2f})", "≥ 3",
                     verdict(a["naive_over_mailbot"] >= 3)))
        rows.append((f"{letter}. mailbot / floor (CPU)", "",
                     f"{a['mailbot_over_floor']:.2f} ({a['cpu_mailbot_over_floor']:.2f})", f"≤ {floor_target}",
                     verdict(a["mailbot_over_floor"] <= floor_target)))
        if "memory_run" in a:  # PSS: each page the readers share with their forkserver counted once
            m = a["memory_run"]["memory"]
            rows.append((f"{letter}. peak memory of mailbot poll + children: PSS (RSS sum)", size,
                         f"{m['peak_pss_mb']:.0f} MB ({m['peak_rss_mb']:.0f} MB)", "≤ 200 MB",
                         verdict(m["peak_pss_mb"] <= 200)))
    b = results.get("b")
    if b:
        size = f"{b['mails']} mails, poll every {b['poll_interval_s']} s"
        if "p95_s" in b:
            rows.append(("b. reaction, APPEND → reply at the sink (p50 / p95)", size,
                         f"{b['p50_s']:.1f} s / {b['p95_s']:.1f} s (min {b['min_s']:.1f} s)"
                         + (f", {b['missing']} unanswered" if b["missing"] else ""),
                         "p95 ≤ 1 s", verdict(b["p95_s"] <= 1 and not b["missing"])))
        else:
            rows.append(("b. reaction", size, "no reply arrived", "p95 ≤ 1 s", verdict(False)))
    c = results.get("c")
    if c:
        m = c["mailbot"]["memory"]
        size = f"{c['mails']:,} mails, {c['big_mails']} with +{c['big_mb']} MB"
        # PSS: the memory the process tree takes, each page it shares counted once; the RSS sum
        # counts the pages the readers share with their forkserver three times.
        rows.append(("c. peak memory, poll process + children: PSS (RSS sum)", size,
                     f"{m['peak_pss_mb']:.0f} MB ({m['peak_rss_mb']:.0f} MB)", "≤ 300 MB", verdict(m["peak_pss_mb"] <= 300)))
        rows.append(("c. mailbot poll, time", size, f"{c['mailbot']['seconds']:.1f} s", "", ""))
    d = results.get("d")
    if d:
        size = f"{d['rows']:,} rows"
        rows.append(("d. sqlite3 CLI .import (UTF-8 copy)", size, f"{d['sqlite3_cli_s']:.2f} s", "", ""))
        rows.append(("d. sqlite3 CLI .import + CREATE INDEX", size, f"{d['sqlite3_cli_index_s']:.2f} s", "", ""))
        rows.append(("d. mailbot UNIS import (CP932, checked, indexed)", size, f"{d['mailbot_s']:.2f} s", "", ""))
        if "mailbot_in_process_s" in d:
            rows.append(("d. mailbot, rows stored in-process (no sqlite3 command)", size,
                         f"{d['mailbot_in_process_s']:.2f} s", "", ""))
        rows.append(("d. mailbot / sqlite3 CLI", "", f"{d['ratio']:.2f}", "≤ 1.2", verdict(d["ratio"] <= 1.2)))
    e = results.get("e")
    if e:
        size = f"{e['reads']} reads"
        for key, label in (("sandbox", "e. form read through the sandbox, p50 / p95 (CPU)"),
                           ("in_process", "e. same reader in-process, p50 / p95 (CPU)"),
                           ("extract_text", "e. floor's pikepdf + extract_text, p50 / p95 (CPU)")):
            r = e[key]
            rows.append((label, size, f"{r['p50_ms']:.0f} ms / {r['p95_ms']:.0f} ms ({r['cpu_ms']:.0f} ms)", "", ""))
    return rows


HEAD = ("measure", "size", "result", "target", "met")


def print_tables(results: dict) -> str:
    rows = table(results)
    widths = [max(len(r[i]) for r in [HEAD, *rows]) for i in range(5)]
    print()
    for r in [HEAD, *rows]:
        print("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip())
    env = results["env"]
    note = (f"{env['cpus']} cores, load average {env['load_start'][0]:.2f} at the start and "
            f"{env['load_end'][0]:.2f} at the end (1 min); {env['date']}, commit {env['commit']}")
    md = "\n".join(["| " + " | ".join(HEAD) + " |", "|" + "---|" * 5,
                    *("| " + " | ".join(r) + " |" for r in rows)]) + f"\n\n{note}\n"
    print(f"\n{note}\n\nMarkdown:\n\n{md}")
    return md


def environment() -> dict:
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True,
                            check=False).stdout.strip()
    dirty = subprocess.run(["git", "status", "--porcelain", "--", "mailbot"], cwd=ROOT, capture_output=True,
                           text=True, check=False).stdout.strip()
    dovecot = subprocess.run(["/usr/sbin/dovecot", "--version"], capture_output=True, text=True,
                             check=False).stdout.strip()
    return {"date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
            "commit": commit + (" + uncommitted mailbot/ changes" if dirty else ""),
            "cpus": os.cpu_count(), "python": platform.python_version(), "dovecot": dovecot,
            "machine": platform.machine(), "load_start": loadavg()}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="small sizes for a fast check")
    p.add_argument("--only", default="abcdef", help="which measurements (letters, default abcdef)")
    p.add_argument("--profile", action="store_true",
                   help="also run (a)'s poll once more under cProfile (poll.prof in the work directory; "
                        "the summary is printed and kept in the results)")
    p.add_argument("--mails", type=int)
    p.add_argument("--repeat", type=int, help="runs of each contender in (a), interleaved; the best counts")
    p.add_argument("--rows", type=int)
    p.add_argument("--reads", type=int)
    p.add_argument("--reaction", type=int, help="mails appended one at a time in (b)")
    p.add_argument("--interval", type=int, help="poll_interval of `mailbot run` in (b)")
    p.add_argument("--json", type=Path, help="where to write the results (default bench/results.json)")
    p.add_argument("--keep", type=Path, help="work directory to keep (configs, logs, state databases)")
    args = p.parse_args()
    sizes = dict(QUICK if args.quick else FULL)
    for key in ("mails", "repeat", "rows", "reads", "reaction", "interval"):
        if getattr(args, key) is not None:
            sizes[key] = getattr(args, key)
    out_path = args.json or BENCH / ("results-quick.json" if args.quick else "results.json")
    if not shutil.which("sqlite3") and "d" in args.only:
        print("the sqlite3 command is missing: apt-get install sqlite3", file=sys.stderr)
        return 2

    from servers import Dovecot, SmtpSink

    work = args.keep or Path(tempfile.mkdtemp(prefix="mailbot-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    results: dict = {"env": environment(), "sizes": sizes, "quick": args.quick}
    log(f"sizes {sizes}; work directory {work}")
    backlog = None
    try:
        with Dovecot() as dovecot, SmtpSink() as sink:
            if "a" in args.only:
                results["a"], backlog = bench_throughput(dovecot, sink, sizes, work, args.profile)
            if "f" in args.only:
                results["f"], _ = bench_throughput(dovecot, sink, sizes, work, args.profile, mix=EVERYDAY,
                                                   producer=None, n=sizes["everyday"], name="f")
            if "c" in args.only:
                if backlog is None:
                    from backlog import make_backlog

                    backlog = make_backlog(sizes["mails"], mix=MIX, seed=1)
                results["c"] = bench_memory(dovecot, sink, backlog, sizes, work)
            if "b" in args.only:
                results["b"] = bench_reaction(dovecot, sink, sizes, work)
        if "d" in args.only:
            results["d"] = bench_unis(sizes, work)
        if "e" in args.only:
            results["e"] = bench_sandbox(backlog, sizes)
    finally:
        results["env"]["load_end"] = loadavg()
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
        out_path.write_text(json.dumps(results, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
    results["markdown"] = print_tables(results)
    out_path.write_text(json.dumps(results, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
    print(f"results written to {out_path.relative_to(ROOT) if out_path.is_relative_to(ROOT) else out_path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Every PDF is opened and read in a child process of its own, with limits.

    read_pdf(data, form, *, password="uspot", limits=PdfLimits(), rules_dir) -> PdfReading
    read_pdfs(jobs, *, password="uspot", limits=PdfLimits(), rules_dir, workers=2) -> [PdfReading]

Hostile PDFs (see shared/corpora/README.md) take pikepdf or pdfplumber past 2 GB of memory,
past 20 s, into endless loops inside C code, or into exceptions of any type.  Only a separate
process contains all of them, so:

- the size limit is checked in the parent before any process starts;
- each PDF gets a fresh process from a *forkserver* (`multiprocessing.get_context("forkserver")`),
  which is safe when the parent runs threads (APScheduler): the forkserver is a single-threaded
  process that imported pikepdf, pdfplumber, this package and pdfminer's Japanese CMaps once,
  so a child costs a fork instead of an interpreter start and the imports (~350 ms);
- the child caps its address space (RLIMIT_AS = memory_mb), turns off core dumps, and arms an
  `alarm()` a little past the wall-clock limit as a second guard;
- the parent waits for the answer with the wall-clock limit and kills the child past it;
- whatever happens (limit hit, segfault, MemoryError, any exception, garbage on the pipe) the
  result is a `PdfReading`; past a limit or on a crash it is UNREADABLE with a detail naming
  the limit or the reason.  The parent never raises and never hangs.

Measured on the 2-core machine (a one-page encrypted form, median of 30): read in-process
60–90 ms, through the sandbox 35 ms more (about 20 ms for the fork and the pipe, the rest for
the child's cold caches).  A pool of reused workers would save most of those 35 ms, but a reused
worker carries the previous mail's decrypted form, its heap (fragmentation counts against
RLIMIT_AS) and the libraries' caches into the next file, and must be replaced after every limit
hit anyway: at a few hundred PDFs a day, exact per-file limits and no shared state are worth
more than 35 ms each.

As with any forkserver or spawn context, the program's main module must be import-safe (its work
under `if __name__ == "__main__":`): the forkserver imports it once (the `mailbot` console
script, `python -m mailbot` and pytest all are).
"""

from __future__ import annotations

import logging
import math
import multiprocessing
import os
import signal
import threading
import time
import warnings
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from mailbot.forms.model import PdfReading, PdfStatus
from mailbot.logs import log_failure

log = logging.getLogger(__name__)

# Imported once in the forkserver, so every child starts with them loaded.  "__main__" makes the
# forkserver import the program's main script once (children then skip re-running it); it is
# ignored when the program was started with `python -m`.
PRELOAD = ["__main__", "pikepdf", "pdfplumber", "pdfminer.high_level", "mailbot.forms.model",
           "mailbot.forms.pdf", "mailbot.forms.application", "mailbot.forms.termination"]
_KILL_GRACE_S = 5.0  # how long the parent waits for a killed child to be reaped


@dataclass(frozen=True)
class PdfLimits:
    max_bytes: int = 20 * 1024 * 1024  # checked in the parent, before any process
    max_pages: int = 30
    timeout_s: float = 20.0  # wall clock, process start to answer
    memory_mb: int = 1024  # the child's address space (RLIMIT_AS), libraries included


_ctx_lock = threading.Lock()
_ctx = None


def _context():
    global _ctx
    with _ctx_lock:
        if _ctx is None:
            ctx = multiprocessing.get_context("forkserver")
            ctx.set_forkserver_preload(PRELOAD)
            _ctx = ctx
        return _ctx


def _unreadable(detail: str) -> PdfReading:
    return PdfReading(PdfStatus.UNREADABLE, detail=detail)


# --------------------------------------------------------------------------- the child


def _child(conn, data: bytes, form: str, password: str, limits: PdfLimits, rules_dir: Path) -> None:
    try:
        try:
            import resource

            resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
            cap = int(limits.memory_mb) * 1024 * 1024
            resource.setrlimit(resource.RLIMIT_AS, (cap, cap))
            signal.signal(signal.SIGALRM, signal.SIG_DFL)  # the kernel ends us, even inside C code
            signal.alarm(int(math.ceil(limits.timeout_s)) + 1)
            warnings.simplefilter("ignore")  # the libraries' complaints about broken files
            logging.getLogger("pdfminer").setLevel(logging.CRITICAL)
            logging.getLogger("pdfplumber").setLevel(logging.CRITICAL)
            from mailbot.forms.pdf import read_form

            reading = read_form(data, form, password=password, max_pages=limits.max_pages, rules_dir=rules_dir)
        except MemoryError:
            reading = _unreadable(f"memory limit ({limits.memory_mb} MB) reached")
        except RecursionError:
            reading = _unreadable("nested too deeply (RecursionError)")
        except BaseException as e:  # noqa: BLE001 - anything a hostile file provokes
            msg = str(e).replace("\n", " ")[:200]
            if _out_of_memory(e):
                reading = _unreadable(f"memory limit ({limits.memory_mb} MB) reached ({type(e).__name__}: {msg})")
            else:
                reading = _unreadable(f"reading failed: {type(e).__module__}.{type(e).__name__}: {msg}".rstrip(": "))
        del data
        try:
            conn.send(reading)
        except BaseException:  # noqa: BLE001 - e.g. MemoryError while pickling: send less
            conn.send(_unreadable(reading.detail[:200] or "the result could not be sent"))
        conn.close()
    finally:
        os._exit(0)  # no teardown of a possibly huge heap


def _out_of_memory(e: BaseException) -> bool:
    """pdfplumber wraps a MemoryError (or zlib's "Unable to allocate output buffer")."""
    seen = 0
    while e is not None and seen < 10:
        if isinstance(e, MemoryError) or "allocate" in str(e).lower():
            return True
        e = e.__cause__ or e.__context__
        seen += 1
    return False


# --------------------------------------------------------------------------- the parent


def _exit_reason(exitcode: int | None, limits: PdfLimits) -> str:
    if exitcode is None:
        return "the reader did not end"
    if exitcode < 0:
        sig = -exitcode
        if sig == signal.SIGALRM:
            return f"time limit ({limits.timeout_s:g} s) reached"
        if sig == signal.SIGKILL:
            return "killed (SIGKILL; out of memory?)"
        try:
            name = signal.Signals(sig).name
        except ValueError:
            name = f"signal {sig}"
        return f"the reader crashed ({name})"
    return f"the reader exited without an answer (exit code {exitcode})"


def read_pdf(data: bytes, form: str, *, password: str = "uspot", limits: PdfLimits = PdfLimits(),
             rules_dir: Path) -> PdfReading:
    """Read one PDF in a child process; never raises, never waits much past limits.timeout_s."""
    try:
        return _read(data, form, password, limits, Path(rules_dir))
    except Exception as e:  # noqa: BLE001 - e.g. the forkserver could not be started
        log_failure(log, "PDF sandbox failed", e)
        return _unreadable(f"sandbox failure: {type(e).__name__}: {str(e)[:200]}")


def _read(data: bytes, form: str, password: str, limits: PdfLimits, rules_dir: Path) -> PdfReading:
    if len(data) > limits.max_bytes:
        return _unreadable(f"too big ({len(data):,} bytes > {limits.max_bytes:,})")
    if not data:
        return _unreadable("empty file (0 bytes)")
    ctx = _context()
    receiver, sender = ctx.Pipe(duplex=False)
    proc = ctx.Process(target=_child, args=(sender, data, form, password, limits, rules_dir),
                       name="pdf-reader", daemon=True)
    start = time.monotonic()
    reading: PdfReading | None = None
    reason = ""
    started = False
    try:
        proc.start()
        started = True
        sender.close()
        if receiver.poll(max(0.0, limits.timeout_s - (time.monotonic() - start))):
            try:
                got = receiver.recv()
                if isinstance(got, PdfReading):
                    reading = got
                else:
                    reason = "the reader answered garbage"
            except EOFError:
                pass  # died without an answer: the exit code tells why
            except Exception as e:  # noqa: BLE001 - a truncated or broken pickle
                reason = f"the reader's answer was broken ({type(e).__name__})"
        else:
            reason = f"time limit ({limits.timeout_s:g} s) reached"
    finally:
        if not sender.closed:
            sender.close()
        if started:
            if reading is None and proc.is_alive():
                proc.kill()
            proc.join(_KILL_GRACE_S)
            if proc.is_alive():
                proc.kill()
                proc.join(_KILL_GRACE_S)
        receiver.close()
    if reading is None and not reason:
        reason = _exit_reason(proc.exitcode, limits)
    if not proc.is_alive():
        proc.close()
    return reading if reading is not None else _unreadable(reason)


def read_pdfs(jobs: list[tuple[bytes, str]], *, password: str = "uspot", limits: PdfLimits = PdfLimits(),
              rules_dir: Path, workers: int = 2) -> list[PdfReading]:
    """Read several PDFs, `workers` at a time (one child each), results in the jobs' order."""
    if not jobs:
        return []
    with ThreadPoolExecutor(max_workers=max(1, workers), thread_name_prefix="pdf-reader") as pool:
        return list(pool.map(lambda job: read_pdf(job[0], job[1], password=password, limits=limits,
                                                  rules_dir=rules_dir), jobs))

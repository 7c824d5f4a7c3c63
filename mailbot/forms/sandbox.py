"""Every PDF is opened and read in a child process, with limits.

    read_pdf(data, form, *, password="uspot", limits=PdfLimits(), rules_dir) -> PdfReading
    read_pdfs(jobs, *, password="uspot", limits=PdfLimits(), rules_dir, workers=2) -> [PdfReading]

Hostile PDFs (see shared/corpora/README.md) take the PDF libraries past 2 GB of memory, past
20 s, into endless loops inside C code, or into exceptions of any type.  Only a separate
process contains all of them, so:

- the size limit is checked in the parent before any process gets the file;
- readers are forked from a *forkserver* (`multiprocessing.get_context("forkserver")`), which is
  safe when the parent runs threads (APScheduler): a single-threaded process that imported
  pikepdf, PDFium and this package once, so a reader costs a fork, not an interpreter start;
- a reader caps its address space (RLIMIT_AS = memory_mb) and turns off core dumps once, and
  arms an `alarm()` a little past the wall-clock limit for each file as a second guard;
- the parent waits for each answer with the wall-clock limit and kills the reader past it;
- whatever happens (limit hit, segfault, abort, MemoryError, any exception, garbage on the pipe)
  the result is a `PdfReading`; past a limit or on a crash it is UNREADABLE with a detail naming
  the limit or the reason.  The parent never raises and never hangs.

A reader is reused for the next file while it stays healthy: a fresh process per file cost
~80 ms more than the read itself (the fork, then the rules and the libraries' caches warmed
again), twice what a form takes to read.  A reader that hit a limit, crashed or answered
garbage is killed and never reused; one that grew past half its memory cap, or read
READER_JOBS files, is retired after its answer, so no heap grows without end.  What a reader
keeps between files is only its own process memory: nothing of one file reaches the next
file's reading.

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
PRELOAD = ["__main__", "pikepdf", "pypdfium2", "cryptography.hazmat.primitives.ciphers", "pdfplumber.table", "pdfplumber.utils.text", "mailbot.forms.model",
           "mailbot.forms.pdf", "mailbot.forms.layout", "mailbot.forms.application", "mailbot.forms.termination",
           "mailbot.forms.read"]
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


def prestart() -> None:
    """Start the forkserver now, on a thread of its own beside the caller's start-up: it imports
    the PDF libraries (~0.3 s) that the first form read would otherwise wait for."""
    from multiprocessing import forkserver

    try:
        _context()
        forkserver.ensure_running()
    except Exception as e:  # noqa: BLE001 - the first read meets it again and says so
        log.debug("forkserver not started ahead: %s", e)


def prestart_in_background() -> None:
    threading.Thread(target=prestart, name="forkserver-start", daemon=True).start()


def _unreadable(detail: str) -> PdfReading:
    return PdfReading(PdfStatus.UNREADABLE, detail=detail)


# --------------------------------------------------------------------------- the reader


def _serve(conn, memory_mb: int, rules_dir: Path) -> None:
    """A reader: limits set once, then one (data, form, password, limits) job after another, each
    answered with a PdfReading and this process's resident size, until the parent hangs up."""
    try:
        import resource

        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
        cap = int(memory_mb) * 1024 * 1024
        resource.setrlimit(resource.RLIMIT_AS, (cap, cap))
        signal.signal(signal.SIGALRM, signal.SIG_DFL)  # the kernel ends us, even inside C code
        warnings.simplefilter("ignore")  # the libraries' complaints about broken files
        logging.getLogger("pdfminer").setLevel(logging.CRITICAL)
        logging.getLogger("pdfplumber").setLevel(logging.CRITICAL)
        while True:
            try:
                data, form, password, limits = conn.recv()
            except EOFError:
                break
            signal.alarm(int(math.ceil(limits.timeout_s)) + 1)
            reading = _read_one(data, form, password, limits, rules_dir)
            del data
            signal.alarm(0)
            try:
                conn.send((reading, _rss_bytes()))
            except BaseException:  # noqa: BLE001 - e.g. MemoryError while pickling: send less
                conn.send((_unreadable(reading.detail[:200] or "the result could not be sent"), cap))
    finally:
        os._exit(0)  # no teardown of a possibly huge heap


def _read_one(data: bytes, form: str, password: str, limits: PdfLimits, rules_dir: Path) -> PdfReading:
    try:
        from mailbot.forms.read import read_form

        return read_form(data, form, password=password, max_pages=limits.max_pages, rules_dir=rules_dir)
    except MemoryError:
        return _unreadable(f"memory limit ({limits.memory_mb} MB) reached")
    except RecursionError:
        return _unreadable("nested too deeply (RecursionError)")
    except Exception as e:  # noqa: BLE001 - anything a hostile file provokes
        msg = str(e).replace("\n", " ")[:200]
        if _out_of_memory(e):
            return _unreadable(f"memory limit ({limits.memory_mb} MB) reached ({type(e).__name__}: {msg})")
        return _unreadable(f"reading failed: {type(e).__module__}.{type(e).__name__}: {msg}".rstrip(": "))


def _rss_bytes() -> int:
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return 0


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
        if sig in (signal.SIGABRT, signal.SIGTRAP):
            # PDFium (C++) aborts where Python would raise MemoryError
            return f"the reader crashed ({signal.Signals(sig).name}; over the memory limit ({limits.memory_mb} MB)?)"
        try:
            name = signal.Signals(sig).name
        except ValueError:
            name = f"signal {sig}"
        return f"the reader crashed ({name})"
    return f"the reader exited without an answer (exit code {exitcode})"


class _Reader:
    """One reader process and the parent's end of its pipe."""

    def __init__(self, memory_mb: int, rules_dir: Path):
        ctx = _context()
        self.memory_mb = memory_mb
        self.rules_dir = rules_dir
        self.conn, child = ctx.Pipe(duplex=True)
        self.proc = ctx.Process(target=_serve, args=(child, memory_mb, rules_dir), name="pdf-reader", daemon=True)
        try:
            self.proc.start()
        finally:
            child.close()
        self.jobs = 0

    def read(self, data: bytes, form: str, password: str, limits: PdfLimits) -> tuple[PdfReading | None, int, str]:
        """(the reading or None, the reader's resident bytes, why there is no reading)."""
        start = time.monotonic()
        self.jobs += 1
        try:
            self.conn.send((data, form, password, limits))
        except (OSError, ValueError) as e:
            return None, 0, f"the reader could not be given the file ({type(e).__name__})"
        if not self.conn.poll(max(0.0, limits.timeout_s - (time.monotonic() - start))):
            return None, 0, f"time limit ({limits.timeout_s:g} s) reached"
        try:
            got = self.conn.recv()
        except EOFError:
            return None, 0, ""  # died without an answer: the exit code tells why
        except Exception as e:  # noqa: BLE001 - a truncated or broken pickle
            return None, 0, f"the reader's answer was broken ({type(e).__name__})"
        if (isinstance(got, tuple) and len(got) == 2 and isinstance(got[0], PdfReading)
                and isinstance(got[1], int)):
            return got[0], got[1], ""
        return None, 0, "the reader answered garbage"

    def close(self, kill: bool = False) -> int | None:
        """End the reader (killed when it may be stuck); its exit code."""
        self.conn.close()  # a healthy reader sees EOF and exits
        if kill and self.proc.is_alive():
            self.proc.kill()
        self.proc.join(_KILL_GRACE_S)
        if self.proc.is_alive():
            self.proc.kill()
            self.proc.join(_KILL_GRACE_S)
        code = self.proc.exitcode
        if not self.proc.is_alive():
            self.proc.close()
        return code


READER_JOBS = 200  # files a reader reads before it is replaced
_idle: list[_Reader] = []
_idle_lock = threading.Lock()


def _take_reader(memory_mb: int, rules_dir: Path) -> _Reader:
    with _idle_lock:
        for i, reader in enumerate(_idle):
            if reader.memory_mb == memory_mb and reader.rules_dir == rules_dir:
                return _idle.pop(i)
    return _Reader(memory_mb, rules_dir)


def read_pdf(data: bytes, form: str, *, password: str = "uspot", limits: PdfLimits = PdfLimits(),
             rules_dir: Path) -> PdfReading:
    """Read one PDF in a reader process; never raises, never waits much past limits.timeout_s."""
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
    reader = _take_reader(int(limits.memory_mb), rules_dir)
    reading: PdfReading | None = None
    rss, reason = 0, ""
    try:
        reading, rss, reason = reader.read(data, form, password, limits)
    finally:
        if reading is None:
            code = reader.close(kill=True)
            reason = reason or _exit_reason(code, limits)
        elif rss > reader.memory_mb * 2**20 // 2 or reader.jobs >= READER_JOBS:
            reader.close()
        else:
            with _idle_lock:
                _idle.append(reader)
    return reading if reading is not None else _unreadable(reason)


def read_pdfs(jobs: list[tuple[bytes, str]], *, password: str = "uspot", limits: PdfLimits = PdfLimits(),
              rules_dir: Path, workers: int = 2) -> list[PdfReading]:
    """Read several PDFs, `workers` at a time (a reader each), results in the jobs' order."""
    if not jobs:
        return []
    with ThreadPoolExecutor(max_workers=max(1, workers), thread_name_prefix="pdf-reader") as pool:
        return list(pool.map(lambda job: read_pdf(job[0], job[1], password=password, limits=limits,
                                                  rules_dir=rules_dir), jobs))

"""Shared fixtures: real Dovecot and SMTP sink servers on loopback (see servers.py).

Servers are started once per session; each test gets a fresh IMAP user (an empty mailbox) and a
reset sink, so a test costs a few milliseconds of setup.  Tests that stop, restart or otherwise
break a server ask the *_factory fixtures for private ones.

    dovecot          session   Dovecot with MOVE, "/" separator, no namespace prefix
    imap_account     function  a fresh ImapAccount on `dovecot` (.host .port .username .password,
                               .client() .mailbox(**kw) .append() .messages() .flags() .folders())
    dovecot_nomove   session   Dovecot without MOVE, "." separator, "INBOX." prefix (Courier-like)
    nomove_account   function  a fresh ImapAccount on `dovecot_nomove`
    dovecot_factory  function  dovecot_factory(**Dovecot kwargs) → a private started Dovecot,
                               closed after the test
    smtp_sink        function  the session's SmtpSink, reset: accept mode, no messages
                               (.host .port .messages() .wait_for(n) .set_mode() .reject_rcpt())
    smtp_sink_factory function smtp_sink_factory(**SmtpSink kwargs) → a private started sink
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

if str(Path(__file__).parent) not in sys.path:  # also under --import-mode=importlib
    sys.path.insert(0, str(Path(__file__).parent))

from servers import DOVECOT_BIN, Dovecot, ImapAccount, SmtpSink


def _need_dovecot() -> None:
    if not os.path.exists(DOVECOT_BIN):
        pytest.skip(f"{DOVECOT_BIN} is missing: apt-get install dovecot-imapd")


@pytest.fixture(scope="session")
def dovecot():
    _need_dovecot()
    server = Dovecot()
    yield server
    server.close()


@pytest.fixture(scope="session")
def dovecot_nomove():
    _need_dovecot()
    server = Dovecot(without=("MOVE",), separator=".", prefix="INBOX.")
    yield server
    server.close()


def _fresh_account(server: Dovecot) -> ImapAccount:
    if not server.running:  # a test may have stopped the shared server
        server.start()
    return server.add_user()


@pytest.fixture
def imap_account(dovecot) -> ImapAccount:
    return _fresh_account(dovecot)


@pytest.fixture
def nomove_account(dovecot_nomove) -> ImapAccount:
    return _fresh_account(dovecot_nomove)


@pytest.fixture
def dovecot_factory():
    _need_dovecot()
    made: list[Dovecot] = []

    def make(**kwargs) -> Dovecot:
        server = Dovecot(**kwargs)
        made.append(server)
        return server

    yield make
    for server in made:
        server.close()


@pytest.fixture(scope="session")
def _smtp_sink_session():
    sink = SmtpSink()
    yield sink
    sink.close()


@pytest.fixture
def smtp_sink(_smtp_sink_session) -> SmtpSink:
    _smtp_sink_session.reset()
    yield _smtp_sink_session
    _smtp_sink_session.set_control(mode="accept", reject_rcpt=())  # end any hanging DATA


@pytest.fixture
def smtp_sink_factory():
    made: list[SmtpSink] = []

    def make(**kwargs) -> SmtpSink:
        sink = SmtpSink(**kwargs)
        made.append(sink)
        return sink

    yield make
    for sink in made:
        sink.close()

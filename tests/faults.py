"""A fault-injecting TCP proxy on loopback, between mailbot and Dovecot or the SMTP sink.

    proxy = FaultProxy(dovecot.port, protocol="imap")   # listens on proxy.host:proxy.port
    proxy.fail_on(r"UID MOVE ", when="after")          # the server moves, the client never hears
    proxy.refuse()  /  proxy.resume()                   # server down (connection refused) / up
    proxy.stall()                                       # accept, never answer (client timeout)
    proxy.hangup()                                      # accept and close at once
    proxy.freeze()                                      # that, and open connections fall silent
    proxy.cut()                                         # break every open connection now
    proxy.close()

A rule (`fail_on`) looks at each *command* the client sends — an IMAP command line without its
tag (``UID FETCH 1:5 (BODY.PEEK[] INTERNALDATE)``; literals and the lines continuing a command
after a literal are not commands), an SMTP command line (``MAIL FROM:<a@b>``) or, for the end of
an SMTP message, ``.`` (the data lines themselves are not commands) — and, on the matching one:

    when="before"   the command is never forwarded: the server does nothing
    when="after"    the command is forwarded and the server's whole answer (up to the IMAP tagged
                    status line / the final SMTP reply line) is swallowed: the server did it, the
                    client never hears
    action="drop"   then both connections are closed (the client sees EOF)
    action="stall"  then the client's connection stays open and silent (the client times out)

`answer_on(pattern, "NO [UNAVAILABLE] …")` answers the matching IMAP command itself (the server
never sees it), as a throttling Exchange does.

`on(pattern, hook)` calls hook(command) on the matching command and then forwards it as usual.

`skip` lets that many matching commands through first; `times` is how often the rule fires
(None: every time).  Every rule counts the commands it matches; on one command only the first
rule due fires.  `proxy.commands` lists every command seen, `proxy.hits` the ones a rule
fired on (both as str).  One thread per connection; everything is torn down by close().
"""

from __future__ import annotations

import re
import selectors
import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass

LOOPBACK = "127.0.0.1"
_LITERAL = re.compile(rb"\{(\d+)\+?\}\r\n$")
_SMTP_FINAL = re.compile(rb"^(\d{3})(?: |\r\n)")


@dataclass
class Rule:
    pattern: re.Pattern[bytes]
    when: str = "before"
    action: str = "drop"  # drop | stall | call (run hook, then forward the command as usual) | answer
    skip: int = 0
    times: int | None = 1
    hook: Callable[[str], object] | None = None
    answer: bytes = b""  # action "answer": the tagged IMAP response the server "gives" instead
    seen: int = 0
    fired: int = 0

    def due(self, command: bytes) -> bool:
        """Whether the rule would fire on this command (counts it as seen)."""
        if not self.pattern.search(command):
            return False
        self.seen += 1
        return self.seen > self.skip and (self.times is None or self.fired < self.times)


class _Scanner:
    """Splits one direction of a stream into pieces, line by line: (bytes, whether a whole line,
    the client command it is or None).

    imap: literals ({n} / {n+} at the end of a line) are passed through uncut and never parsed;
    a client line after a literal continues its command.  smtp: lines between an accepted DATA
    (354) and the lone "." are data, the "." itself is the command ".".
    """

    def __init__(self, protocol: str, client_side: bool) -> None:
        self.protocol = protocol
        self.client_side = client_side
        self.buf = b""
        self.literal = 0
        self.continuation = False
        self.in_data = False
        self.data_pending = False  # DATA sent, its answer not yet seen

    def feed(self, data: bytes) -> list[tuple[bytes, bool, bytes | None]]:
        """(piece, whether it is a whole line, the command it is or None)."""
        self.buf += data
        out: list[tuple[bytes, bool, bytes | None]] = []
        while self.buf:
            if self.literal:
                n = min(self.literal, len(self.buf))
                out.append((self.buf[:n], False, None))
                self.buf, self.literal = self.buf[n:], self.literal - n
                continue
            end = self.buf.find(b"\n")
            if end < 0:
                break
            line, self.buf = self.buf[: end + 1], self.buf[end + 1 :]
            out.append((line, True, self._command(line)))
        return out

    def _command(self, line: bytes) -> bytes | None:
        bare = line.rstrip(b"\r\n")
        if self.protocol == "imap":
            m = _LITERAL.search(line)
            command = None if self.continuation or not self.client_side else bare
            if self.client_side:
                self.continuation = bool(m)
            if m:
                self.literal = int(m.group(1))
            return command
        if not self.client_side:
            return None
        if self.in_data:
            if bare == b".":
                self.in_data = False
                return b"."
            return None
        if bare.upper() == b"DATA":
            self.data_pending = True
        return bare

    def server_reply(self, line: bytes) -> None:
        """SMTP: the client scanner learns whether DATA was accepted (354) from the server's reply."""
        m = _SMTP_FINAL.match(line)
        if m and self.data_pending:
            self.data_pending = False
            self.in_data = m.group(1) == b"354"


class _Connection(threading.Thread):
    def __init__(self, proxy: FaultProxy, client: socket.socket) -> None:
        super().__init__(daemon=True, name=f"fault-proxy-{proxy.port}")
        self.proxy = proxy
        self.client = client
        self.upstream: socket.socket | None = None
        self.closed = threading.Event()
        self.from_client = _Scanner(proxy.protocol, client_side=True)
        self.from_server = _Scanner(proxy.protocol, client_side=False)
        self.state = "relay"  # relay | await (swallowing the answer) | silent
        self.awaited: bytes | None = None  # IMAP: the tag whose status line ends the answer
        self.then = "drop"
        self.after = False  # an "after" rule fired on the command being forwarded

    def close(self) -> None:
        self.closed.set()
        for s in (self.client, self.upstream):
            if s is not None:
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                s.close()

    def run(self) -> None:
        try:
            if self.proxy.mode == "hangup":
                return
            if self.proxy.mode != "stall":
                try:
                    self.upstream = socket.create_connection(self.proxy.upstream, timeout=5)
                except OSError:
                    return  # the server behind is down: the client sees EOF
                self.upstream.settimeout(None)
            else:
                self.state = "silent"
            self._loop()
        except OSError:
            pass
        finally:
            self.close()
            self.proxy._forget(self)

    def _loop(self) -> None:
        with selectors.DefaultSelector() as sel:
            sel.register(self.client, selectors.EVENT_READ, "client")
            if self.upstream is not None:
                sel.register(self.upstream, selectors.EVENT_READ, "server")
            while not self.closed.is_set():
                for key, _ in sel.select(0.1):
                    data = key.fileobj.recv(65536)
                    if not data:
                        if key.data == "server" and self.state == "silent":
                            sel.unregister(self.upstream)  # keep the client waiting
                            continue
                        return
                    done = self._from_client(data) if key.data == "client" else self._from_server(data)
                    if done:
                        return

    def _from_client(self, data: bytes) -> bool:
        if self.state != "relay":
            return False  # swallowed
        for piece, whole, command in self.from_client.feed(data):
            if command is not None:
                tag = b""
                text = command
                if self.proxy.protocol == "imap":
                    tag, _, text = command.partition(b" ")
                rule = self.proxy._match(text)
                if rule is not None and rule.action == "call":
                    rule.hook(text.decode("utf-8", "replace"))
                    if self.state != "relay":  # e.g. the hook froze the proxy
                        return False
                elif rule is not None and rule.action == "answer":
                    # never forwarded: the client gets the server's "answer" (e.g. throttling)
                    self.client.sendall(tag + b" " + rule.answer + b"\r\n")
                    continue
                elif rule is not None:
                    self.then = rule.action
                    if rule.when == "before":
                        self.state = "silent"
                        return rule.action == "drop"
                    self.awaited = tag + b" " if tag else None
                    self.after = True
            self.upstream.sendall(piece)
            if self.after and whole and not self.from_client.continuation:
                # the whole command is with the server (an IMAP command's literals and the
                # continuation requests for them pass): from now on its answer is swallowed
                self.after = False
                self.state = "await"
                return False
        return False

    def _from_server(self, data: bytes) -> bool:
        if self.state == "silent":
            return False
        pieces = self.from_server.feed(data)
        if self.state == "relay":
            for line, whole, _ in pieces:
                if whole and self.proxy.protocol == "smtp":
                    self.from_client.server_reply(line)
            # what is not yet a whole line waits in the scanner, and is forwarded with its end
            self.client.sendall(b"".join(p for p, _, _ in pieces))
            return False
        # await: swallow the answer until its end, then drop or go silent
        for line, whole, _ in pieces:
            if not whole:
                continue  # literal data
            if self.proxy.protocol == "imap":
                finished = self.awaited is None or line.startswith(self.awaited)
            else:
                finished = bool(_SMTP_FINAL.match(line))
            if finished:
                if self.then == "drop":
                    return True
                self.state = "silent"
                return False
        return False


class FaultProxy:
    """A TCP proxy from proxy.host:proxy.port to upstream, with faults on demand (see the module)."""

    def __init__(self, upstream_port: int, protocol: str = "imap", upstream_host: str = LOOPBACK) -> None:
        if protocol not in ("imap", "smtp"):
            raise ValueError(f"unknown protocol {protocol!r}")
        self.protocol = protocol
        self.upstream = (upstream_host, upstream_port)
        self.host = LOOPBACK
        self.port = 0
        self.mode = "pass"  # pass | stall | hangup (for new connections)
        self.rules: list[Rule] = []
        self.commands: list[str] = []
        self.hits: list[str] = []
        self._lock = threading.Lock()
        self._conns: set[_Connection] = set()
        self._listener: socket.socket | None = None
        self._stop = threading.Event()
        self._acceptor: threading.Thread | None = None
        self._listen()

    def __enter__(self) -> FaultProxy:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"FaultProxy({self.host}:{self.port} → {self.upstream[0]}:{self.upstream[1]}, {self.protocol})"

    # -- faults ---------------------------------------------------------------------------

    def fail_on(self, pattern: str | bytes, *, when: str = "before", action: str = "drop", skip: int = 0,
                times: int | None = 1) -> Rule:
        """Fault on the client command matching the regular expression (case-insensitive)."""
        if when not in ("before", "after") or action not in ("drop", "stall"):
            raise ValueError(f"when={when!r} action={action!r}")
        if isinstance(pattern, str):
            pattern = pattern.encode()
        rule = Rule(re.compile(pattern, re.IGNORECASE), when, action, skip, times)
        with self._lock:
            self.rules.append(rule)
        return rule

    def answer_on(self, pattern: str | bytes, answer: str, *, skip: int = 0, times: int | None = 1) -> Rule:
        """Answer the matching IMAP command with `answer` (e.g. "NO [UNAVAILABLE] Server Unavailable.
        15", Exchange's throttling) instead of forwarding it."""
        if isinstance(pattern, str):
            pattern = pattern.encode()
        rule = Rule(re.compile(pattern, re.IGNORECASE), "before", "answer", skip, times, answer=answer.encode())
        with self._lock:
            self.rules.append(rule)
        return rule

    def on(self, pattern: str | bytes, hook: Callable[[str], object], *, skip: int = 0,
           times: int | None = 1) -> Rule:
        """Call hook(command) when the client sends the matching command, before forwarding it
        (e.g. restart the server behind: the command then meets a dead connection)."""
        rule = self.fail_on(pattern, skip=skip, times=times)
        rule.action, rule.hook = "call", hook
        return rule

    def stall(self) -> None:
        """New connections are accepted and never answered."""
        self.mode = "stall"
        self._listen()

    def hangup(self) -> None:
        """New connections are accepted and closed at once."""
        self.mode = "hangup"
        self._listen()

    def freeze(self) -> None:
        """A black hole: open connections go silent both ways, new ones are never answered."""
        self.stall()
        with self._lock:
            for conn in self._conns:
                conn.state = "silent"

    def refuse(self, cut: bool = True) -> None:
        """Server down: connections are refused (and open ones broken, unless cut=False)."""
        self._unlisten()
        if cut:
            self.cut()

    def resume(self) -> None:
        """Pass through again (listening on the same port)."""
        self.mode = "pass"
        self._listen()

    def cut(self) -> None:
        """Break every open connection now."""
        with self._lock:
            conns = list(self._conns)
        for c in conns:
            c.close()
        for c in conns:
            c.join(5)

    def close(self) -> None:
        self._stop.set()
        self._unlisten()
        self.cut()

    # -- internals ------------------------------------------------------------------------

    def _match(self, command: bytes) -> Rule | None:
        text = command.decode("utf-8", "replace")
        with self._lock:
            self.commands.append(text)
            due = [rule for rule in self.rules if rule.due(command)]  # every rule counts it
            if not due:
                return None
            due[0].fired += 1  # the first one fires
            self.hits.append(text)
            return due[0]

    def _forget(self, conn: _Connection) -> None:
        with self._lock:
            self._conns.discard(conn)

    def _listen(self) -> None:
        if self._listener is not None or self._stop.is_set():
            return
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind((self.host, self.port))
        s.listen(16)
        self.port = s.getsockname()[1]
        self._listener = s
        self._acceptor = threading.Thread(target=self._accept, args=(s,), daemon=True,
                                          name=f"fault-proxy-accept-{self.port}")
        self._acceptor.start()

    def _unlisten(self) -> None:
        s, self._listener = self._listener, None
        if s is None:
            return
        acceptor, self._acceptor = self._acceptor, None
        if acceptor is not None:
            acceptor.join(5)  # it sees _listener change within its select timeout
        s.close()

    def _accept(self, listener: socket.socket) -> None:
        with selectors.DefaultSelector() as sel:
            sel.register(listener, selectors.EVENT_READ)
            while self._listener is listener:
                if not sel.select(0.05):
                    continue
                try:
                    client, _ = listener.accept()
                except OSError:
                    continue
                if self._listener is not listener:  # refused meanwhile
                    client.close()
                    return
                client.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                conn = _Connection(self, client)
                with self._lock:
                    self._conns.add(conn)
                conn.start()

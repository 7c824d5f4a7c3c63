"""A loopback SMTP server that stores what it accepts; run as its own process by servers.SmtpSink.

    python tests/smtp_sink.py --dir DIR [--port P] [--auth USER:PASSWORD] [--auth-required]
                              [--mode accept|tempfail|permfail|hang]

Every accepted message lands in DIR/messages as NNN.eml (the bytes as received) beside NNN.json
({"mail_from", "rcpt_tos", "auth_user", "received_at"}), written atomically.  DIR/control.json,
read at every transaction, changes the behaviour at run time:

    {"mode": "accept" | "tempfail" | "permfail" | "hang",   # the answer to DATA
     "reject_rcpt": ["addr", ...],                           # 550 at RCPT TO for these
     "tempfail_rcpt": ["addr", ...],                         # 450 at RCPT TO for these
     "deliver": {"addr": {"host", "port", "user", "password"}}}  # also APPENDed to that INBOX

The bound port is written to DIR/port once the server listens.
"""

from __future__ import annotations

import argparse
import collections
import base64
import asyncio
import imaplib
import json
import os
import signal
import time
from pathlib import Path

from aiosmtpd.smtp import SMTP, AuthResult, LoginPassword

MODES = ("accept", "tempfail", "permfail", "hang")
HANG_LIMIT = 600.0  # seconds a hanging DATA answer waits at most


def _write_atomic(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


class SinkHandler:
    def __init__(self, root: Path, default_mode: str) -> None:
        self.root = root
        self.messages = root / "messages"
        self.messages.mkdir(parents=True, exist_ok=True)
        self.default_mode = default_mode
        self.counter = len(list(self.messages.glob("*.eml")))

    def control(self) -> dict:
        try:
            data = json.loads((self.root / "control.json").read_text("utf-8"))
        except (OSError, ValueError):
            data = {}
        data.setdefault("mode", self.default_mode)
        data.setdefault("reject_rcpt", [])
        data.setdefault("tempfail_rcpt", [])
        data.setdefault("deliver", {})
        return data

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):  # noqa: N802
        control = self.control()
        if address.lower() in {a.lower() for a in control["reject_rcpt"]}:
            return f"550 5.1.1 <{address}>: Recipient address rejected"
        if address.lower() in {a.lower() for a in control["tempfail_rcpt"]}:
            return f"450 4.2.1 <{address}>: Mailbox temporarily unavailable"
        envelope.rcpt_tos.append(address)
        envelope.rcpt_options.extend(rcpt_options)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):  # noqa: N802
        control = self.control()
        mode = control["mode"]
        if mode == "tempfail":
            return "451 4.3.0 Temporary failure (sink tempfail mode)"
        if mode == "permfail":
            return "554 5.7.1 Message rejected (sink permfail mode)"
        if mode == "hang":
            deadline = time.monotonic() + HANG_LIMIT
            while time.monotonic() < deadline and self.control()["mode"] == "hang":
                await asyncio.sleep(0.05)
            return "451 4.4.2 Timeout (sink hang mode ended)"
        self.counter += 1
        stem = f"{time.time_ns():020d}-{self.counter:06d}"
        content = envelope.original_content or envelope.content or b""
        if isinstance(content, str):
            content = content.encode("utf-8", "surrogateescape")
        auth = session.auth_data
        meta = {
            "mail_from": envelope.mail_from,
            "rcpt_tos": list(envelope.rcpt_tos),
            "auth_user": auth.login.decode("utf-8", "replace") if isinstance(auth, LoginPassword) else None,
            "received_at": time.time(),
            "session": list(session.peer)[:2] if session.peer else None,  # the client's address: one per connection
        }
        # Recorded and delivered without yielding to the loop: a client gone in between (a killed
        # bot) cannot cancel half of it, as a relay delivers to all once it took the message.
        _write_atomic(self.messages / f"{stem}.eml", content)
        _write_atomic(self.messages / f"{stem}.json", json.dumps(meta).encode("utf-8"))
        for rcpt in envelope.rcpt_tos:
            mailbox = control["deliver"].get(rcpt.lower())
            if mailbox is not None:  # delivered before the 250, as a relay's local delivery
                _deliver(mailbox, content)
        return "250 2.0.0 OK: queued"


def _deliver(mailbox: dict, content: bytes) -> None:
    imap = imaplib.IMAP4(mailbox["host"], int(mailbox["port"]))
    try:
        imap.login(mailbox["user"], mailbox["password"])
        imap.append("INBOX", None, None, content)
    finally:
        imap.logout()


def make_authenticator(user: str, password: str):
    def authenticator(server, session, envelope, mechanism, auth_data):
        ok = (
            isinstance(auth_data, LoginPassword)
            and auth_data.login.decode("utf-8", "replace") == user
            and auth_data.password.decode("utf-8", "replace") == password
        )
        if ok:
            return AuthResult(success=True, auth_data=auth_data)
        return AuthResult(success=False, handled=False)  # smtp_AUTH answers 535

    return authenticator


class LongLineSMTP(SMTP):
    """Command lines as long as real servers take them (AUTH XOAUTH2 carries a whole token)."""

    command_size_limit = 8192

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        # aiosmtpd's per-command limits default to SMTP's own class attribute (512).
        self.command_size_limits = collections.defaultdict(lambda: LongLineSMTP.command_size_limit)


class OAuthSinkHandler(SinkHandler):
    """AUTH XOAUTH2 as Exchange Online takes it: user=…^Aauth=Bearer <token>^A^A, the token an
    HS256 JWT for outlook.office365.com signed with the key the local identity platform uses."""

    def __init__(self, root: Path, default_mode: str, key: str) -> None:
        super().__init__(root, default_mode)
        self.key = key

    async def auth_XOAUTH2(self, server, args):  # noqa: N802 - aiosmtpd finds mechanisms by name
        import jwt

        try:
            raw = base64.b64decode(args[1]).decode("utf-8")
            fields = dict(p.split("=", 1) for p in raw.split("\x01") if "=" in p)
            token = fields["auth"].removeprefix("Bearer ")
            jwt.decode(token, self.key, algorithms=["HS256"], audience="https://outlook.office365.com")
        except Exception:  # noqa: BLE001 - anything wrong: 535
            return AuthResult(success=False, handled=False)
        return AuthResult(success=True, auth_data=LoginPassword(fields["user"].encode(), b""))


async def serve(args: argparse.Namespace) -> None:
    root = Path(args.dir)
    handler = OAuthSinkHandler(root, args.mode, args.oauth_key) if args.oauth_key else SinkHandler(root, args.mode)
    kwargs: dict = {"hostname": "sink.test", "data_size_limit": 50 * 1024 * 1024}
    if args.auth or args.oauth_key:
        user, _, password = (args.auth or "").partition(":")
        kwargs.update(
            authenticator=make_authenticator(user, password) if args.auth else (lambda *a: AuthResult(success=False)),
            auth_require_tls=False,
            auth_required=args.auth_required,
        )
    loop = asyncio.get_running_loop()
    server = await loop.create_server(
        lambda: LongLineSMTP(handler, **kwargs), host=args.host, port=args.port, reuse_address=True
    )
    port = server.sockets[0].getsockname()[1]
    _write_atomic(root / "port", str(port).encode())
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    server.close()
    os._exit(0)  # do not wait for open (possibly hanging) sessions


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dir", required=True)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--auth", default=None, help="USER:PASSWORD to accept with AUTH PLAIN/LOGIN")
    parser.add_argument("--auth-required", action="store_true")
    parser.add_argument("--oauth-key", default=None, help="accept AUTH XOAUTH2 with JWTs signed with this key")
    parser.add_argument("--mode", choices=MODES, default="accept")
    import warnings

    warnings.simplefilter("ignore")  # aiosmtpd warns about AUTH without TLS; loopback only
    asyncio.run(serve(parser.parse_args()))


if __name__ == "__main__":
    main()

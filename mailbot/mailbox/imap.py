"""The shared mailbox over IMAP (imapclient).

Folder names are given the way the rest of mailbot writes them: Unicode, with ``/`` between the
levels (``保留/受付``).  They are mapped onto the server's hierarchy delimiter and personal
namespace prefix (``INBOX.保留.受付`` on a Courier-style server); imapclient does the modified
UTF-7 encoding on the wire.  The ``MailRef.folder`` of a fetched mail is the name as given.

Every failure of the server, the network or TLS surfaces as ``MailboxError``, as
``MailboxUnreachable`` when no connection could be made at all.  After a broken connection the
next call connects afresh.
"""

from __future__ import annotations

import email.parser
import email.policy
import hashlib
import logging
import socket
import ssl as ssl_lib
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from datetime import datetime

from imapclient import IMAPClient
from imapclient.exceptions import IMAPClientAbortError, IMAPClientError, LoginError

from mailbot.auth import AuthError, TokenSource
from mailbot.mailbox import MailboxError, MailboxUnreachable
from mailbot.model import MailRef, RawMail

log = logging.getLogger(__name__)

# What Exchange says when the session's token expired (BYE, or a NO on the next command).
_TOKEN_EXPIRED = ("AccessTokenExpired", "[AUTHENTICATIONFAILED]", "[EXPIRED]")
_BODY = b"BODY[]"
_MSGID_ITEM = "BODY.PEEK[HEADER.FIELDS (MESSAGE-ID)]"
_MSGID_KEY = b"BODY[HEADER.FIELDS (MESSAGE-ID)]"
_DELETED = b"\\Deleted"
_ABSENT_FLAGS = {b"\\NOSELECT", b"\\NONEXISTENT"}


def _describe(exc: BaseException) -> str:
    """A readable one-line account of an imapclient / socket / ssl error."""
    if isinstance(exc, (socket.timeout, TimeoutError)):
        return "timed out"
    if isinstance(exc, ssl_lib.SSLError):
        return f"TLS error: {exc.strerror or exc.reason or exc}"
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    parts = []
    for arg in exc.args:
        if isinstance(arg, bytes):
            arg = arg.decode("utf-8", "replace")
        arg = str(arg)
        if len(arg) >= 3 and arg[0] == "b" and arg[1] in "'\"" and arg[-1] == arg[1]:
            arg = arg[2:-1]  # imapclient's str() of a bytes server response
        parts.append(arg)
    text = " ".join(p for p in parts if p) or type(exc).__name__
    if isinstance(exc, IMAPClientAbortError):
        return f"connection lost: {text}"
    if isinstance(exc, IMAPClientError):
        return text
    return f"{type(exc).__name__}: {text}"


class IdleUnsupported(MailboxError):
    """The server cannot tell when mail arrives: polling alone has to do."""


class ImapMailbox:
    """The ``Mailbox`` protocol over one IMAP connection.

    ``use_move``: True forces UID MOVE, False forces the COPY + UID EXPUNGE fallback, None (the
    default) uses MOVE when the server advertises it.  ``batch_size``, ``batch_bytes``: at most so
    many mails and bytes per UID FETCH (a bigger mail comes alone), so memory stays bounded.

    Connects (and logs in) on the first call, keeps the connection, and after a broken one
    connects again on the next call.  Not thread-safe: one instance per thread.
    """

    def __init__(
        self,
        host: str,
        port: int,
        ssl: bool,
        username: str,
        password: str,
        timeout: float = 30.0,
        *,
        use_move: bool | None = None,
        ssl_context: ssl_lib.SSLContext | None = None,
        batch_size: int = 100,
        batch_bytes: int = 16 * 2**20,
        token_source: TokenSource | None = None,
    ) -> None:
        self.host = host
        self.port = port
        self.ssl = ssl
        self.username = username
        self._password = password
        self.timeout = timeout
        self.use_move = use_move
        self.ssl_context = ssl_context
        self.batch_size = max(1, int(batch_size))
        self.batch_bytes = max(1, int(batch_bytes))
        self.token_source = token_source  # OAuth 2.0 (XOAUTH2) instead of the password
        self._session_ends = float("inf")  # when the session's token expires: reconnect before
        self._idle_uidnext: int | None = None  # the watched folder's UIDNEXT when IDLE last began
        self._client: IMAPClient | None = None
        self._selected: tuple[str, bool, int] | None = None  # (server name, readonly, uidvalidity)
        self._prefix = ""
        self._delimiter: str | None = "/"

    def __repr__(self) -> str:
        return f"ImapMailbox({self.host}:{self.port}, user={self.username!r})"

    # -- connection -----------------------------------------------------------------------

    def __enter__(self) -> ImapMailbox:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        """Log out quietly; the next call would connect again."""
        client, self._client = self._client, None
        self._selected = None
        if client is None:
            return
        try:
            client.logout()
        except Exception:  # noqa: BLE001 - closing must never fail
            try:
                client.shutdown()
            except Exception:  # noqa: BLE001
                pass

    def _drop(self) -> None:
        """Forget a broken connection without talking to the server."""
        client, self._client = self._client, None
        self._selected = None
        if client is not None:
            try:
                client.shutdown()
            except Exception:  # noqa: BLE001
                pass

    def _connect(self) -> IMAPClient:
        if self._client is not None and time.time() >= self._session_ends:
            self.close()  # its token is about to expire: a new session with a new token, between commands
        if self._client is not None:
            return self._client
        try:
            client = self._login(self.token_source.token() if self.token_source is not None else None)
        except LoginError:
            if self.token_source is None:
                raise
            # The server refused the app's token (it expired early, or was revoked): once more, on
            # a new connection, with a fresh one.
            client = self._login(self.token_source.refresh())
        self._client = client
        self._selected = None
        return client

    def _login(self, token: str | None) -> IMAPClient:
        """A new connection, logged in (SASL XOAUTH2 with `token`, else the password)."""
        client = IMAPClient(
            self.host,
            port=self.port,
            ssl=self.ssl,
            ssl_context=self.ssl_context,
            timeout=self.timeout,
        )
        try:
            client.normalise_times = False  # aware INTERNALDATEs
            if token is not None:
                client.oauth2_login(self.username, token)
                self._session_ends = self.token_source.renew_at
            else:
                client.login(self.username, self._password)
            self._learn_namespace(client)
        except BaseException:
            try:
                client.shutdown()
            except Exception:  # noqa: BLE001
                pass
            raise
        return client

    def _learn_namespace(self, client: IMAPClient) -> None:
        prefix, delimiter = "", None
        personal = None
        if client.has_capability("NAMESPACE"):
            personal = client.namespace().personal
        if personal:
            prefix, delimiter = personal[0][0] or "", personal[0][1]
        else:
            listing = client.list_folders(pattern="")
            if listing:
                delimiter = listing[0][1]
        if isinstance(delimiter, bytes):
            delimiter = delimiter.decode("ascii", "replace")
        self._prefix = prefix
        self._delimiter = delimiter or None

    @contextmanager
    def _op(self, what: str) -> Iterator[IMAPClient]:
        """Run one operation; turn every failure into MailboxError (MailboxUnreachable when no
        connection could be made)."""
        try:
            client = self._connect()
        except AuthError as exc:  # the token could not be had: no session
            self._drop()
            raise MailboxUnreachable(f"cannot sign in to the IMAP server {self.host}:{self.port}: {exc}") from exc
        except (IMAPClientError, OSError) as exc:  # refused, timed out, TLS, login, greeting
            self._drop()
            raise MailboxUnreachable(self._unreachable(exc)) from exc
        try:
            yield client
        except MailboxError:
            raise
        except (IMAPClientAbortError, LoginError, OSError) as exc:  # connection unusable
            self._drop()
            raise MailboxError(self._message(what, exc)) from exc
        except IMAPClientError as exc:
            self._selected = None  # a failed SELECT leaves no folder selected
            if any(code in str(exc) for code in ("[SERVERBUG]", "[UNAVAILABLE]", "[LIMIT]", *_TOKEN_EXPIRED)):
                self._drop()  # start the next call on a fresh session (with a fresh token)
            raise MailboxError(self._message(what, exc)) from exc

    def _unreachable(self, exc: BaseException) -> str:
        """No session: what went wrong, and the settings to look at (not the operation tried)."""
        where = f"{self.host}:{self.port}"
        if isinstance(exc, LoginError):
            check = ("[imap] username (the shared mailbox) and the app's IMAP.AccessAsApp permission"
                     if self.token_source is not None else "[imap] username and the password")
            return f"the IMAP server {where} refused the login of {self.username!r}: {self._describe(exc)} (check {check})"
        hint = "[imap] ssl and port" if isinstance(exc, ssl_lib.SSLError) else \
            "[imap] host and port, and that the server is running and reachable from here"
        return f"cannot connect to the IMAP server {where}: {self._describe(exc)} (check {hint})"

    def _message(self, what: str, exc: BaseException) -> str:
        return f"IMAP {what} failed on {self.host}:{self.port} as {self.username!r}: {self._describe(exc)}"

    def _describe(self, exc: BaseException) -> str:
        """The error as the server or the network put it, never with the password in it."""
        text = _describe(exc)
        return text.replace(self._password, "***") if self._password else text

    # -- waiting for mail -------------------------------------------------------------------

    def wait_for_change(self, folder: str, timeout: float) -> bool:
        """IMAP IDLE (RFC 2177) on `folder` for up to `timeout` seconds: True as soon as the server
        announces a change (a new or an expunged mail), False when the time ran out.  Use an
        instance of its own for this (its connection only waits).  Raises IdleUnsupported when
        the server has no IDLE, MailboxError when the connection fails."""
        with self._op(f"IDLE on {folder!r}") as client:
            if not client.has_capability("IDLE"):
                raise IdleUnsupported(f"IMAP server {self.host}:{self.port} does not offer IDLE")
            name = self._server_name(folder)
            self._select(client, name, readonly=True, fresh=True)
            # Mail that came while no IDLE listened (a reconnect: an expired token, a cut) is
            # announced by no EXISTS: a UIDNEXT that moved since the last IDLE says so.
            uidnext = client.folder_status(name, [b"UIDNEXT"]).get(b"UIDNEXT")
            missed = self._idle_uidnext is not None and uidnext != self._idle_uidnext
            self._idle_uidnext = uidnext
            if missed:
                return True
            client.idle()
            try:
                responses = client.idle_check(timeout=timeout)
            finally:
                client.idle_done()
            return any(isinstance(r, tuple) and len(r) >= 2 and r[1] in (b"EXISTS", b"EXPUNGE", b"RECENT")
                       for r in responses)

    # -- names and selection --------------------------------------------------------------

    def _server_name(self, folder: str) -> str:
        """``保留/受付`` → the server's name for it (delimiter, namespace prefix)."""
        if folder.upper() == "INBOX":
            return "INBOX"
        name = folder.strip("/")
        if self._delimiter and self._delimiter != "/":
            name = name.replace("/", self._delimiter)
        if self._prefix and not name.startswith(self._prefix) and name.upper() != "INBOX":
            name = self._prefix + name
        return name

    def _select(self, client: IMAPClient, name: str, *, readonly: bool, fresh: bool = False) -> int:
        """Select a folder (by server name); returns its UIDVALIDITY."""
        if (
            not fresh
            and self._selected is not None
            and self._selected[0] == name
            and (readonly or not self._selected[1])
        ):
            return self._selected[2]
        self._selected = None
        info = client.select_folder(name, readonly=readonly)
        uidvalidity = int(info[b"UIDVALIDITY"])
        self._selected = (name, readonly, uidvalidity)
        return uidvalidity

    # -- the Mailbox protocol --------------------------------------------------------------

    def ensure_folders(self, names: Iterable[str]) -> None:
        names = list(names)
        with self._op("creating the folders") as client:
            existing = {
                name
                for flags, _delim, name in client.list_folders()
                if not {f.upper() for f in flags if isinstance(f, bytes)} & _ABSENT_FLAGS
            }
            for folder in names:
                server_name = self._server_name(folder)
                if server_name.upper() == "INBOX" or server_name in existing:
                    continue
                log.info("creating IMAP folder %r", server_name)
                client.create_folder(server_name)
                existing.add(server_name)
                try:
                    client.subscribe_folder(server_name)
                except IMAPClientError as exc:  # only cosmetic (mail clients show subscribed ones)
                    log.warning("could not subscribe %r: %s", server_name, _describe(exc))

    def uidvalidity(self, folder: str) -> int:
        with self._op(f"STATUS {folder!r}") as client:
            status = client.folder_status(self._server_name(folder), ["UIDVALIDITY"])
            return int(status[b"UIDVALIDITY"])

    def list_uids(self, folder: str) -> list[int]:
        with self._op(f"UID SEARCH in {folder!r}") as client:
            self._select(client, self._server_name(folder), readonly=True, fresh=True)
            return sorted(int(uid) for uid in client.search(["ALL"]))

    def search_header(self, folder: str, name: str, value: str = "", min_uid: int = 1) -> list[int]:
        with self._op(f"UID SEARCH HEADER {name} in {folder!r}") as client:
            self._select(client, self._server_name(folder), readonly=True, fresh=True)
            found = client.search(["UID", f"{max(min_uid, 1)}:*", "HEADER", name, value])
            # "n:*" always takes in the highest UID, even one below n.
            return sorted(int(uid) for uid in found if int(uid) >= min_uid)

    def fetch(self, folder: str, uids: Iterable[int]) -> Iterator[RawMail]:
        wanted = list(dict.fromkeys(int(u) for u in uids))
        if not wanted:
            return
        name = self._server_name(folder)
        with self._op(f"UID FETCH RFC822.SIZE in {folder!r}") as client:
            uidvalidity = self._select(client, name, readonly=True, fresh=True)
            sizes = {uid: int(v.get(b"RFC822.SIZE") or 0) for uid, v in client.fetch(wanted, ["RFC822.SIZE"]).items()}
        for chunk in self._batches([uid for uid in wanted if uid in sizes], sizes):
            with self._op(f"UID FETCH in {folder!r}") as client:
                # another call may have selected something else in between (e.g. move)
                current = self._select(client, name, readonly=True)
                if current != uidvalidity:
                    raise MailboxError(
                        f"UIDVALIDITY of {folder!r} changed during fetch ({uidvalidity} → {current})"
                    )
                response = client.fetch(chunk, ["BODY.PEEK[]", "INTERNALDATE"])
            for uid in chunk:
                item = response.pop(uid, None)  # handed on, not kept: one copy of each mail in memory
                if item is None or item.get(_BODY) is None:
                    continue  # vanished meanwhile
                internaldate = item.get(b"INTERNALDATE")
                body = item[_BODY]
                yield RawMail(
                    ref=MailRef(folder, uidvalidity, uid),
                    data=body if isinstance(body, bytes) else bytes(body),
                    internaldate=internaldate if isinstance(internaldate, datetime) else None,
                )

    def _batches(self, uids: list[int], sizes: dict[int, int]) -> Iterator[list[int]]:
        """UID FETCH batches of at most `batch_size` mails and `batch_bytes` (one big mail alone)."""
        batch: list[int] = []
        total = 0
        for uid in uids:
            if batch and (len(batch) >= self.batch_size or total + sizes[uid] > self.batch_bytes):
                yield batch
                batch, total = [], 0
            batch.append(uid)
            total += sizes[uid]
        if batch:
            yield batch

    def move(self, ref: MailRef, dest: str) -> None:
        with self._op(f"move of UID {ref.uid} from {ref.folder!r} to {dest!r}") as client:
            src = self._server_name(ref.folder)
            dst = self._server_name(dest)
            if src == dst:
                return
            self._check_source(client, src, ref)
            if not self._present(client, ref.uid):
                log.info("UID %s no longer in %r; move to %r already done", ref.uid, ref.folder, dest)
                return
            use_move = client.has_capability("MOVE") if self.use_move is None else self.use_move
            if use_move:
                client.move([ref.uid], dst)
                return
            if not client.has_capability("UIDPLUS"):
                raise MailboxError(
                    f"IMAP server {self.host}:{self.port} offers neither MOVE nor UIDPLUS; "
                    "refusing to move (a plain EXPUNGE could delete other mails)"
                )
            if not self._dest_has_copy(client, src, dst, ref):
                client.copy([ref.uid], dst)
            client.add_flags([ref.uid], [_DELETED], silent=True)
            client.uid_expunge([ref.uid])

    def move_many(self, refs: list[MailRef], dest: str) -> None:
        """One UID MOVE for all (a few round trips instead of three per mail); without MOVE,
        one mail at a time (COPY, a check for an earlier copy, UID EXPUNGE)."""
        if not refs:
            return
        if len({(r.folder, r.uidvalidity) for r in refs}) != 1:
            raise ValueError("move_many: mails of one folder and UIDVALIDITY only")
        with self._op(f"move of {len(refs)} mails from {refs[0].folder!r} to {dest!r}") as client:
            use_move = client.has_capability("MOVE") if self.use_move is None else self.use_move
            src, dst = self._server_name(refs[0].folder), self._server_name(dest)
            if use_move and src != dst:
                self._check_source(client, src, refs[0])
                wanted = {r.uid for r in refs}
                # "n:m" of the set also names any UID in between: only the wanted ones move
                present = sorted(uid for uid in client.search(["UID", _uid_set(wanted)]) if uid in wanted)
                if present:
                    client.move(_uid_set(present), dst)
                return
        for ref in refs:
            self.move(ref, dest)

    def append(self, folder: str, data: bytes, internaldate: datetime | None = None) -> None:
        with self._op(f"APPEND to {folder!r}") as client:
            client.append(self._server_name(folder), data, msg_time=internaldate)

    # -- move helpers ----------------------------------------------------------------------

    def _check_source(self, client: IMAPClient, src: str, ref: MailRef) -> None:
        uidvalidity = self._select(client, src, readonly=False, fresh=True)
        if uidvalidity != ref.uidvalidity:
            raise MailboxError(
                f"UIDVALIDITY of {ref.folder!r} is {uidvalidity}, not {ref.uidvalidity}: "
                f"UID {ref.uid} may name another mail now"
            )

    @staticmethod
    def _present(client: IMAPClient, uid: int) -> bool:
        return uid in client.search(["UID", str(uid)])

    def _dest_has_copy(self, client: IMAPClient, src: str, dst: str, ref: MailRef) -> bool:
        """Whether an earlier, interrupted move already copied the mail to dst.

        Matched by Message-ID and size when the mail has a Message-ID, else by size and content.
        Leaves src selected read-write again.
        """
        head = client.fetch([ref.uid], [_MSGID_ITEM, "RFC822.SIZE"]).get(ref.uid, {})
        size = head.get(b"RFC822.SIZE")
        message_id = self._message_id(head.get(_MSGID_KEY) or b"")
        source_digest = None
        if message_id is None:
            body = client.fetch([ref.uid], ["BODY.PEEK[]"]).get(ref.uid, {}).get(_BODY)
            if body is None or size is None:
                return False
            source_digest = hashlib.sha256(body).digest()
        found = False
        try:
            self._select(client, dst, readonly=True, fresh=True)
            if message_id is not None:
                candidates = client.search(["HEADER", "Message-ID", message_id])
            elif size is not None:
                candidates = client.search(["LARGER", str(size - 1), "SMALLER", str(size + 1)])
            else:
                candidates = []
            if candidates:
                if message_id is not None:
                    sizes = client.fetch(candidates, ["RFC822.SIZE"])
                    found = size is None or any(v.get(b"RFC822.SIZE") == size for v in sizes.values())
                else:
                    bodies = client.fetch(candidates, ["BODY.PEEK[]"])
                    found = any(
                        v.get(_BODY) is not None and hashlib.sha256(v[_BODY]).digest() == source_digest
                        for v in bodies.values()
                    )
        finally:
            self._selected = None
        self._check_source(client, src, ref)
        if found:
            log.info("UID %s of %r is already in %r; only expunging the source", ref.uid, ref.folder, dst)
        return found

    @staticmethod
    def _message_id(header_block: bytes) -> str | None:
        if not header_block:
            return None
        msg = email.parser.BytesHeaderParser(policy=email.policy.compat32).parsebytes(header_block)
        value = msg.get("Message-ID")
        if value is None:
            return None
        value = " ".join(str(value).split())
        if not value or not value.isascii() or '"' in value or "\\" in value:
            return None
        return value


def _uid_set(uids) -> str:
    """An IMAP sequence set of the UIDs: "3:5,9" (short commands for thousands of mails)."""
    ordered = sorted(set(uids))
    parts: list[str] = []
    start = prev = ordered[0]
    for uid in ordered[1:] + [None]:
        if uid is not None and uid == prev + 1:
            prev = uid
            continue
        parts.append(str(start) if start == prev else f"{start}:{prev}")
        if uid is not None:
            start = prev = uid
    return ",".join(parts)

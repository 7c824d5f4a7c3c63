"""Microsoft 365 sign-in as an app (issue 18), against local stand-ins: tests/oauth_server.py for
the identity platform (HTTPS, self-signed), Dovecot with an oauth2 passdb that asks it to introspect
each token, and the SMTP sink accepting XOAUTH2 with a token it checks."""

from __future__ import annotations

import re
import subprocess
import sys
import textwrap
import time
from datetime import date, timedelta
from pathlib import Path

import pytest
from helpers import ROOT
from oauth_server import TokenServer

from mailbot.auth import AuthError, OAuthSettings, TokenSource, credential_expiry
from mailbot.config import ConfigError, load


@pytest.fixture
def idp(tmp_path):
    with TokenServer(tmp_path / "idp") as server:
        yield server


def settings_for(idp: TokenServer, app, **kw) -> OAuthSettings:
    base = dict(tenant_id=idp.tenant, client_id=app.client_id, authority=idp.authority, ca_file=idp.ca_file)
    if app.pem_path is not None:
        base.update(certificate_path=app.pem_path, certificate_thumbprint=app.thumbprint)
    else:
        base.update(client_secret=app.secret)
    return OAuthSettings(**(base | kw))


def test_a_token_by_client_secret_is_cached_and_renewed_before_it_expires(idp):
    app = idp.register(secret="s3cret-value", mailbox="user1")
    source = TokenSource(settings_for(idp, app))
    first = source.token()
    assert idp.check(first)["appid"] == app.client_id
    assert source.token() == first and len(app.issued) == 1  # cached
    assert not any("instance" in r for r in idp.requests)  # no instance discovery with an authority
    idp.lifetime = 2  # renewed a tenth of its life (at most 5 minutes) before it expires
    source.refresh()
    assert len(app.issued) == 2
    source.token()
    assert len(app.issued) == 2
    time.sleep(1.85)
    source.token()
    assert len(app.issued) == 3


def test_a_token_by_certificate(idp):
    app = idp.register(certificate=True, mailbox="user1")
    source = TokenSource(settings_for(idp, app))
    assert idp.check(source.token())["mailbox"] == "user1"
    kind, when = credential_expiry(settings_for(idp, app))
    assert kind == "certificate" and timedelta(days=364) < when - when.now(when.tzinfo) < timedelta(days=366)


@pytest.mark.parametrize("change, message", [
    ("secret", "auth: invalid_client: AADSTS7000215: Invalid client secret provided."),
    ("client", "auth: unauthorized_client: AADSTS700016: Application with identifier"),
    ("tenant", "auth: Unable to get authority configuration for"),
    ("certificate", "auth: invalid_client: AADSTS700027: Client assertion contains an invalid signature."),
])
def test_a_wrong_tenant_client_secret_or_certificate_is_one_line(idp, change, message):
    secret_app = idp.register(secret="right", mailbox="user1")
    cert_app = idp.register(certificate=True, mailbox="user1")
    other = idp.register(certificate=True, mailbox="user1")
    s = {"secret": settings_for(idp, secret_app, client_secret="wrong"),
         "client": settings_for(idp, secret_app, client_id="00000000-0000-0000-0000-000000000000"),
         "tenant": settings_for(idp, secret_app, authority=idp.authority.rsplit("/", 1)[0] + "/other-tenant"),
         "certificate": settings_for(idp, cert_app, certificate_path=other.pem_path,
                                     certificate_thumbprint=other.thumbprint)}[change]
    with pytest.raises(AuthError) as e:
        TokenSource(s).check()
    assert str(e.value).startswith(message), str(e.value)
    assert "\n" not in str(e.value)


def test_auth_config_names_the_key(tmp_path, idp, monkeypatch):
    app = idp.register(secret="s3cret", mailbox="user1")
    secret_file = tmp_path / "secret.txt"
    secret_file.write_text("s3cret\n")
    good = textwrap.dedent(f"""
        [auth]
        method = "oauth2"
        tenant_id = "{idp.tenant}"
        client_id = "{app.client_id}"
        client_secret_file = "{secret_file}"
        secret_expires = "2027-03-31"
        authority = "{idp.authority}"
        ca_file = "{idp.ca_file}"
        [imap]
        host = "outlook.office365.com"
        username = "usen_spot@usen.co.jp"
        """)
    path = tmp_path / "c.toml"
    path.write_text(good)
    settings = load(path)
    assert settings.oauth.client_secret == "s3cret" and settings.imap.password == ""  # no IMAP password needed
    assert settings.oauth.secret_expires == date(2027, 3, 31)
    for old, new, error in (
            ('client_secret_file = "', 'client_secret = "x"\n#', "auth.client_secret: never the secret itself here"),
            ('method = "oauth2"', 'method = "token"', "auth.method: 'token' is neither"),
            (f'authority = "{idp.authority}"', 'authority = "http://login"', "auth.authority: 'http://login' must be"),
            ('client_secret_file = "', 'client_secret_env = "NO_SUCH_VAR"\n#',
             "auth.client_secret_env: environment variable NO_SUCH_VAR is not set"),
            ('secret_expires = "2027-03-31"', 'secret_expires = "soon"', "auth.secret_expires: 'soon' is not a date")):
        path.write_text(good.replace(old, new, 1))
        with pytest.raises(ConfigError) as e:
            load(path)
        assert str(e.value).startswith(error), str(e.value)


def test_a_wrong_secret_stops_poll_with_one_line(tmp_path, idp):
    from types import SimpleNamespace

    app = idp.register(secret="right", mailbox="user1")
    nowhere = SimpleNamespace(host="127.0.0.1", port=1, username="user1")  # never reached: sign-in comes first
    config = oauth_config(tmp_path, idp, app, nowhere, nowhere)
    (tmp_path / "client-secret").write_text("wrong\n")
    result = poll(config)
    assert result.returncode == 2
    assert result.stderr == "mailbot: auth: invalid_client: AADSTS7000215: Invalid client secret provided.\n"
    assert not (tmp_path / "state.sqlite3").exists()


# ---------------------------------------------------------------- the whole pipeline over OAuth


def oauth_config(root: Path, idp: TokenServer, app, account, sink, poll_interval: int = 1) -> Path:
    (root / "client-secret").write_text(app.secret + "\n")
    path = root / "mailbot.toml"
    path.write_text(textwrap.dedent(f"""
        [auth]
        method = "oauth2"
        tenant_id = "{idp.tenant}"
        client_id = "{app.client_id}"
        client_secret_file = "client-secret"
        authority = "{idp.authority}"
        ca_file = "{idp.ca_file}"
        [imap]
        host = "{account.host}"
        port = {account.port}
        ssl = false
        username = "{account.username}"
        timeout = 5
        [folders]
        processed = "処理済"
        held = "保留/要確認"
        ignored = "対象外"
        [smtp]
        host = "{sink.host}"
        port = {sink.port}
        from = "usen_spot@usen.co.jp"
        username = "usen_spot@usen.co.jp"
        timeout = 5
        [state]
        database = "state.sqlite3"
        [scheduler]
        poll_interval = {poll_interval}
        """), encoding="utf-8")
    return path


@pytest.fixture
def oauth_servers(tmp_path, dovecot_factory, smtp_sink_factory):
    with TokenServer(tmp_path / "idp") as idp:
        dovecot = dovecot_factory(oauth2_introspection=idp.introspection)
        account = dovecot.add_user()
        sink = smtp_sink_factory(oauth_key=idp.key)
        app = idp.register(secret="s3cret-" + account.username, mailbox=account.username)
        yield idp, app, account, sink


def poll(config: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "mailbot", "poll", "--config", str(config)], capture_output=True,
                          text=True, timeout=300, cwd=ROOT)


def test_the_whole_pipeline_runs_with_oauth_and_no_password(oauth_servers, tmp_path):
    from demo.samples import sample_mails
    from test_loop import EXPECTED, NOW

    idp, app, account, sink = oauth_servers
    for _name, data in sample_mails(NOW):
        account.append("INBOX", data)
    config = oauth_config(tmp_path, idp, app, account, sink)
    assert "password" not in config.read_text()
    result = poll(config)
    assert result.returncode == 0, result.stderr
    assert "19 mails decided, 15 replies sent, 19 mails filed" in result.stdout
    replies = sink.messages()
    assert len(replies) == sum(1 for e in EXPECTED.values() if e[2]) == 15
    assert {r.auth_user for r in replies} == {"usen_spot@usen.co.jp"}  # XOAUTH2 as the shared mailbox
    assert account.messages("INBOX") == {}
    assert len(app.issued) == 1  # one token served IMAP and SMTP
    assert poll(config).stdout.startswith("0 mails decided")


def test_token_expiry_mid_cycle_loses_and_repeats_nothing(oauth_servers, tmp_path):
    """Tokens live 4 s: sessions end and start again with new tokens while 19 mails are decided,
    replied to and filed over several polls of `mailbot run`; every mail is filed once and every
    reply sent once."""
    from demo.samples import sample_mails
    from helpers import running_bot
    from test_loop import NOW

    idp, app, account, sink = oauth_servers
    idp.lifetime = 4
    config = oauth_config(tmp_path, idp, app, account, sink)
    mails = sample_mails(NOW)
    with running_bot(config):
        for i, (_name, data) in enumerate(mails):
            account.append("INBOX", data)
            if i % 5 == 4:
                time.sleep(2.5)  # across a token's life
        end = time.monotonic() + 90
        while time.monotonic() < end and (account.messages("INBOX") or len(sink.messages()) < 15):
            time.sleep(0.5)
        time.sleep(5)  # another expiry or two: nothing more may happen
    replies = sink.messages()
    assert len(replies) == 15 and len({str(r.message["Message-ID"]) for r in replies}) == 15
    filed = sum(len(account.messages(f)) for f in ("処理済", "保留/要確認/原本", "対象外"))
    assert account.messages("INBOX") == {} and filed == 19
    assert len(app.issued) >= 3  # tokens were renewed along the way


def test_operators_are_warned_30_days_before_the_certificate_or_secret_expires(idp, tmp_path):
    from datetime import datetime, timezone

    from mailbot.auth import expiry_warning
    from mailbot.record.store import Store
    from mailbot.reports.health import health

    now = datetime.now(timezone.utc)
    soon = idp.register(certificate=True, mailbox="user1", cert_days=20)
    later = idp.register(certificate=True, mailbox="user1", cert_days=90)
    # 19 or 20 days, by the time of day the certificate was made (its expiry is a moment, not a day)
    assert "証明書が" in expiry_warning(settings_for(idp, soon), now, 30) and re.search(r"あと(19|20)日", expiry_warning(
        settings_for(idp, soon), now, 30))
    assert expiry_warning(settings_for(idp, later), now, 30) is None
    secret = idp.register(secret="x", mailbox="user1")
    in_ten_days = (now + timedelta(days=10, hours=1)).date()
    assert "クライアントシークレットが" in expiry_warning(settings_for(idp, secret, secret_expires=in_ten_days), now, 30)
    assert "期限切れになっています" in expiry_warning(
        settings_for(idp, secret, secret_expires=(now - timedelta(days=1)).date()), now, 30)

    # `mailbot health` and the digest say it too.
    from mailbot.config import embedded_default
    from mailbot.reports.digest import collect_for

    settings = embedded_default(tmp_path / "root")
    from dataclasses import replace

    settings = replace(settings, oauth=settings_for(idp, soon), unis_extract=None)
    store = Store(tmp_path / "state.sqlite3")
    try:
        store.set_status("poll ok", "ok")
        problems = health(settings, store, datetime.now(timezone.utc))
        assert [p.code for p in problems] == ["CREDENTIAL_EXPIRING"]
        data = collect_for(settings, store, date.today(), datetime.now(timezone.utc))
        assert any("証明書が" in a for a in data.problems.alerts)
    finally:
        store.close()


# ---------------------------------------------------------------- Exchange's IMAP, not Dovecot's

# What Exchange Online advertises after login (no CONDSTORE/QRESYNC, ESEARCH, SORT, THREAD,
# LIST-EXTENDED, SPECIAL-USE, BINARY, NOTIFY …).
EXCHANGE = {"IMAP4REV1", "SASL-IR", "UIDPLUS", "MOVE", "ID", "UNSELECT", "CHILDREN", "IDLE", "NAMESPACE", "LITERAL+"}


def test_the_pipeline_over_exchanges_capabilities(tmp_path, dovecot_factory, smtp_sink_factory):
    """Only what Exchange offers: the bot relies on nothing more (no CONDSTORE, ESEARCH, LIST
    extensions); Japanese folder names travel as modified UTF-7."""
    from demo.samples import sample_mails
    from servers import DOVECOT_CAPABILITIES
    from test_loop import NOW

    with TokenServer(tmp_path / "idp") as idp:
        lacking = tuple(c for c in DOVECOT_CAPABILITIES if c.upper() not in EXCHANGE)
        dovecot = dovecot_factory(without=lacking, oauth2_introspection=idp.introspection)
        account = dovecot.add_user()
        sink = smtp_sink_factory(oauth_key=idp.key)
        app = idp.register(secret="s3cret", mailbox=account.username)
        for _name, data in sample_mails(NOW):
            account.append("INBOX", data)
        result = poll(oauth_config(tmp_path, idp, app, account, sink))
        assert result.returncode == 0, result.stderr
        assert "19 mails decided, 15 replies sent, 19 mails filed" in result.stdout
        assert len(account.messages("保留/要確認/原本")) == 2 and account.messages("INBOX") == {}


def test_without_namespace_and_idle_the_bot_polls(tmp_path, dovecot_factory, smtp_sink_factory):
    """A server without NAMESPACE (the delimiter from LIST) and without IDLE (new mail noticed by
    polling only, said once in the log)."""
    from demo.samples import sample_mails
    from helpers import running_bot
    from test_loop import NOW

    with TokenServer(tmp_path / "idp") as idp:
        dovecot = dovecot_factory(without=("NAMESPACE", "IDLE"), oauth2_introspection=idp.introspection)
        account = dovecot.add_user()
        sink = smtp_sink_factory(oauth_key=idp.key)
        app = idp.register(secret="s3cret", mailbox=account.username)
        config = oauth_config(tmp_path, idp, app, account, sink)
        with running_bot(config) as proc:
            for _name, data in sample_mails(NOW)[:3]:
                account.append("INBOX", data)
            end = time.monotonic() + 60
            while time.monotonic() < end and account.messages("INBOX"):
                time.sleep(0.5)
        _out, err = proc.communicate()
        assert account.messages("INBOX") == {}
        assert err.count("does not offer IDLE") == 1 and "new mail is noticed by polling only" in err


def test_a_session_ended_for_an_expired_token_mid_poll_and_mid_idle(tmp_path, dovecot_factory, smtp_sink_factory):
    """The server ends every session because their token expired (as Exchange does with
    BYE … AccessTokenExpired) while `mailbot run` polls and IDLEs: the bot's cached token is
    refused at the next login, it fetches a fresh one and carries on — the IDLE connection too,
    so new mail is still noticed at once — with nothing lost or repeated."""
    from demo.samples import sample_mails
    from faults import FaultProxy
    from helpers import running_bot
    from test_loop import NOW

    with TokenServer(tmp_path / "idp") as idp:
        dovecot = dovecot_factory(oauth2_introspection=idp.introspection)
        account = dovecot.add_user()
        sink = smtp_sink_factory(oauth_key=idp.key)
        app = idp.register(secret="s3cret", mailbox=account.username)
        mails = sample_mails(NOW)
        with FaultProxy(dovecot.port, "imap") as proxy:
            proxied = type("Account", (), {"host": account.host, "port": proxy.port, "username": account.username})
            config = oauth_config(tmp_path, idp, app, proxied, sink, poll_interval=30)  # IDLE wakes it
            with running_bot(config):
                for _name, data in mails[:8]:
                    account.append("INBOX", data)
                end = time.monotonic() + 60
                while time.monotonic() < end and account.messages("INBOX"):
                    time.sleep(0.3)
                assert account.messages("INBOX") == {}
                time.sleep(1)
                idp.expire_all()
                proxy.cut()  # every open session ends (the poll's and the IDLE's)
                time.sleep(1.5)  # the IDLE watcher logs in again (refused, then a fresh token)
                started = time.monotonic()
                for _name, data in mails[8:]:
                    account.append("INBOX", data)
                while time.monotonic() < started + 25 and account.messages("INBOX"):
                    time.sleep(0.3)
                noticed = time.monotonic() - started
            assert account.messages("INBOX") == {} and noticed < 25  # well before the 30 s poll
        replies = sink.messages()
        assert len(replies) == 15 and len({str(r.message["Message-ID"]) for r in replies}) == 15
        filed = sum(len(account.messages(f)) for f in ("処理済", "保留/要確認/原本", "対象外"))
        assert filed == 19
        assert len(app.issued) >= 2  # the expired token was replaced


def test_a_note_too_big_for_the_server_is_filed_without_the_original(tmp_path, dovecot_factory, smtp_sink):
    """Exchange refuses messages over its size limit: the held note of a big mail goes in without
    the original attached, saying the original waits in the held originals folder."""
    import email
    from email import policy

    from test_loop import HELD, ORIGINALS, write_config

    dovecot = dovecot_factory()
    account = dovecot.add_user()
    big = email.message.EmailMessage()
    big["From"] = "鈴木 一郎 <i-suzuki@usen.co.jp>"
    big["To"] = "usen_spot@usen.co.jp"
    big["Subject"] = "USEN SPOT 店舗の写真について（ご相談）"
    big["Date"] = "Fri, 20 Nov 2026 10:00:00 +0900"
    big["Message-ID"] = "<big.1@usen.co.jp>"
    big.set_content("店舗の写真を送ります。設置場所のご相談です。")
    big.add_attachment(b"\xff\xd8" + bytes(900_000), "image", "jpeg", filename="shop.jpg")  # ~1.2 MB encoded
    account.append("INBOX", big.as_bytes())  # delivered (the limit is for what clients APPEND)
    dovecot.max_mail_size = "1M"
    dovecot.restart()
    config = write_config(tmp_path, account, smtp_sink)
    result = poll(config)
    assert result.returncode == 0, result.stderr
    (original,) = account.messages(ORIGINALS).values()
    assert len(original) > 1_000_000
    (note,) = account.messages(HELD).values()
    assert len(note) < 200_000
    text = email.message_from_bytes(note, policy=policy.default).get_body(("plain",)).get_content()
    assert f"大きすぎて添付できないため「{ORIGINALS}」フォルダにあります" in text


def test_exchange_throttling_ends_the_cycle_and_the_next_one_carries_on(imap_account, smtp_sink, tmp_path):
    """Exchange answers a busy client "NO [UNAVAILABLE] Server Unavailable. 15": the session is
    dropped, the move is tried again on a fresh one (or in the next cycle), and every mail is filed
    once, every reply sent once."""
    from demo.samples import sample_mails
    from faults import FaultProxy
    from test_faults import config as faults_config
    from test_loop import NOW

    for _name, data in sample_mails(NOW)[:8]:
        imap_account.append("INBOX", data)
    with FaultProxy(imap_account.port, "imap") as proxy:
        proxy.answer_on(r"^UID MOVE|^UID COPY", "NO [UNAVAILABLE] Server Unavailable. 15")
        config = faults_config(tmp_path, imap_account, smtp_sink, imap=proxy)
        first = poll(config)
        assert first.returncode == 0, first.stderr
        assert "8 mails decided, 5 replies sent" in first.stdout and proxy.hits[0].startswith("UID")
        second = poll(config)
        assert second.returncode == 0 and second.stdout.startswith("0 mails decided"), second.stdout
    assert imap_account.messages("INBOX") == {}
    assert sum(len(imap_account.messages(f)) for f in ("処理済", "保留/要確認/原本", "対象外")) == 8
    replies = smtp_sink.messages()
    assert len(replies) == len({str(r.message["Message-ID"]) for r in replies}) == 5


def test_a_login_the_server_refuses_names_what_to_check_with_oauth(oauth_servers):
    """A token for another mailbox (the app lacks access to this one): one line naming the shared
    mailbox and the app's permission, not the password an app does not have."""
    from mailbot.mailbox import MailboxUnreachable
    from mailbot.mailbox.imap import ImapMailbox

    idp, _app, account, _sink = oauth_servers
    other = idp.register(secret="other-s3cret", mailbox="someone-else")
    mailbox = ImapMailbox(account.host, account.port, False, account.username, "", timeout=5,
                          token_source=TokenSource(settings_for(idp, other)))
    try:
        with pytest.raises(MailboxUnreachable) as info:
            mailbox.list_uids("INBOX")
    finally:
        mailbox.close()
    assert f"refused the login of {account.username!r}" in str(info.value)
    assert "(check [imap] username (the shared mailbox) and the app's IMAP.AccessAsApp permission)" in str(info.value)
    assert "password" not in str(info.value)

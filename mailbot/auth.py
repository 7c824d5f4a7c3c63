"""Logging in to Microsoft 365 as an app (OAuth 2.0 client credentials), as Exchange Online requires
for IMAP (IMAP.AccessAsApp) and SMTP (SMTP.SendAsApp): the token is passed as SASL XOAUTH2.

    source = TokenSource(settings.oauth)     # [auth] method = "oauth2"
    source.token()                           # an access token; cached, renewed before it expires
    source.expires_at                        # Unix time the current token expires
    source.refresh()                         # a new token now (the server said the old one expired)
    source.check()                           # one line for an operator on a wrong tenant/client/secret/cert

Tokens come from MSAL's ConfidentialClientApplication (scope https://outlook.office365.com/.default),
with a certificate (preferred: PEM with the private key, and its thumbprint) or a client secret.
With `authority` set (tests, sovereign clouds) MSAL does not ask Microsoft's instance discovery.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from datetime import date, datetime, timezone
from pathlib import Path

from mailbot.text import japanese_date

log = logging.getLogger("mailbot")
SCOPE = "https://outlook.office365.com/.default"
RENEW_BEFORE = 300.0  # seconds before expiry a token is renewed (an IMAP session reconnected); at most a tenth of its life


class AuthError(Exception):
    """Signing in failed: one line an operator can act on."""


@dataclass(frozen=True)
class OAuthSettings:
    tenant_id: str
    client_id: str
    certificate_path: Path | None = None  # PEM: private key and certificate
    certificate_thumbprint: str | None = None
    client_secret: str | None = field(default=None, repr=False)
    secret_expires: date | None = None  # a client secret's expiry, as the portal showed it
    authority: str | None = None  # default https://login.microsoftonline.com/<tenant_id>
    ca_file: Path | None = None  # trust the authority's TLS certificate from this file (tests, proxies)

    @property
    def authority_url(self) -> str:
        return self.authority or f"https://login.microsoftonline.com/{self.tenant_id}"


def certificate_expiry(pem: bytes) -> datetime | None:
    """When the PEM's certificate stops being valid (UTC)."""
    from cryptography import x509

    try:
        cert = x509.load_pem_x509_certificate(pem)
    except ValueError:
        return None
    return cert.not_valid_after_utc


def credential_expiry(settings: OAuthSettings) -> tuple[str, datetime] | None:
    """("certificate" | "client secret", when it expires), where known."""
    if settings.certificate_path is not None:
        try:
            when = certificate_expiry(settings.certificate_path.read_bytes())
        except OSError:
            return None
        return ("certificate", when) if when else None
    if settings.secret_expires is not None:
        return "client secret", datetime.combine(settings.secret_expires, datetime.min.time(), tzinfo=timezone.utc)
    return None


def expiry_warning(settings: OAuthSettings | None, now: datetime, days: int) -> str | None:
    """A Japanese line when the certificate or secret expires within `days` (or has expired)."""
    found = credential_expiry(settings) if settings is not None else None
    if found is None:
        return None
    what, when = found
    left = (when - now).total_seconds() / 86400
    if left > days:
        return None
    name = "証明書" if what == "certificate" else "クライアントシークレット"
    if left <= 0:
        return f"Microsoft 365 アプリの{name}が {japanese_date(when)} に期限切れになっています。ログインできません。すぐに更新してください。"
    return (f"Microsoft 365 アプリの{name}が {japanese_date(when)} に期限切れになります（あと{int(left)}日）。"
            "期限までに新しいものを登録し、設定を更新してください。")


class TokenSource:
    def __init__(self, settings: OAuthSettings):
        self.settings = settings
        self._lock = threading.Lock()  # the IDLE thread and the poll share one source
        self._app = None
        self._token: str | None = None
        self.expires_at = 0.0
        self.renew_at = 0.0  # from then on a new token is fetched (and sessions started with the old one end)

    def _credential(self) -> object:
        s = self.settings
        if s.certificate_path is None:
            return s.client_secret
        try:
            pem = s.certificate_path.read_text("ascii")
        except (OSError, UnicodeDecodeError) as e:
            raise AuthError(f"auth.certificate_path: {s.certificate_path} cannot be read ({e})") from None
        if "PRIVATE KEY" not in pem:
            raise AuthError(f"auth.certificate_path: {s.certificate_path} has no private key (a PEM with both "
                            "the private key and the certificate is needed)")
        return {"private_key": pem, "thumbprint": s.certificate_thumbprint}

    def _client(self):
        if self._app is None:
            import msal
            import requests

            s = self.settings
            try:
                self._app = msal.ConfidentialClientApplication(
                    s.client_id, client_credential=self._credential(), authority=s.authority_url,
                    instance_discovery=False if s.authority else None,
                    http_client=_trusting_session(str(s.ca_file)) if s.ca_file is not None else None, timeout=30)
            except ValueError as e:  # the authority's discovery failed: a wrong tenant, or no answer
                raise AuthError(f"auth: {_first_line(str(e))} (tenant {s.tenant_id}, authority {s.authority_url})") \
                    from None
            except requests.RequestException as e:
                raise AuthError(f"auth: cannot reach {s.authority_url}: {type(e).__name__}") from None
            except Exception as e:  # noqa: BLE001 - msal/cryptography on a bad key: one line
                raise AuthError(f"auth.certificate_path: the private key cannot be used ({type(e).__name__})") \
                    from None
        return self._app

    def token(self) -> str:
        """An access token valid for at least RENEW_BEFORE seconds more."""
        with self._lock:
            if self._token is not None and time.time() < self.renew_at:
                return self._token
            return self._acquire()

    def refresh(self) -> str:
        """A new token now: the server said the one in hand expired."""
        with self._lock:
            self._app = None  # MSAL would hand back its cached token
            return self._acquire()

    def check(self) -> None:
        """Sign in once; AuthError with one line when the tenant, client, secret or certificate is wrong."""
        self.token()

    def _acquire(self) -> str:
        import requests

        try:
            result = self._client().acquire_token_for_client(scopes=[SCOPE])
        except requests.RequestException as e:
            raise AuthError(f"auth: cannot reach {self.settings.authority_url}: {type(e).__name__}") from None
        if "access_token" not in result:
            raise AuthError(f"auth: {result.get('error', 'error')}: "
                            f"{_first_line(result.get('error_description', ''))}")
        self._token = result["access_token"]
        life = float(result.get("expires_in", 3600))
        self.expires_at = time.time() + life
        self.renew_at = self.expires_at - min(RENEW_BEFORE, life / 10)
        log.info("auth: new access token for %s, valid %d s", self.settings.client_id, int(result.get("expires_in", 0)))
        return self._token


def _trusting_session(ca_file: str):
    """A requests session that trusts `ca_file` on every request (a Session's own `verify` loses to
    $REQUESTS_CA_BUNDLE); requests is imported only when OAuth is used."""
    import requests

    class Session(requests.Session):
        def request(self, method, url, **kwargs):  # noqa: ANN001, ANN003 - requests' signature
            kwargs.setdefault("verify", ca_file)
            return super().request(method, url, **kwargs)

    return Session()


def _first_line(text: str) -> str:
    return " ".join(text.strip().splitlines()[:1])[:300]

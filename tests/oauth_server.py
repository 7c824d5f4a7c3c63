"""A local stand-in for Microsoft's identity platform, without the internet (issue 18).

    with TokenServer(tmp_path) as idp:
        app = idp.register(secret="s3cret", mailbox="user1")            # a client secret
        app = idp.register(certificate=True, mailbox="user1")           # a certificate (PEM + thumbprint)
        idp.authority        # https://127.0.0.1:PORT/<tenant>  (HTTPS, self-signed: idp.ca_file)
        idp.introspection    # http://127.0.0.1:PORT2/introspect (for Dovecot's oauth2 passdb)
        idp.lifetime = 5     # seconds an access token lives
        idp.key              # the HS256 key the access tokens are signed with (the SMTP sink checks them)

Endpoints as MSAL uses them for the client-credentials flow: GET
/<tenant>/v2.0/.well-known/openid-configuration and POST /<tenant>/oauth2/v2.0/token (client_secret,
or a client_assertion signed with the registered certificate's key, RS256, x5t = thumbprint).  Errors
are Microsoft's: AADSTS90002 (tenant), AADSTS700016 (client), AADSTS7000215 (secret), AADSTS700027
(certificate).  The access token is a JWT for https://outlook.office365.com with the mailbox the app
may open (as an application access policy scopes it); the introspection endpoint answers Dovecot
with {"active", "username"} after checking signature and expiry.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
import secrets
import ssl
import threading
import time
import urllib.parse
import uuid
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import jwt
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

RESOURCE = "https://outlook.office365.com"


def _self_signed(common_name: str, days: int, san_ip: str | None = None) -> tuple[bytes, bytes, x509.Certificate]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    now = dt.datetime.now(dt.timezone.utc)
    builder = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
               .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(minutes=5))
               .not_valid_after(now + dt.timedelta(days=days)))
    if san_ip:
        import ipaddress

        builder = builder.add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address(san_ip))]),
                                        critical=False)
    cert = builder.sign(key, hashes.SHA256())
    key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
    return key_pem, cert.public_bytes(serialization.Encoding.PEM), cert


@dataclass
class App:
    client_id: str
    mailbox: str
    secret: str | None = None
    certificate: x509.Certificate | None = None
    pem_path: Path | None = None  # private key + certificate, as the bot is given it
    thumbprint: str = ""  # SHA-1 of the certificate, hex (as the portal shows it)
    issued: list[float] = field(default_factory=list)  # when tokens were issued


class TokenServer:
    def __init__(self, root: Path, tenant: str | None = None):
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self.tenant = tenant or str(uuid.uuid4())
        self.apps: dict[str, App] = {}
        self.lifetime = 3600
        self.key = secrets.token_hex(32)
        key_pem, cert_pem, _ = _self_signed("127.0.0.1", 2, san_ip="127.0.0.1")
        (self.root / "idp.key").write_bytes(key_pem)
        self.ca_file = self.root / "idp.pem"
        self.ca_file.write_bytes(cert_pem)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(self.ca_file, self.root / "idp.key")
        self._https = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._https.socket = context.wrap_socket(self._https.socket, server_side=True)
        self._http = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.requests: list[str] = []
        self.serial = 0  # tokens are numbered
        self.valid_from = 0  # tokens numbered below this are refused: "expired"
        for server in (self._https, self._http):
            threading.Thread(target=server.serve_forever, daemon=True).start()

    @property
    def authority(self) -> str:
        return f"https://127.0.0.1:{self._https.server_address[1]}/{self.tenant}"

    @property
    def introspection(self) -> str:
        return f"http://127.0.0.1:{self._http.server_address[1]}/introspect"

    def register(self, *, mailbox: str, secret: str | None = None, certificate: bool = False,
                 cert_days: int = 365) -> App:
        app = App(str(uuid.uuid4()), mailbox, secret)
        if certificate:
            key_pem, cert_pem, cert = _self_signed("mailbot", cert_days)
            app.certificate = cert
            app.pem_path = self.root / f"{app.client_id}.pem"
            app.pem_path.write_bytes(key_pem + cert_pem)
            app.thumbprint = cert.fingerprint(hashes.SHA1()).hex().upper()  # noqa: S303 - what Entra uses
        self.apps[app.client_id] = app
        return app

    def token_for(self, app: App, lifetime: int | None = None) -> str:
        now = int(time.time())
        self.serial += 1
        claims = {"n": self.serial, "aud": RESOURCE, "iss": f"https://sts.windows.net/{self.tenant}/", "tid": self.tenant,
                  "appid": app.client_id, "roles": ["IMAP.AccessAsApp", "SMTP.SendAsApp"], "iat": now,
                  "exp": now + (self.lifetime if lifetime is None else lifetime), "mailbox": app.mailbox,
                  "jti": secrets.token_hex(8)}
        return jwt.encode(claims, self.key, algorithm="HS256")

    def check(self, token: str) -> dict | None:
        try:
            claims = jwt.decode(token, self.key, algorithms=["HS256"], audience=RESOURCE)
        except jwt.PyJWTError:
            return None
        return claims if claims["n"] >= self.valid_from else None

    def expire_all(self) -> None:
        """Every token issued so far counts as expired from now on (the server ends such sessions)."""
        self.valid_from = self.serial + 1

    def close(self) -> None:
        for server in (self._https, self._http):
            server.shutdown()
            server.server_close()

    def __enter__(self) -> TokenServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- HTTP

    def _handler(self):
        idp = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def _json(self, status: int, body: dict) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _error(self, error: str, code: str, text: str) -> None:
                self._json(400 if error != "invalid_client" else 401,
                           {"error": error, "error_description": f"{code}: {text}", "error_codes": [int(code[6:])]})

            def do_GET(self) -> None:  # noqa: N802
                idp.requests.append(f"GET {self.path}")
                parts = self.path.strip("/").split("/")
                if parts[1:] == ["v2.0", ".well-known", "openid-configuration"] and parts[0] == idp.tenant:
                    base = idp.authority
                    self._json(200, {"issuer": f"{base}/v2.0", "token_endpoint": f"{base}/oauth2/v2.0/token",
                                     "authorization_endpoint": f"{base}/oauth2/v2.0/authorize",
                                     "tenant_region_scope": "AS"})
                else:
                    self._error("invalid_tenant", "AADSTS90002", f"Tenant '{parts[0]}' not found.")

            def do_POST(self) -> None:  # noqa: N802
                body = self.rfile.read(int(self.headers.get("Content-Length", "0"))).decode()
                form = {k: v[0] for k, v in urllib.parse.parse_qs(body).items()}
                idp.requests.append(f"POST {self.path}")
                if self.path == "/introspect":
                    claims = idp.check(form.get("token", ""))
                    self._json(200, {"active": True, "username": claims["mailbox"]} if claims else {"active": False})
                    return
                if self.path.strip("/").split("/")[0] != idp.tenant:
                    self._error("invalid_request", "AADSTS90002", "Tenant not found.")
                    return
                app = idp.apps.get(form.get("client_id", ""))
                if app is None:
                    self._error("unauthorized_client", "AADSTS700016",
                                f"Application with identifier '{form.get('client_id')}' was not found in the directory.")
                    return
                if form.get("grant_type") != "client_credentials" or form.get("scope") != f"{RESOURCE}/.default":
                    self._error("invalid_scope", "AADSTS70011", "The provided value for scope is not valid.")
                    return
                if app.secret is not None:
                    if form.get("client_secret") != app.secret:
                        self._error("invalid_client", "AADSTS7000215", "Invalid client secret provided.")
                        return
                else:
                    assertion = form.get("client_assertion", "")
                    try:
                        header = jwt.get_unverified_header(assertion)
                        thumb = base64.urlsafe_b64decode(header.get("x5t", "") + "==").hex().upper()
                        jwt.decode(assertion, app.certificate.public_key(), algorithms=["RS256", "PS256"],
                                   audience=f"{idp.authority}/oauth2/v2.0/token",
                                   options={"verify_aud": False})
                        if thumb != app.thumbprint:
                            raise jwt.InvalidSignatureError("thumbprint")
                    except (jwt.PyJWTError, ValueError):
                        self._error("invalid_client", "AADSTS700027",
                                    "Client assertion contains an invalid signature.")
                        return
                app.issued.append(time.time())
                self._json(200, {"token_type": "Bearer", "expires_in": idp.lifetime, "ext_expires_in": idp.lifetime,
                                 "access_token": idp.token_for(app)})

        return Handler


def thumbprint_of(pem: bytes) -> str:
    cert = x509.load_pem_x509_certificate(pem)
    return hashlib.sha1(cert.public_bytes(serialization.Encoding.DER)).hexdigest().upper()  # noqa: S324

"""Over TLS the session cookie is also Secure: the real server with a self-signed certificate, in Chromium."""

from __future__ import annotations

import datetime as dt
import ipaddress
import re
import ssl
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from playwright.sync_api import Browser, expect

from tests.support.server import stop
from tests.support.web import PASSWORD, cli, log_in, serve


def _self_signed(folder: Path) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = dt.datetime.now(dt.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now).not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
            .sign(key, hashes.SHA256()))
    cert_path, key_path = folder / "tls.crt", folder / "tls.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    return cert_path, key_path


def test_session_cookie_is_secure_over_tls(browser: Browser, tmp_path: Path) -> None:
    home = tmp_path / "gateway"
    cli(["gateway", "init", "--home", str(home), "--linkage-key-id", "lk_0123456789abcdef"])
    cli(["gateway", "user", "add", "--home", str(home), "--username", "admin", "--role", "admin", "--password-stdin"],
        input=PASSWORD + "\n")
    cert, key = _self_signed(tmp_path)
    process, base = serve(["gateway", "serve", "--home", str(home), "--tls-cert", str(cert), "--tls-key", str(key)],
                          "/api/v1/health", tmp_path / "serve.out", {}, scheme="https", verify=ssl.create_default_context(cafile=str(cert)))
    context = browser.new_context(base_url=base, ignore_https_errors=True, locale="ja-JP")
    try:
        page = context.new_page()
        log_in(page, "admin")
        expect(page).to_have_url(re.compile(r"/ui/admin$"))
        cookie = next(c for c in context.cookies() if c["name"] == "tsunagu_session")
        assert cookie["secure"] and cookie["httpOnly"] and cookie["sameSite"] == "Strict"
    finally:
        context.close()
        stop(process)

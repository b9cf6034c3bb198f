"""`tsunagu gateway serve` over TLS, and its refusal to listen beyond loopback without TLS."""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
import ssl
import subprocess
from pathlib import Path

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tests.support.gateway import TSUNAGU, Home
from tests.support import server as _server


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


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_serve_over_tls(home: Home, tmp_path: Path) -> None:
    cert, key = _self_signed(tmp_path)
    trust = ssl.create_default_context(cafile=str(cert))
    process, base = _server.start([TSUNAGU, "gateway", "serve", "--home", str(home.path), "--tls-cert", str(cert),
                                   "--tls-key", str(key)], "/api/v1/health", tmp_path / "serve.out", {**os.environ, **home.env},
                                  scheme="https", verify=trust)
    try:
        assert httpx.get(f"{base}/api/v1/health", verify=trust, timeout=300).json()["status"] == "ok"
        # An unknown certificate is refused (a generous timeout: on a busy machine a 2 s one could expire first and
        # raise ConnectTimeout, which is not the refusal this checks).
        with pytest.raises(httpx.ConnectError) as refused:
            httpx.get(f"{base}/api/v1/health", timeout=300)
        assert "CERTIFICATE_VERIFY_FAILED" in str(refused.value)
    finally:
        _server.stop(process)


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_no_plain_http_beyond_loopback(home: Home) -> None:
    result = subprocess.run([TSUNAGU, "gateway", "serve", "--home", str(home.path), "--host", "0.0.0.0"],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode != 0 and "TLS" in result.stderr

"""The stand-in certificate authority issues certificates PostgreSQL and libpq accept."""

from __future__ import annotations

import stat
from pathlib import Path

import psycopg
import pytest
from cryptography import x509

from standins.postgres import PostgresServer
from standins.system import SERVICE_USER, is_root, make_base_dir, remove_dir
from standins.tls import make_ca


@pytest.fixture
def cert_dir():
    path = make_base_dir("handled-standins-tls-test-")
    yield path
    remove_dir(path)


def test_key_modes_and_names(cert_dir: Path):
    ca = make_ca(cert_dir / "ca")
    cert = ca.issue_server_cert(cert_dir / "srv", hostnames=("localhost", "db.example"))
    assert stat.S_IMODE(cert.key_path.stat().st_mode) == 0o600
    assert stat.S_IMODE(ca.key_path.stat().st_mode) == 0o600
    assert stat.S_IMODE(cert.cert_path.stat().st_mode) == 0o644
    if is_root():
        assert cert.key_path.owner() == SERVICE_USER
    parsed = x509.load_pem_x509_certificate(cert.cert_path.read_bytes())
    names = parsed.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert names.get_values_for_type(x509.DNSName) == ["localhost", "db.example"]
    assert cert.ca_path == ca.cert_path


def test_tls_only_server(cert_dir: Path):
    ca = make_ca(cert_dir / "ca")
    other_ca = make_ca(cert_dir / "other")
    cert = ca.issue_server_cert(cert_dir / "srv")
    with PostgresServer.start(version=17, name="tls", tls=cert, require_tls=True) as server:
        for host in ("127.0.0.1", "localhost"):
            url = server.url(sslmode="verify-full", sslrootcert=str(ca.cert_path))
            with psycopg.connect(url.replace("127.0.0.1", host)) as conn:
                row = conn.execute("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()")
                assert row.fetchone() == (True,)
        with pytest.raises(psycopg.OperationalError, match="no encryption"):
            psycopg.connect(server.url(sslmode="disable")).close()
        with pytest.raises(psycopg.OperationalError, match="certificate verify failed"):
            psycopg.connect(
                server.url(sslmode="verify-full", sslrootcert=str(other_ca.cert_path))
            ).close()

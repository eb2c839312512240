"""Real X.509 for the stand-ins: a throwaway certificate authority and server certificates."""

from __future__ import annotations

import datetime
import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from standins.system import chown_to_service_user, write_private_file

_VALIDITY = datetime.timedelta(days=30)
_BACKDATE = datetime.timedelta(hours=1)


@dataclass(frozen=True)
class ServerCert:
    """A server certificate and key on disk, with the CA certificate that issued it."""

    cert_path: Path
    key_path: Path
    ca_path: Path


def _new_key() -> ec.EllipticCurvePrivateKey:
    """A fresh P-256 key (fast to make; PostgreSQL, PgBouncer and libpq all accept it)."""
    return ec.generate_private_key(ec.SECP256R1())


def _write_key(path: Path, key: ec.EllipticCurvePrivateKey) -> None:
    """Write a private key as unencrypted PEM, mode 0600, owned by the service user."""
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    write_private_file(path, pem.decode("ascii"))


def _write_cert(path: Path, cert: x509.Certificate) -> None:
    """Write a certificate as world-readable PEM."""
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    path.chmod(0o644)
    chown_to_service_user(path)


def _ensure_dir(directory: Path) -> None:
    """Create `directory` (and parents) and give it to the service user."""
    directory.mkdir(parents=True, exist_ok=True)
    chown_to_service_user(directory)


@dataclass(frozen=True)
class CertificateAuthority:
    """A self-signed CA whose key stays on disk next to its certificate."""

    cert_path: Path
    key_path: Path

    def _load(self) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
        cert = x509.load_pem_x509_certificate(self.cert_path.read_bytes())
        key = serialization.load_pem_private_key(self.key_path.read_bytes(), password=None)
        if not isinstance(key, ec.EllipticCurvePrivateKey):
            raise TypeError(f"CA key {self.key_path} is not an EC key")
        return cert, key

    def issue_server_cert(
        self,
        directory: Path,
        *,
        hostnames: Sequence[str] = ("localhost",),
        ips: Sequence[str] = ("127.0.0.1",),
    ) -> ServerCert:
        """Issue a serverAuth certificate for `hostnames` and `ips` into `directory`.

        Writes `server.crt` (world-readable) and `server.key` (0600, service user), so
        `sslmode=verify-full` succeeds for any of the names or addresses.
        """
        if not hostnames and not ips:
            raise ValueError("a server certificate needs at least one hostname or IP address")
        _ensure_dir(directory)
        ca_cert, ca_key = self._load()
        key = _new_key()
        now = datetime.datetime.now(datetime.timezone.utc)
        common_name = hostnames[0] if hostnames else ips[0]
        alt_names: list[x509.GeneralName] = [x509.DNSName(name) for name in hostnames]
        alt_names += [x509.IPAddress(ipaddress.ip_address(ip)) for ip in ips]
        cert = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)]))
            .issuer_name(ca_cert.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - _BACKDATE)
            .not_valid_after(now + _VALIDITY)
            .add_extension(x509.SubjectAlternativeName(alt_names), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    content_commitment=False,
                    key_encipherment=True,
                    data_encipherment=False,
                    key_agreement=True,
                    key_cert_sign=False,
                    crl_sign=False,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
                critical=False,
            )
            .sign(ca_key, hashes.SHA256())
        )
        cert_path = directory / "server.crt"
        key_path = directory / "server.key"
        _write_key(key_path, key)
        _write_cert(cert_path, cert)
        return ServerCert(cert_path=cert_path, key_path=key_path, ca_path=self.cert_path)


def make_ca(directory: Path, common_name: str = "handled stand-in CA") -> CertificateAuthority:
    """Create a self-signed CA in `directory` as `ca.crt` (world-readable) and `ca.key` (0600)."""
    _ensure_dir(directory)
    key = _new_key()
    now = datetime.datetime.now(datetime.timezone.utc)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - _BACKDATE)
        .not_valid_after(now + _VALIDITY)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    cert_path = directory / "ca.crt"
    key_path = directory / "ca.key"
    _write_key(key_path, key)
    _write_cert(cert_path, cert)
    return CertificateAuthority(cert_path=cert_path, key_path=key_path)

"""DBaaS with the VPS in its own namespace: only the VPS's address gets in, direct and pooled."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography import x509

from standins.dbaas import Dbaas
from standins.netns import Loopback, VpsNamespace

PROBE = str(Path(__file__).with_name("nsprobe.py"))


def probe(url: str, prefix: list[str]) -> str:
    """Connect with `url` from the VPS namespace (`prefix`) or from the host (`[]`)."""
    result = subprocess.run(
        [*prefix, sys.executable, PROBE],
        input=url,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    return (result.stdout + result.stderr).strip()


@pytest.fixture(scope="module")
def dbaas_ns(net: VpsNamespace) -> Iterator[Dbaas]:
    with Dbaas.start(network=net) as service:
        yield service


def test_urls_name_the_host_address_and_the_certificate_covers_it(
    dbaas_ns: Dbaas, net: VpsNamespace
) -> None:
    assert f"@{net.host_address}:{dbaas_ns.server.port}/" in dbaas_ns.direct_url()
    assert f"@{net.host_address}:{dbaas_ns.bouncer.port}/" in dbaas_ns.pool_url()
    assert dbaas_ns.server.tls is not None
    cert = x509.load_pem_x509_certificate(dbaas_ns.server.tls.cert_path.read_bytes())
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert net.host_address in {str(ip) for ip in san.get_values_for_type(x509.IPAddress)}


def test_hba_files_trust_only_the_vps_address(dbaas_ns: Dbaas, net: VpsNamespace) -> None:
    hba = (dbaas_ns.server.data_dir / "pg_hba.conf").read_text().split("\n")
    assert [line for line in hba if line.startswith("host")] == [
        f"hostssl all all {net.vps_address}/32 scram-sha-256"
    ]
    config = dbaas_ns.bouncer.config()  # the admin console, over PgBouncer's Unix socket
    assert config["auth_type"] == "hba"
    assert config["pool_mode"] == "transaction"
    assert config["default_pool_size"] == "15"
    bouncer_hba = Path(config["auth_hba_file"]).read_text().split("\n")
    assert [line for line in bouncer_hba if line.startswith("host")] == [
        f"hostssl all all {net.vps_address}/32 scram-sha-256"
    ]


def test_verify_full_from_the_vps_namespace(dbaas_ns: Dbaas, net: VpsNamespace) -> None:
    assert probe(dbaas_ns.direct_url(), net.prefix()) == "OK doadmin tls=True"
    assert probe(dbaas_ns.pool_url(prisma=False), net.prefix()) == "OK doadmin tls=True"


@pytest.mark.parametrize("where", ["loopback", "host_address"])
def test_the_host_is_refused(dbaas_ns: Dbaas, net: VpsNamespace, where: str) -> None:
    host = "127.0.0.1" if where == "loopback" else net.host_address
    direct = dbaas_ns.direct_url().replace(f"@{net.host_address}:", f"@{host}:")
    pool = dbaas_ns.pool_url(prisma=False).replace(f"@{net.host_address}:", f"@{host}:")
    refused = probe(direct, [])
    assert refused.startswith("ERR"), refused
    assert f'no pg_hba.conf entry for host "{host}"' in refused
    refused = probe(pool, [])
    assert refused.startswith("ERR"), refused
    # PgBouncer 1.18 answers an hba miss with "login rejected" (a bad password would say so).
    assert "login rejected" in refused


def test_new_users_and_pools_work_from_the_vps_only(dbaas_ns: Dbaas, net: VpsNamespace) -> None:
    dbaas_ns.add_database("netns_extra")
    dbaas_ns.add_pool("netns-extra-pool", "netns_extra")
    dbaas_ns.add_user("netns_app", "netns-app-pw")
    url = dbaas_ns.pool_url(user="netns_app", password="netns-app-pw", pool="netns-extra-pool")
    url = url.replace("&pgbouncer=true", "")
    assert probe(url, net.prefix()) == "OK netns_app tls=True"
    assert "login rejected" in probe(url, [])


def test_loopback_fallback_dbaas_trusts_loopback_only_through_hba() -> None:
    # Where namespaces are unavailable the rehearsal runs the same code with Loopback.
    with Dbaas.start(network=Loopback("testing")) as service:
        assert "@127.0.0.1:" in service.direct_url()
        assert service.bouncer.config()["auth_type"] == "hba"
        assert probe(service.direct_url(), []) == "OK doadmin tls=True"
        assert probe(service.pool_url(prisma=False), []) == "OK doadmin tls=True"

"""The README's infrastructure table: every checklist item is mapped, every cited test exists."""

from __future__ import annotations

import re

from infra.config import KEYS
from tests.infra.harness import ROOT

DOC = ROOT / "README.md"
#: The items of the deployment checklist's Pre-Deployment infrastructure sections, and the
#: "Monitoring alerts configured" item of Post-Deployment (shared/docs/deployment-checklist.md).
CHECKLIST_ITEMS = (
    "DBaaS PostgreSQL 17 instance provisioned",
    "Basic 1GB plan (or higher)",
    "NYC3 region (same as VPS)",
    "Connection pooling enabled (PgBouncer, transaction mode)",
    "Pool size set to 15",
    "SSL/TLS enabled and required",
    "Automated daily backups configured",
    "Maintenance window configured (off-peak hours)",
    "VPS IP address whitelisted on DBaaS",
    "SSL CA certificate downloaded",
    "Connection string tested from VPS",
    "Connection string saved in secure secrets manager",
    "`PRIMARY_DATABASE_URL` with connection pooling params",
    "`DATA_DATABASE_URL` for VPS local",
    "`SPLIT_DB_MODE=true`",
    "Secure `AUTH_SECRET` generated",
    "**Monitoring alerts configured**",
)
#: `file.py::test[param]`, or `::test` for another test of the file cited just before.
_TEST_REF = re.compile(r"`(?P<file>[\w/]+\.py)?::(?P<test>\w+)(?:\[(?P<param>[\w-]+)\])?`")


def _table_rows() -> dict[str, str]:
    rows = {}
    for line in DOC.read_text().splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if line.startswith("|") and len(cells) == 3:
            rows[cells[0]] = line
    return rows


def test_every_checklist_item_has_a_row() -> None:
    rows = _table_rows()
    missing = [item for item in CHECKLIST_ITEMS if item not in rows]
    assert missing == [], f"README.md lacks rows for {missing}"


def test_every_cited_test_exists() -> None:
    cited = 0
    for item, row in _table_rows().items():
        current = None
        for match in _TEST_REF.finditer(row):
            current = match["file"] or current
            assert current is not None, row
            test, param = match["test"], match["param"]
            source = (ROOT / "tests" / current).read_text()
            assert f"def {test}(" in source, f"{item}: {current}::{test} does not exist"
            if param:
                assert f'id="{param}"' in source, f"{item}: {current}::{test}[{param}] missing"
            cited += 1
    assert cited >= 25


def test_every_config_key_is_documented() -> None:
    text = DOC.read_text()
    assert [key for key in KEYS if f"`{key}`" not in text] == []

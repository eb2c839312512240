"""The deployment checklist, read as data, and which of its items the rehearsal can prove.

:func:`read_checklist` turns ``shared/docs/deployment-checklist.md`` into :class:`Item` rows (its
``- [ ]`` lines, with the headings above them). :data:`RULES` says, for each item, which piece of
rehearsal evidence ticks it; :data:`HUMAN` names the items nobody's code can tick (sign-offs,
announcements, elapsed weeks). :func:`assess` joins the two with what a rehearsal recorded.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import Enum
from pathlib import Path

_ITEM_RE = re.compile(r"^(?P<indent>\s*)- \[[ xX]\] (?P<text>.+?)\s*$")
_HEADING_RE = re.compile(r"^(?P<hashes>#{2,4}) (?P<title>.+?)\s*$")


@dataclass(frozen=True)
class Item:
    """One checklist line: ``section`` is its headings joined by `` › ``."""

    number: int
    section: str
    text: str
    depth: int
    parent: str | None


class Status(str, Enum):
    """What the rehearsal can say about an item."""

    PROVEN = "proven"
    FAILED = "failed"
    HUMAN = "human"
    NOT_EXERCISED = "not exercised"


@dataclass(frozen=True)
class Assessment:
    """An item, its status, and the evidence (or the reason there is none)."""

    item: Item
    status: Status
    evidence: str


@dataclass(frozen=True)
class Rule:
    """Items whose text (and section) match are ticked by the evidence under ``key``."""

    pattern: str
    key: str
    section: str = ""

    def matches(self, item: Item) -> bool:
        return bool(
            re.search(self.pattern, item.text, re.I) and re.search(self.section, item.section, re.I)
        )


#: Checklist items the rehearsal proves, and the evidence key that proves each.
RULES: tuple[Rule, ...] = (
    Rule(r"PostgreSQL 17 instance provisioned", "dbaas.version"),
    Rule(
        r"Basic 1GB plan|NYC3 region|Pool size set to 15|Automated daily backups|"
        r"Maintenance window configured",
        "pulumi.tests",
    ),
    Rule(r"Connection pooling enabled", "dbaas.pool"),
    Rule(r"SSL/TLS enabled and required", "dbaas.tls"),
    Rule(r"VPS IP address whitelisted", "dbaas.hba"),
    Rule(r"SSL CA certificate downloaded", "deploy.ca"),
    Rule(r"Connection string tested from VPS", "deploy.preflight"),
    Rule(r"PRIMARY_DATABASE_URL. with connection pooling", "deploy.env"),
    Rule(r"DATA_DATABASE_URL. for VPS local", "deploy.env"),
    Rule(r"SPLIT_DB_MODE=true", "deploy.env"),
    Rule(r"Secure .AUTH_SECRET. generated", "deploy.env"),
    Rule(r"Local testing completed \(single-DB mode\)|Single-DB mode tested", "app.single_health"),
    Rule(r"Set .SPLIT_DB_MODE=false", "app.single_health"),
    Rule(r"Started dev server", "app.single_health"),
    Rule(
        r"Prisma clients generate successfully|Generated clients|Generated both Prisma",
        "deploy.app_build",
    ),
    Rule(r"Ran migrations|Ran both migration sets|Run PRIMARY migrations", "deploy.app_build"),
    Rule(r"Split-DB mode tested locally", "app.split_health"),
    Rule(r"Created .handled_data_dev. database|Staging DATA DB created", "deploy.data_db"),
    Rule(r"Created .handled_primary_dev. database|Staging PRIMARY DB created", "dbaas.version"),
    Rule(r"Set .SPLIT_DB_MODE=true. on staging|Set .SPLIT_DB_MODE=true.$", "deploy.env"),
    Rule(r"Connect to DBaaS from VPS", "deploy.preflight"),
    Rule(r"Verify schema creation|Verify tables created", "split.verify"),
    Rule(r"Verified .pgbouncer=true. in connection string", "deploy.env"),
    Rule(r"Checked pool size", "dbaas.pool"),
    Rule(r"Tested concurrent connections", "load.concurrency"),
    Rule(r"Staging VPS configured", "vps.ssh"),
    Rule(r"Created staging copy of production database", "source.generated"),
    Rule(r"Ran .migrate-production-data.sh.", "split.migrate"),
    Rule(
        r"Verified all row counts match|^Users$|^Roles$|^Permissions$|^Integration runs$|"
        r"^Carriers$|^Services$|^Delivery matrix$|^Workspace tables$",
        "split.verify",
    ),
    Rule(r"Deployed application code to staging", "deploy.app_build"),
    Rule(
        r"Tested all features work|^User login$|^Role management$|^Integration history$",
        "load.requests",
    ),
    Rule(r"Backup everything", "deploy.backup"),
    Rule(r"Upload backup to external storage", "deploy.backup_upload"),
    Rule(r"Step 1: Run data migration", "split.migrate"),
    Rule(
        r"Step 2: Validate migration|All row counts match|No data loss|Foreign keys intact",
        "split.verify",
    ),
    Rule(r"Step 3: Update application environment", "deploy.env"),
    Rule(r"Step 4: Rebuild application", "deploy.app_build"),
    Rule(r"Step 5: Restart services", "deploy.restart"),
    Rule(r"Step 6: Verify health|Health check shows both databases connected", "app.split_health"),
    Rule(r"No errors in PM2 logs", "check.pm2_logs"),
    Rule(r"No connection errors|Both databases healthy", "check.health"),
    Rule(r"PRIMARY DB connections|DATA DB connections", "check.connections"),
    Rule(r"Application logs", "check.pm2_logs"),
    Rule(r"Error rates|Response times", "load.requests"),
    Rule(r"Monitoring alerts configured", "pulumi.tests"),
    Rule(r"^Network configuration$", "dbaas.hba"),
    Rule(r"^Environment variables prepared$", "deploy.env"),
    Rule(r"^Test connection pooling$", "dbaas.pool"),
    Rule(r"No errors in PostgreSQL logs", "check.pg_logs"),
    Rule(r"Data isolation tests pass", "split.verify"),
)

#: Sections and items that only people can tick: sign-offs, announcements, elapsed weeks.
HUMAN: tuple[Rule, ...] = (
    Rule(r".", "human", section=r"Communication Plan|Sign-Off|Team availability"),
    Rule(
        r"Maintenance window scheduled|Team availability|Lead developer|Ops engineer|"
        r"On-call engineer|Stakeholders",
        "human",
    ),
    Rule(
        r"All developers have pulled|Documentation reviewed|Team comfortable|"
        r"No critical issues reported|Old database archived",
        "human",
    ),
    Rule(r"\b1 week\b|Hour 1|Hours 2-24|Hours 25-48|Session cach", "human"),
    Rule(r"Connection string saved in secure secrets manager", "human"),
)


def read_checklist(path: Path) -> list[Item]:
    """Every ``- [ ]`` line of the checklist, in order, outside code blocks."""
    items: list[Item] = []
    headings: dict[int, str] = {}
    parents: list[tuple[int, str]] = []
    in_code = False
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip().startswith("```"):
            in_code = not in_code
            continue
        if in_code:
            continue
        heading = _HEADING_RE.match(line)
        if heading:
            level = len(heading["hashes"])
            headings = {k: v for k, v in headings.items() if k < level}
            headings[level] = heading["title"]
            parents = []
            continue
        match = _ITEM_RE.match(line)
        if not match:
            continue
        depth = len(match["indent"].expandtabs(2)) // 2
        parents = [(d, t) for d, t in parents if d < depth]
        text = match["text"].replace("**", "").strip()
        items.append(
            Item(
                number=len(items) + 1,
                section=" › ".join(headings[k] for k in sorted(headings)),
                text=text,
                depth=depth,
                parent=parents[-1][1] if parents else None,
            )
        )
        parents.append((depth, text))
    return items


def assess(
    items: Sequence[Item],
    evidence: Mapping[str, tuple[bool, str]],
) -> list[Assessment]:
    """Join checklist items with the rehearsal's evidence (``key -> (passed, text)``)."""
    out: list[Assessment] = []
    for item in items:
        rule = next((r for r in RULES if r.matches(item)), None)
        if rule is not None and rule.key in evidence:
            passed, text = evidence[rule.key]
            out.append(Assessment(item, Status.PROVEN if passed else Status.FAILED, text))
        elif any(r.matches(item) for r in HUMAN):
            out.append(
                Assessment(item, Status.HUMAN, "a person's sign-off, message or elapsed time")
            )
        elif rule is not None:
            out.append(
                Assessment(item, Status.NOT_EXERCISED, f"no evidence recorded for {rule.key}")
            )
        else:
            out.append(Assessment(item, Status.NOT_EXERCISED, "outside what the rehearsal runs"))
    return out

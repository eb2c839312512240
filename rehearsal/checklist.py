"""The deployment checklist, read as data, and which of its items the rehearsal can prove.

:func:`read_checklist` turns ``shared/docs/deployment-checklist.md`` into :class:`Item` rows (its
``- [ ]`` lines, with the headings above them). :data:`RULES` says, for each item, which piece of
rehearsal evidence ticks it (a proof of :mod:`rehearsal.proofs`, from facts measured in the run);
:data:`GAPS` names the items a rehearsal cannot prove, with the reason; :data:`HUMAN` the items
nobody's code can tick (sign-offs, announcements, elapsed weeks). :func:`assess` joins them with
what a rehearsal recorded, and :func:`counts` counts the result.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import Enum
from pathlib import Path


@functools.cache
def _compiled(pattern: str) -> re.Pattern[str]:
    return re.compile(pattern, re.I)


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
    """Items whose text (and section) match are ticked by the evidence under ``key``; without
    that evidence in a run they are not exercised, for the reason ``missing`` (when given)."""

    pattern: str
    key: str
    section: str = ""
    missing: str = ""

    def matches(self, item: Item) -> bool:
        return bool(
            _compiled(self.pattern).search(item.text)
            and _compiled(self.section).search(item.section)
        )


_NO_SMOKE = "no smoke check recorded"

#: Checklist items the rehearsal proves, and the evidence key that proves each: every key is a
#: proof in :data:`rehearsal.proofs.PROOFS`, made from facts measured in the run.
RULES: tuple[Rule, ...] = (
    Rule(r"PostgreSQL 17 instance provisioned", "dbaas.version"),
    Rule(
        r"Basic 1GB plan|NYC3 region|Connection pooling enabled|Pool size set to 15|"
        r"Automated daily backups|Maintenance window configured|Monitoring alerts configured",
        "pulumi.tests",
    ),
    Rule(r"SSL/TLS enabled and required", "dbaas.tls"),
    Rule(r"VPS IP address whitelisted|^Network configuration$", "dbaas.hba"),
    Rule(r"SSL CA certificate downloaded", "deploy.ca"),
    Rule(r"Connection string tested from VPS|Connect to DBaaS from VPS", "primary.reachable"),
    Rule(r"^Environment variables prepared$|Step 3: Update application environment", "env.file"),
    Rule(r"PRIMARY_DATABASE_URL. with connection pooling|Verified .pgbouncer=true.", "env.primary"),
    Rule(r"DATA_DATABASE_URL. for VPS local", "env.data"),
    Rule(r"SPLIT_DB_MODE=true.( on staging)?$", "env.split_mode"),
    Rule(r"Secure .AUTH_SECRET. generated", "env.auth_secret"),
    Rule(r"Set .SPLIT_DB_MODE=false", "app.single_health"),
    Rule(r"Created .handled_primary_dev. database|Staging PRIMARY DB created", "primary.database"),
    Rule(r"Created .handled_data_dev. database|Staging DATA DB created", "deploy.data_db"),
    Rule(r"Ran both migration sets|Run PRIMARY migrations", "app.migrations"),
    Rule(r"Verify schema creation|Verify tables created", "primary.schemas"),
    Rule(r"^Test connection pooling$|Tested concurrent connections", "load.concurrency"),
    Rule(r"Ran .migrate-production-data.sh.|Step 1: Run data migration", "split.migrate"),
    Rule(
        r"Verified all row counts match|Step 2: Validate migration|All row counts match|"
        r"No data loss|Foreign keys intact",
        "split.verify",
    ),
    Rule(r"^Users$", "verify.users"),
    Rule(r"^Roles$", "verify.roles"),
    Rule(r"^Permissions$", "verify.permissions"),
    Rule(r"^Integration runs$", "verify.integration_runs"),
    Rule(r"^Carriers$", "verify.carriers"),
    Rule(r"^Services$", "verify.services"),
    Rule(r"^Delivery matrix$", "verify.delivery_matrix"),
    Rule(r"^Workspace tables$", "verify.workspace"),
    Rule(r"Deployed application code to staging", "app.deployed"),
    Rule(r"Backup everything", "deploy.backup"),
    Rule(r"Upload backup to external storage", "deploy.backup_upload"),
    Rule(r"Step 4: Rebuild application", "app.build"),
    Rule(r"Step 5: Restart services", "deploy.restart"),
    Rule(r"Step 6: Verify health|Health check shows both databases connected", "app.split_health"),
    Rule(r"No errors in PM2 logs|Application logs", "check.pm2_logs"),
    Rule(r"No errors in PostgreSQL logs", "check.pg_logs"),
    Rule(r"^PRIMARY DB connections$", "check.primary_connections"),
    Rule(r"^DATA DB connections$", "check.data_connections"),
    Rule(r"^Response times$", "load.latency"),
    Rule(r"^Error rates$", "load.errors"),
    # the app's features, by the smoke checks the window records (rehearsal.smoke.SMOKE)
    Rule(
        r"Local testing completed \(single-DB mode\)|^Single-DB mode tested$",
        "smoke.single",
        missing=_NO_SMOKE,
    ),
    Rule(r"Tested authentication flow", "smoke.single_login", missing=_NO_SMOKE),
    Rule(r"Tested data imports", "smoke.single_upload", missing=_NO_SMOKE),
    Rule(r"Tested transformations", "smoke.single_transform", missing=_NO_SMOKE),
    Rule(
        r"Split-DB mode tested locally|Tested all features work", "smoke.split", missing=_NO_SMOKE
    ),
    Rule(r"All features work identically", "smoke.identical", missing=_NO_SMOKE),
    Rule(r"^User login$|User can log in successfully", "smoke.login", missing=_NO_SMOKE),
    Rule(r"Can create/edit users", "smoke.users", missing=_NO_SMOKE),
    Rule(r"^Role management$|Can manage roles and permissions", "smoke.roles", missing=_NO_SMOKE),
    Rule(r"^File imports$|File upload works", "smoke.upload", missing=_NO_SMOKE),
    Rule(r"^Transformations$|Data transformation works", "smoke.transform", missing=_NO_SMOKE),
    Rule(r"^Exports$|Exports work", "smoke.export", missing=_NO_SMOKE),
    Rule(r"^Integration history$", "smoke.history", missing=_NO_SMOKE),
    Rule(
        r"Session caching working|Session cache effectiveness",
        "smoke.session_cache",
        missing=_NO_SMOKE,
    ),
)


@dataclass(frozen=True)
class Gap:
    """Items a rehearsal cannot prove (though code could), and why."""

    pattern: str
    reason: str
    section: str = ""

    def matches(self, item: Item) -> bool:
        return Rule(self.pattern, "", self.section).matches(item)


_PRISMA = (
    "the fixture app has no Prisma: its `pnpm db:generate` writes a manifest standing in for "
    "the clients, so no Prisma client is generated here"
)
_APP_SUITE = (
    "the real app's test suite, linter and TypeScript build are not part of the fixture app"
)

#: Items outside what a rehearsal can prove, each with the reason.
GAPS: tuple[Gap, ...] = (
    Gap(r"Prisma clients generate|Generated clients|Generated both Prisma", _PRISMA),
    Gap(r"Started dev server", "the rehearsal runs the built app under pm2, never `pnpm dev`"),
    Gap(r"TypeScript builds|No linter errors|^Integration tests passing$", _APP_SUITE),
    Gap(r".", _APP_SUITE, section=r"Integration Tests$"),
    Gap(
        r"Created .handled_dev. database|Ran migrations: .pnpm db:migrate.",
        "the source `handled` is generated by standins/handled_data.py, not created and "
        "migrated by the app",
    ),
    Gap(r"No errors in console", "no browser session drives the app's pages"),
    Gap(
        r"Checked pool size in Digital Ocean UI",
        "DigitalOcean's UI is not reachable from a rehearsal; the size the Pulumi program "
        "sets is proven under 'Pool size set to 15'",
    ),
    Gap(
        r"Staging VPS configured",
        "the VPS is a local stand-in (sshd and a deploy user, in a network namespace) that the "
        "rehearsal sets up itself; no staging VPS is configured",
    ),
    Gap(
        r"Created staging copy of production database",
        "the rehearsal generates synthetic data (standins/handled_data.py) at the scale asked "
        "for; it does not copy production",
    ),
    Gap(
        r"^Hours? [0-9-]+: Check every",
        "the 48-hour watch (deploy/watch.py) is not run by the rehearsal; check.py runs once",
    ),
    Gap(
        r"Old database archived",
        "deploy/finalize.py archives it after the 48-hour watch, on the operator's word; the "
        "rehearsal does not run it",
    ),
)

#: Sections and items that only people can tick: sign-offs, announcements, elapsed weeks.
HUMAN: tuple[Rule, ...] = (
    Rule(
        r".",
        "human",
        section=r"Communication Plan|Sign-Off|Team availability|Staging Validation \(1 Week\)|"
        r"Post-Deployment \(Week 1\)",
    ),
    Rule(
        r"Maintenance window scheduled|Team availability|Lead developer|Ops engineer|"
        r"On-call engineer|Stakeholders",
        "human",
    ),
    Rule(r"All developers have pulled", "human"),
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
    """Join checklist items with the rehearsal's evidence (``key -> (passed, text)``).

    An item a rule names is proven or failed by that rule's evidence, or not exercised when
    the run recorded none; then the gaps (with their reasons), then what only people tick.
    """
    out: list[Assessment] = []
    for item in items:
        rule = next((r for r in RULES if r.matches(item)), None)
        gap = next((g for g in GAPS if g.matches(item)), None)
        if rule is not None and rule.key in evidence:
            passed, text = evidence[rule.key]
            out.append(Assessment(item, Status.PROVEN if passed else Status.FAILED, text))
        elif rule is not None:
            why = rule.missing or f"no evidence recorded for {rule.key}"
            out.append(Assessment(item, Status.NOT_EXERCISED, why))
        elif gap is not None:
            out.append(Assessment(item, Status.NOT_EXERCISED, gap.reason))
        elif any(r.matches(item) for r in HUMAN):
            out.append(
                Assessment(item, Status.HUMAN, "a person's sign-off, message or elapsed time")
            )
        else:
            out.append(Assessment(item, Status.NOT_EXERCISED, "outside what the rehearsal runs"))
    return out


def counts(assessments: Sequence[Assessment]) -> dict[Status, int]:
    """How many items of this run have each status (every status listed, zeros included)."""
    return {s: sum(a.status is s for a in assessments) for s in Status}

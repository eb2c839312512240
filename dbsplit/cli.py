"""The ``dbsplit`` command: a thin argparse shell over the library.

Every error dbsplit raises on purpose is caught here once and printed as one line,
``dbsplit: error: <message>``, on stderr; the exit code is the error's (see the epilog).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import psycopg

from dbsplit import __version__, watchdog
from dbsplit.config import SplitConfig, load_config
from dbsplit.connect import first_line
from dbsplit.errors import LostError, SplitError, StateError, UsageError
from dbsplit.report import write_json
from dbsplit.urls import DO_DIRECT_PORT, DO_POOL_PORT, PRISMA_ONLY_PARAMS, PgUrl, parse

EPILOG = """\
exit codes:
  0  success (plan: nothing blocks; migrate/verify: the targets equal the source;
     freeze: frozen and checked)
  1  plan has blockers (nothing written), or verify found a difference
  2  usage error: bad arguments, malformed URL, missing variable, bad split.toml,
     unknown schema, a transaction-pooler URL, or a database that cannot be reached
  3  unsafe state: the source is not frozen (migrate), changed since the copy's snapshot,
     or cannot be frozen safely; or a target holds state dbsplit cannot continue from
  4  unexpected failure while working
  5  a server stopped answering mid-step (a dead network or a hung server, noticed
     within about 20 s): what it was doing is rolled back; re-run the same command

connections (passwords never appear in output):
  --source   default $OLD_DATABASE_URL
  --primary  default $PRIMARY_DIRECT_URL, then $PRIMARY_DATABASE_URL
  --data     default $DATA_DATABASE_URL
"""

_ENV = {
    "source": ("OLD_DATABASE_URL",),
    "primary": ("PRIMARY_DIRECT_URL", "PRIMARY_DATABASE_URL"),
    "data": ("DATA_DATABASE_URL",),
}


def build_parser() -> argparse.ArgumentParser:
    """The argument parser (also used to document the command)."""
    parser = argparse.ArgumentParser(
        prog="dbsplit",
        description="Split the handled database into PRIMARY (config, customer) and DATA.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"dbsplit {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    def common(p: argparse.ArgumentParser, *, targets: bool = True) -> None:
        p.add_argument("--source", metavar="URL", help="old database (default $OLD_DATABASE_URL)")
        if targets:
            p.add_argument("--primary", metavar="URL", help="PRIMARY, direct connection")
            p.add_argument("--data", metavar="URL", help="DATA database")
            p.add_argument("--config", metavar="FILE", type=Path, help="split.toml routing")

    kw: dict[str, Any] = {"epilog": EPILOG, "formatter_class": argparse.RawDescriptionHelpFormatter}
    p = sub.add_parser("plan", help="show what would be copied where, and what blocks it", **kw)
    common(p)
    p.add_argument("--json", action="store_true", help="print the plan as JSON")
    p.add_argument("--drop-cross-db-fks", action="store_true", help="plan as migrate would")

    p = sub.add_parser("migrate", help="copy the source into PRIMARY and DATA", **kw)
    common(p)
    p.add_argument("--jobs", type=_positive, default=0, help="worker processes (default: cores)")
    p.add_argument("--freeze-source", action="store_true", help="make the source read-only first")
    p.add_argument(
        "--drop-cross-db-fks",
        action="store_true",
        help="leave out foreign keys crossing the two databases (listed in the report)",
    )
    p.add_argument("--no-verify", action="store_true", help="skip the final verify")
    p.add_argument(
        "--allow-writable-source",
        action="store_true",
        help="copy a source that is not frozen (tests, benchmarks): exact only if nothing writes",
    )
    p.add_argument("--report", metavar="FILE", type=Path, help="write a JSON report")
    p.add_argument("--pg-dump", metavar="PATH", help="pg_dump to use (default: PATH)")
    p.add_argument(
        "--split-larger-than",
        metavar="BYTES",
        type=_size,
        default=None,
        help="copy tables larger than this in several ctid ranges (e.g. 64MB)",
    )

    p = sub.add_parser("verify", help="check that both targets equal the source", **kw)
    common(p)
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.add_argument("--report", metavar="FILE", type=Path, help="also write the JSON report")
    p.add_argument("--jobs", type=_positive, default=4, help="parallel checks (default 4)")

    p = sub.add_parser(
        "freeze", help="take every role's right to connect to the source, and check it", **kw
    )
    common(p, targets=False)
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.add_argument(
        "--check",
        action="store_true",
        help="only check, changing nothing: exit 0 when frozen safely, 3 when not",
    )
    p = sub.add_parser("unfreeze", help="make the source database writable again", **kw)
    common(p, targets=False)
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p = sub.add_parser(
        "checksums", help="every table's rows and checksum in the source database", **kw
    )
    common(p, targets=False)
    p.add_argument("--json", action="store_true", help="print them as JSON")
    p.add_argument("--jobs", type=_positive, default=2, help="parallel checks (default 2)")
    p = sub.add_parser(
        "status", help="the source's freeze and write position, and each target's split", **kw
    )
    common(p)
    p.add_argument("--json", action="store_true", help="print the status as JSON")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``dbsplit``; returns the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    with watchdog.watching():
        try:
            return _dispatch(args)
        except SplitError as exc:
            # A server lost mid-step makes whatever used it fail: report the loss.
            cause = watchdog.cause(exc)
            _error(str(cause))
            return cause.exit_code
        except psycopg.Error as exc:
            lost = watchdog.lost()
            if lost is not None:
                _error(str(lost.error()))
                return LostError.exit_code
            _error(f"unexpected database error: {first_line(exc)}")
            return SplitError.exit_code
        except KeyboardInterrupt:
            _error("interrupted")
            return 130


def _error(message: str) -> None:
    line = " ".join(message.split())
    print(f"dbsplit: error: {line}", file=sys.stderr, flush=True)


def _dispatch(args: argparse.Namespace) -> int:
    from dbsplit import freeze as freezing

    cmd = args.command
    source = resolve_url(args.source, "source")
    if cmd == "freeze" and args.check:
        checked = freezing.check_source(source)
        print(json.dumps(checked.to_json(), indent=2) if args.json else checked.render())
        return 0 if checked.ok else StateError.exit_code
    if cmd == "checksums":
        from dbsplit.fingerprint import checksums

        sums = checksums(source, jobs=args.jobs)
        if args.json:
            print(json.dumps(sums, indent=2))
        else:
            for name, value in sums["tables"].items():
                print(f"{name}: {value['rows']} rows, checksum {value['sum']}")
        return 0
    if cmd in ("freeze", "unfreeze"):
        result = freezing.freeze(source) if cmd == "freeze" else freezing.unfreeze(source)
        print(json.dumps(result.to_json(), indent=2) if args.json else result.render())
        return 0
    primary = resolve_url(args.primary, "primary")
    data = resolve_url(args.data, "data")
    config = load_config(args.config)
    if cmd == "plan":
        return _plan(args, source, primary, data, config)
    if cmd == "verify":
        return _verify(args, source, primary, data, config)
    if cmd == "status":
        from dbsplit.status import status

        found = status(source=source, primary=primary, data=data, config=config)
        print(json.dumps(found.to_json(), indent=2) if args.json else found.render())
        return 0
    return _migrate(args, source, primary, data, config)


def _plan(
    args: argparse.Namespace, source: PgUrl, primary: PgUrl, data: PgUrl, config: SplitConfig
) -> int:
    from dbsplit.migrate import make_plan

    plan = make_plan(
        source=source,
        primary=primary,
        data=data,
        config=config,
        drop_cross_db_fks=args.drop_cross_db_fks,
    )
    print(json.dumps(plan.to_json(), indent=2) if args.json else plan.render())
    return 0 if plan.ok else 1


def _verify(
    args: argparse.Namespace, source: PgUrl, primary: PgUrl, data: PgUrl, config: SplitConfig
) -> int:
    from dbsplit.status import verify_with_positions

    found, ok = verify_with_positions(
        source=source, primary=primary, data=data, config=config, jobs=args.jobs
    )
    if args.report:
        write_json(args.report, found)
    print(json.dumps(found, indent=2) if args.json else found["rendered"])
    return 0 if ok else 1


def _migrate(
    args: argparse.Namespace, source: PgUrl, primary: PgUrl, data: PgUrl, config: SplitConfig
) -> int:
    from dbsplit import freeze as freezing
    from dbsplit.migrate import Options, migrate
    from dbsplit.progress import make_progress

    progress = make_progress()
    if args.freeze_source:
        progress.info(freezing.freeze(source).render())
    options = Options(
        jobs=args.jobs,
        drop_cross_db_fks=args.drop_cross_db_fks,
        pg_dump=args.pg_dump,
        split_bytes=args.split_larger_than,
        allow_writable_source=args.allow_writable_source,
    )
    report = migrate(
        source=source, primary=primary, data=data, config=config, options=options, progress=progress
    )
    status = 0
    if not args.no_verify:
        from dbsplit.status import verify_with_positions

        progress.step("verify: comparing both targets with the source")
        found, ok = verify_with_positions(
            source=source, primary=primary, data=data, config=config, jobs=args.jobs or 4
        )
        report.verify = found
        if not ok:
            for line in found["failures"]:
                progress.info(f"verify: {line}")
            status = 1
    if args.report:
        report.write(args.report)
    rows = sum(t.rows for t in report.tables.values())
    verdict = "skipped" if args.no_verify else ("passed" if status == 0 else "FAILED")
    progress.info(
        f"done in {report.seconds:.1f}s: {len(report.tables)} tables, {rows} rows; verify {verdict}"
    )
    if status:
        _error("verify found differences between the source and the targets")
    return status


def resolve_url(value: str | None, role: str) -> PgUrl:
    """The URL for ``role`` ("source", "primary", "data") from the option or its variables.

    Refuses a transaction-mode pooler, naming the direct URL to use instead.
    """
    names = _ENV[role]
    shown = "PRIMARY" if role == "primary" else ("DATA" if role == "data" else "source")
    if value is None:
        for name in names:
            if os.environ.get(name):
                value = os.environ[name]
                break
    if not value:
        raise UsageError(f"no {shown} database URL: pass --{role} or set {' or '.join(names)}")
    url = parse(value, what=f"{shown} URL")
    if url.is_transaction_pooler:
        params = tuple((k, v) for k, v in url.params if k not in PRISMA_ONLY_PARAMS)
        port = DO_DIRECT_PORT if url.port in (DO_POOL_PORT, None) else url.port
        direct = url.replace(port=port, dbname="<database>", params=params).redacted()
        hint = " (PRIMARY_DIRECT_URL)" if role == "primary" else ""
        raise UsageError(
            f"{shown} URL {url.redacted()} goes through a transaction-mode pooler, which breaks "
            f"snapshots and session state: use the direct URL instead{hint}, "
            f"{direct.replace('%3Cdatabase%3E', '<database>')}"
        )
    return url


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


_UNITS = {"": 1, "B": 1, "KB": 1024, "MB": 1024**2, "GB": 1024**3}


def _size(text: str) -> int:
    t = text.strip().upper().replace(" ", "")
    num = t.rstrip("KMGB")
    unit = t[len(num) :]
    if unit not in _UNITS or not num.isdigit():
        raise argparse.ArgumentTypeError(f"not a size: {text!r} (e.g. 64MB)")
    return int(num) * _UNITS[unit]


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())

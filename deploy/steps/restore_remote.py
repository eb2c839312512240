"""Remote side of the full restore: the window's backup restored into a new database, checked
against the checksums taken with it, then swapped in; ``handled_data`` dumped, then dropped.

The source is never written: the backup goes into ``<source>_restore_<stamp>``, created like
the source (owner, encoding, locale), inside one transaction that commits only once
``pg_restore`` has exited 0 (a ``pg_restore`` killed half-way leaves an empty new database,
dropped, and the source as it was). Every table's row count and checksum must equal the
backup's manifest. Only then the source is renamed ``<source>_before_restore_<stamp>`` (kept,
frozen) and the restored database takes its name, its ``CONNECT`` grants and its settings.
A restore over writes newer than the backup (the source's write position moved since) is
refused unless the operator says so.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dbsplit.urls import parse
from deploy.remote import spaces
from deploy.remote.journal import Journal, now
from deploy.remote.pg import BOUNDED, dbsplit_json, ident, literal, psql
from deploy.remote.progress import Meter, read_position
from deploy.remote.runtime import (
    Context,
    Failure,
    base_env,
    home_path,
    private_dir,
    run,
    say,
    scrub,
)
from deploy.steps.backup_remote import manifest_of


@dataclass(frozen=True)
class RestoreQuery:
    backup_dir: str
    prefix: str
    venv: str
    source_db: str
    data_db: str
    key_prefix: str = ""
    bucket: dict[str, Any] = field(default_factory=dict)
    backup_name: str = ""
    sha256: str = ""
    over_newer_writes: bool = False


@dataclass(frozen=True)
class RestoreState:
    name: str = ""
    local: bool = False
    sha256: str | None = None
    newer_writes: bool = False
    position: dict[str, Any] | None = None


def backup_file(req: RestoreQuery, ctx: Context) -> Path:
    """The backup to restore: ``backup_name``, else the current (or last) window's."""
    if req.backup_name:
        return home_path(req.backup_dir) / req.backup_name
    state = Journal(ctx).state()
    window = state.get("window")
    if not window:
        archived = sorted((ctx.state_dir / "windows").glob("*.json"))
        window = archived[-1].stem if archived else None
    if not window:
        raise Failure("no window has taken a backup here: name one with --data backup_name=")
    return home_path(req.backup_dir) / f"{req.prefix}-{window}.dump"


def _source_position(req: RestoreQuery, ctx: Context) -> dict[str, Any] | None:
    env = {"OLD_DATABASE_URL": str(ctx.secret("source_url"))}
    return dbsplit_json(req.venv, ["freeze", "--check"], env, ok_codes=(0, 3))[1].get("position")


def state(req: RestoreQuery, ctx: Context) -> RestoreState:
    dump = backup_file(req, ctx)
    manifest = manifest_of(dump)
    if manifest is None:
        return RestoreState(dump.name)
    local = not req.sha256 or manifest.get("sha256") == req.sha256
    position = _source_position(req, ctx)
    return RestoreState(
        dump.name, local, manifest.get("sha256"), position != manifest.get("position"), position
    )


def fetch(req: RestoreQuery, ctx: Context) -> None:
    """The backup and its manifest from Spaces, each checked by SHA-256."""
    with Journal(ctx).step("restore-fetch"):
        dump = backup_file(req, ctx)
        private_dir(dump.parent)
        where = spaces.Bucket(**req.bucket)
        key = f"{req.key_prefix}/{dump.name}"
        spaces.get_checked(where, ctx, key + ".json", dump.with_name(dump.name + ".json"), None)
        manifest = json.loads(dump.with_name(dump.name + ".json").read_text(encoding="utf-8"))
        spaces.get_checked(where, ctx, key, dump, req.sha256 or manifest.get("sha256"))
        stat = dump.stat()
        manifest.update(size=stat.st_size, mtime_ns=stat.st_mtime_ns)
        dump.with_name(dump.name + ".json").write_text(json.dumps(manifest, indent=2))


def _load(ctx: Context, dump: Path, conn: dict[str, str], owner: str) -> None:
    """``pg_restore -f - | psql`` inside one transaction that commits only if pg_restore
    exited 0, as the source's owner (``--role``: what it creates is the owner's, as in the
    source, so the app's role can read it again). A newer ``pg_restore`` may name settings an
    older server lacks (``SET transaction_timeout``, from 17 on): those lines are left out."""
    restore = subprocess.Popen(
        ["pg_restore", "--no-owner", "--no-acl", f"--role={owner}", "-f", "-", str(dump)],
        env=base_env(),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    loader = subprocess.Popen(
        ["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-f", "-"],
        env={**base_env(), **conn, "PGCONNECT_TIMEOUT": BOUNDED["PGCONNECT_TIMEOUT"]},
        stdin=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    assert restore.stdout is not None
    assert loader.stdin is not None
    loader.stdin.write(b"BEGIN;\n")
    meter = Meter(ctx, "restore", dump.stat().st_size)
    try:
        for line in restore.stdout:
            if not line.startswith(b"SET transaction_timeout"):
                loader.stdin.write(line)
            if meter.due():
                meter.update(
                    read_position(restore.pid, dump) or meter.done, note="read by pg_restore"
                )
        restored = restore.wait()
        if restored == 0:
            loader.stdin.write(b"COMMIT;\n")
            meter.done = float(dump.stat().st_size)
            meter.finish(note="pg_restore done, committing")
    except BrokenPipeError:
        restored = restore.wait()
    finally:
        with contextlib.suppress(BrokenPipeError):
            loader.stdin.close()
    loaded = loader.wait()
    restore_err = restore.stderr.read().decode(errors="replace") if restore.stderr else ""
    loader_err = loader.stderr.read().decode(errors="replace") if loader.stderr else ""
    if restored != 0:
        last = (restore_err.strip().splitlines() or [f"exit {restored}"])[-1]
        raise Failure(f"pg_restore failed, nothing was committed: {scrub(last)}")
    if loaded != 0:
        last = (loader_err.strip().splitlines() or [f"exit {loaded}"])[-1]
        raise Failure(f"loading the backup failed, nothing was committed: {scrub(last)}")


def _create_like(admin: dict[str, str], source: str, new: str) -> str:
    """Create ``new`` like ``source`` (owner, encoding, locale); returns the owner."""
    row = psql(
        admin,
        "SELECT pg_get_userbyid(datdba), pg_encoding_to_char(encoding), datcollate, datctype"
        f" FROM pg_database WHERE datname = {literal(source)}",
        what="read the source database's properties",
    )[0].split("|")
    owner, encoding, collate, ctype = row
    psql(
        admin,
        f"CREATE DATABASE {ident(new)} OWNER {ident(owner)} TEMPLATE template0"
        f" ENCODING {literal(encoding)} LC_COLLATE {literal(collate)} LC_CTYPE {literal(ctype)}",
        what=f"create {new}",
    )
    return owner


def _grants_and_settings(admin: dict[str, str], old: str) -> list[str]:
    """The statements that give the restored database the old one's CONNECT grants (as they
    were before any freeze) and its settings (the freeze's own left out)."""
    rows = psql(
        admin,
        "SELECT coalesce((SELECT substring(c FROM 'dbsplit.frozen=(.*)')"
        " FROM pg_db_role_setting s, unnest(s.setconfig) c WHERE s.setrole = 0"
        f" AND s.setdatabase = d.oid AND c LIKE 'dbsplit.frozen=%'), ''),"
        " coalesce((SELECT string_agg(CASE WHEN a.grantee = 0 THEN 'PUBLIC'"
        " ELSE quote_ident(pg_get_userbyid(a.grantee)) END, ',')"
        " FROM aclexplode(coalesce(d.datacl, acldefault('d', d.datdba))) a"
        " WHERE a.privilege_type = 'CONNECT'), ''),"
        " coalesce((SELECT string_agg(c, E'\\x1f') FROM pg_db_role_setting s,"
        " unnest(s.setconfig) c WHERE s.setrole = 0 AND s.setdatabase = d.oid"
        " AND c NOT LIKE 'dbsplit.frozen=%'"
        " AND c NOT LIKE 'default\\_transaction\\_read\\_only=%'),"
        " '') FROM pg_database d"
        f" WHERE d.datname = {literal(old)}",
        what="read the source's grants and settings",
    )
    frozen, holders, settings = [*rows[0].split("|"), "", "", ""][:3]
    grantees = holders.split(",") if holders else []
    if frozen:
        recorded = json.loads(frozen).get("connect", [])
        grantees = ["PUBLIC" if g == "PUBLIC" else ident(g) for g in recorded]
    statements = ["REVOKE CONNECT ON DATABASE {db} FROM PUBLIC"]
    statements += [f"GRANT CONNECT ON DATABASE {{db}} TO {g}" for g in grantees if g]
    for setting in filter(None, settings.split("\x1f")):
        name, _, value = setting.partition("=")
        statements.append(f"ALTER DATABASE {{db}} SET {name} = {literal(value)}")
    return statements


def restore(req: RestoreQuery, ctx: Context) -> None:
    """Restore into a new database, check it, swap it in; dump and drop ``handled_data``."""
    with Journal(ctx).step("restore") as journal:
        dump = backup_file(req, ctx)
        manifest = manifest_of(dump)
        if manifest is None:
            raise Failure(f"no checked backup at {dump}: fetch it first")
        position = _source_position(req, ctx)
        if position != manifest.get("position") and not req.over_newer_writes:
            raise Failure(
                f"the source has writes newer than the backup {dump.name} (its write position"
                " moved since): restoring would lose them; pass --data"
                " restore_over_newer_writes=yes to restore anyway"
            )
        admin = {**ctx.conn("source_admin"), "PGDATABASE": "postgres"}
        size = int(
            psql(
                admin, f"SELECT pg_database_size({literal(req.source_db)})", what="size the source"
            )[0]
        )
        free = shutil.disk_usage(home_path(req.backup_dir)).free
        if free < size:
            raise Failure(f"{free >> 20} MiB free, the restored copy needs about {size >> 20} MiB")
        stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
        new, old = f"{req.source_db}_restore_{stamp}", f"{req.source_db}_before_restore_{stamp}"
        owner = _create_like(admin, req.source_db, new)
        try:
            say(f"pg_restore {dump.name} into {new} (one transaction, as {owner})")
            _load(ctx, dump, {**ctx.conn("source_admin"), "PGDATABASE": new}, owner)
            url = parse(str(ctx.secret("source_url")), what="SOURCE_ADMIN_URL")
            env = {"OLD_DATABASE_URL": url.replace(dbname=new).to_url()}
            _, sums = dbsplit_json(req.venv, ["checksums"], env)
            want = manifest.get("checksums") or {}
            have = sums.get("tables") or {}
            different = sorted(t for t in set(want) | set(have) if want.get(t) != have.get(t))
            if different:
                raise Failure(
                    f"the restored copy differs from the backup's checksums: "
                    f"{', '.join(different[:5])}"
                )
            say(f"{new}: all {len(want)} tables match the backup's row counts and checksums")
            grants = _grants_and_settings(admin, req.source_db)
        except BaseException:
            psql(admin, f"DROP DATABASE IF EXISTS {ident(new)} WITH (FORCE)", what=f"drop {new}")
            raise
        psql(
            admin,
            f"ALTER DATABASE {ident(req.source_db)} RENAME TO {ident(old)}",
            what="set the source aside",
        )
        psql(
            admin,
            f"ALTER DATABASE {ident(new)} RENAME TO {ident(req.source_db)}",
            what="swap the restored copy in",
        )
        for statement in grants:
            psql(admin, statement.replace("{db}", ident(req.source_db)), what="copy grants")
        say(f"swapped in: {req.source_db} is the restored copy; the old one is kept as {old}")
        data_dump = _drop_data_database(req, ctx, stamp)
        journal.update(
            "restore",
            restored={
                "at": now(),
                "backup": dump.name,
                "kept": old,
                "tables": len(want),
                "data_dump": data_dump,
            },
        )


def _drop_data_database(req: RestoreQuery, ctx: Context, stamp: str) -> str | None:
    """Dump ``handled_data`` next to the backups, then drop it (the checklist's full restore)."""
    admin = ctx.conn("data_admin")
    exists = psql(
        admin,
        f"SELECT count(*) FROM pg_database WHERE datname = {literal(req.data_db)}",
        what="look for the DATA database",
    )
    if exists != ["1"]:
        return None
    target = home_path(req.backup_dir) / f"{req.data_db}-{stamp}.dump"
    run(
        ["pg_dump", "-Fc", "--no-password", "-f", str(target)],
        env={**admin, "PGDATABASE": req.data_db},
        what=f"pg_dump {req.data_db}",
    )
    target.chmod(0o600)
    psql(admin, f"DROP DATABASE {ident(req.data_db)} WITH (FORCE)", what=f"drop {req.data_db}")
    say(f"dumped {req.data_db} to {target}, then dropped it")
    return str(target)

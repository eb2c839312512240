"""Remote side of the backup step: ``pg_dump -Fc`` of the frozen source, named for the window,
with its checksums, and its copy in Spaces.

The dump is taken after the freeze, so it holds every write up to it, and only while the
source is frozen safely; the write position is read before and after, and must not move. Its
manifest (``<dump>.json``) records the window, the position, the SHA-256 of the file and every
table's row count and checksum (``dbsplit checksums``), which a restore checks the restored
database against before swapping it in. A dump is reused only by the same window and only while
the source is still at its position; otherwise a new one is taken (the old one kept aside).
"""

from __future__ import annotations

import json
import os
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dbsplit.progress import human_bytes
from deploy.remote import spaces
from deploy.remote.journal import Journal, now
from deploy.remote.pg import BOUNDED, dbsplit_json, psql
from deploy.remote.progress import Meter, Ticker
from deploy.remote.runtime import (
    Context,
    Failure,
    atomic_write,
    home_path,
    private_dir,
    read_json,
    run,
    say,
    sha256_file,
    stream,
)


@dataclass(frozen=True)
class BackupQuery:
    backup_dir: str
    prefix: str
    venv: str
    key_prefix: str = ""
    bucket: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class BackupState:
    window: str | None = None
    name: str | None = None
    local: bool = False
    current: bool = False
    uploaded: bool = False
    sha256: str | None = None


def dump_path(req: BackupQuery, window: str) -> Path:
    return home_path(req.backup_dir) / f"{req.prefix}-{window}.dump"


def manifest_of(dump: Path) -> dict[str, Any] | None:
    """The dump's manifest when the dump is still the one it describes (size and mtime)."""
    manifest = read_json(dump.with_name(dump.name + ".json"))
    try:
        stat = dump.stat()
    except OSError:
        return None
    if not isinstance(manifest, dict):
        return None
    if manifest.get("size") != stat.st_size or manifest.get("mtime_ns") != stat.st_mtime_ns:
        return None
    return manifest


def _source_check(req: BackupQuery, ctx: Context) -> dict[str, Any]:
    env = {"OLD_DATABASE_URL": str(ctx.secret("source_url"))}
    return dbsplit_json(req.venv, ["freeze", "--check"], env, ok_codes=(0, 3))[1]


def state(req: BackupQuery, ctx: Context) -> BackupState:
    """Fact: is this window's dump on disk, still matching the source, uploaded?"""
    window = Journal(ctx).state().get("window")
    if not window:
        return BackupState()
    dump = dump_path(req, str(window))
    manifest = manifest_of(dump)
    if manifest is None:
        return BackupState(str(window), dump.name)
    position = _source_check(req, ctx).get("position")
    uploaded = manifest.get("uploaded") or {}
    return BackupState(
        window=str(window),
        name=dump.name,
        local=True,
        current=position == manifest.get("position"),
        uploaded=uploaded.get("sha256") == manifest.get("sha256")
        and uploaded.get("key") == f"{req.key_prefix}/{dump.name}",
        sha256=manifest.get("sha256"),
    )


_DUMPING = re.compile(r'^pg_dump: dumping contents of table "(.+)"$')


def _pg_dump(ctx: Context, conn: dict[str, str], tmp: Path) -> None:
    """``pg_dump -Fc --verbose`` into ``tmp``, its progress printed as it goes: the tables'
    size on disk dumped so far (by the table ``--verbose`` names), of their sum."""
    rows = psql(
        conn,
        "SELECT n.nspname || '.' || c.relname, pg_table_size(c.oid) FROM pg_class c"
        " JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.relkind = 'r'"
        " AND n.nspname <> 'information_schema' AND n.nspname NOT LIKE 'pg\\_%'",
        what="size the source's tables",
    )
    sizes = {name: int(size) for name, size in (row.rsplit("|", 1) for row in rows)}
    meter = Meter(ctx, "backup", sum(sizes.values()), approx=True)
    started: list[str] = []

    def tick() -> None:
        written = tmp.stat().st_size if tmp.exists() else 0
        done = sum(sizes.get(t, 0) for t in started[:-1])
        now_at = f"; dumping {started[-1]}" if started else ""
        meter.update(done, note=f"dump file {human_bytes(written)}{now_at}")

    def relay(line: str) -> bool:
        found = _DUMPING.match(line)
        if found:
            started.append(found[1])
            return False
        return not line.startswith("pg_dump: ") or "error" in line or "warning" in line

    with Ticker(ctx.progress_every, tick):
        stream(
            ["pg_dump", "-Fc", "--verbose", "--no-password", "-f", str(tmp)],
            env={**conn, "PGCONNECT_TIMEOUT": BOUNDED["PGCONNECT_TIMEOUT"]},
            cwd=None,
            what="pg_dump",
            relay=relay,
        )
    meter.done = float(sum(sizes.get(t, 0) for t in started))
    meter.finish(note=f"dump file {human_bytes(tmp.stat().st_size)}, {len(started)} tables")


def dump_frozen(req: BackupQuery, ctx: Context, dump: Path, window: str) -> dict[str, Any]:
    """``pg_dump -Fc`` of the frozen source into ``dump`` (0600, via a partial file), its
    SHA-256, ``pg_restore --list`` and every table's checksum; the write position read before
    and after must be equal. A dump already at ``dump`` is kept aside, never overwritten.
    Writes and returns the manifest (``<dump>.json``)."""
    before = _source_check(req, ctx)
    if not before.get("ok"):
        raise Failure(
            "the source is not frozen safely, so a backup could miss writes: "
            + "; ".join(before.get("problems") or ["not frozen"])
        )
    private_dir(dump.parent)
    if dump.exists():
        aside = dump.with_name(f"{dump.name}.{time.strftime('%Y%m%dT%H%M%SZ')}")
        for path in (dump, dump.with_name(dump.name + ".json")):
            if path.exists():
                path.rename(aside.with_name(aside.name.replace(dump.name, path.name)))
        say(f"the source moved since {dump.name} was taken: kept it as {aside.name}")
    tmp = dump.with_name(f".{dump.name}.partial")
    started = time.monotonic()
    conn = ctx.conn("source_admin")
    say(f"pg_dump -Fc of {conn.get('PGDATABASE')} (frozen) to {dump}")
    _pg_dump(ctx, conn, tmp)
    with tmp.open("rb") as handle:
        os.fsync(handle.fileno())
    tmp.chmod(0o600)
    run(["pg_restore", "--list", str(tmp)], what="pg_restore --list", echo=False)
    env = {"OLD_DATABASE_URL": str(ctx.secret("source_url"))}
    _, sums = dbsplit_json(req.venv, ["checksums"], env)
    after = _source_check(req, ctx)
    if after.get("position") != before.get("position") or not after.get("ok"):
        tmp.unlink()
        raise Failure("the source changed while it was backed up: run the window again")
    os.replace(tmp, dump)
    stat = dump.stat()
    manifest = {
        "window": window,
        "file": str(dump),
        "size": stat.st_size,
        "mtime_ns": stat.st_mtime_ns,
        "sha256": sha256_file(dump),
        "listed": True,
        "position": before.get("position"),
        "checksums": sums.get("tables"),
        "seconds": round(time.monotonic() - started, 2),
        "taken_at": now(),
    }
    atomic_write(dump.with_name(dump.name + ".json"), json.dumps(manifest, indent=2).encode())
    tables = len(sums.get("tables") or {})
    say(
        f"backup {dump.name}: {stat.st_size} bytes, sha256 {manifest['sha256']},"
        f" {tables} tables checksummed, pg_restore --list ok"
    )
    return manifest


def take(req: BackupQuery, ctx: Context) -> None:
    """Dump the frozen source, checksum it, list it, record it in the journal."""
    with Journal(ctx).step("backup") as journal:
        window = journal.window()
        dump = dump_path(req, window)
        manifest = dump_frozen(req, ctx, dump, window)
        journal.update(
            "backup",
            backup={k: manifest[k] for k in ("file", "size", "sha256", "position", "taken_at")},
        )


def upload_dump(req: BackupQuery, ctx: Context, dump: Path) -> dict[str, Any]:
    """Upload ``dump`` and its manifest to the bucket, each read back through SHA-256; the
    manifest then records the proof, which is returned."""
    manifest = manifest_of(dump)
    if manifest is None:
        raise Failure(f"no valid backup at {dump}: take the backup first")
    where = spaces.Bucket(**req.bucket)
    key = f"{req.key_prefix}/{dump.name}"
    proof = spaces.put_checked(where, ctx, dump, key)
    manifest_path = dump.with_name(dump.name + ".json")
    spaces.put_checked(where, ctx, manifest_path, key + ".json")
    manifest["uploaded"] = proof
    atomic_write(manifest_path, json.dumps(manifest, indent=2).encode())
    return proof


def upload(req: BackupQuery, ctx: Context) -> None:
    """Upload the dump and its manifest; each read back through SHA-256."""
    with Journal(ctx).step("backup-upload") as journal:
        window = journal.window()
        proof = upload_dump(req, ctx, dump_path(req, window))
        journal.update("backup-upload", backup_uploaded=proof)

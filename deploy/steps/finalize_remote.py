"""Remote side of the finalize: the old database's last dump, its archive, and the closed way back.

Once the window has cut over and the app runs healthy on the split (and the watch has passed),
the old database is only a backup. Finalizing it, on the operator's word:

0. refused unless the window cut over (and was neither rolled back nor restored) and the app
   answers healthy on the split now;
1. a last ``pg_dump -Fc`` of the still frozen old database (the backup step's own
   :func:`~deploy.steps.backup_remote.dump_frozen`: checksums, ``pg_restore --list``, the write
   position read before and after), which must be at the write position the cut-over's gate
   saw (nothing wrote to it since), uploaded to Spaces and read back through SHA-256
   (:func:`~deploy.steps.backup_remote.upload_dump`);
2. the old database renamed ``<source>_pre_split_<cut-over date>``, still frozen: ``CONNECT``
   taken, the read-only default and the freeze record (``dbsplit.frozen``) live in the
   database's own catalog rows, which a rename keeps; ``dbsplit freeze --check`` on the new
   name must find it frozen safely at the same position;
3. ``.env.pre-split`` kept (its SHA-256 recorded);
4. ``finalized`` recorded in the journal: the rollback, the restore, the reset and the window
   refuse from then on with :func:`closed`, one line saying where the archive and the dump are
   and how to use them.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any

from dbsplit.urls import parse
from deploy.remote import apps
from deploy.remote.journal import Journal, now
from deploy.remote.pg import dbsplit_json, ident, literal, psql
from deploy.remote.runtime import Context, Failure, home_path, read_json, say
from deploy.steps.backup_remote import BackupQuery, dump_frozen, manifest_of, upload_dump
from deploy.steps.envfile_remote import PRE_SPLIT


@dataclass(frozen=True)
class FinalizeQuery:
    venv: str
    source_db: str
    env_file: str
    backup_dir: str
    health_url: str
    key_prefix: str = ""
    bucket: dict[str, Any] = field(default_factory=dict)
    health_contract: dict[str, Any] = field(default_factory=dict)
    watch_dir: str = ""
    without_watch: bool = False


@dataclass(frozen=True)
class FinalizeState:
    """Where the finalize stands. ``refusal``: why it may not run (empty when it may)."""

    window: str | None = None
    finalized: dict[str, Any] = field(default_factory=dict)
    refusal: str = ""
    archive: str = ""
    dump: str = ""
    dumped: bool = False
    uploaded: bool = False
    sha256: str | None = None


def _backup(req: FinalizeQuery) -> BackupQuery:
    return BackupQuery(req.backup_dir, req.source_db, req.venv, req.key_prefix, req.bucket)


def _check(req: FinalizeQuery, ctx: Context, dbname: str | None = None) -> dict[str, Any]:
    """``dbsplit freeze --check`` of the old database (under ``dbname`` once renamed)."""
    url = str(ctx.secret("source_url"))
    if dbname is not None:
        url = parse(url, what="SOURCE_ADMIN_URL").replace(dbname=dbname).to_url()
    return dbsplit_json(
        req.venv, ["freeze", "--check"], {"OLD_DATABASE_URL": url}, ok_codes=(0, 3)
    )[1]


def _exists(ctx: Context, dbname: str) -> bool:
    admin = {**ctx.conn("source_admin"), "PGDATABASE": "postgres"}
    found = psql(
        admin,
        f"SELECT count(*) FROM pg_database WHERE datname = {literal(dbname)}",
        what=f"look for {dbname}",
    )
    return found == ["1"]


def _names(req: FinalizeQuery, state: dict[str, Any]) -> tuple[str, str]:
    """The archive's name (from the cut-over's date) and the final dump's file name."""
    day = str((state.get("cutover") or {}).get("at", ""))[:10].replace("-", "")
    return f"{req.source_db}_pre_split_{day}", f"{req.source_db}-final-{state.get('window')}.dump"


def _refusal(req: FinalizeQuery, state: dict[str, Any]) -> str:
    if not state.get("window"):
        return "no window is open on this VPS: nothing has cut over"
    if state.get("rolled_back"):
        return (
            f"window {state['window']} was rolled back at"
            f" {state['rolled_back'].get('at')}: the old database is the live one again"
        )
    if state.get("restored"):
        return f"window {state['window']} ended in a restore: the old database is the live one"
    if not state.get("cutover"):
        return f"window {state['window']} has not cut over"
    ok, why = apps.healthy(apps.get_health(req.health_url), "split", req.health_contract)
    if not ok:
        return f"the app is not healthy on the split now: {why}"
    return "" if req.without_watch else _watch_refusal(req, str(state["window"]))


def _watch_refusal(req: FinalizeQuery, window: str) -> str:
    """Why the 48-hour watch of ``window`` does not allow the finalize yet (empty: it does)."""
    watch = read_json(home_path(req.watch_dir) / "schedule.json") if req.watch_dir else None
    skip = "; or pass finalize_without_watch=yes to finalize without it"
    if not isinstance(watch, dict) or watch.get("window") != window:
        return f"the 48-hour watch never ran for window {window} (deploy/watch.py){skip}"
    done, total = len(watch.get("done") or []), len(watch.get("offsets") or [])
    if not watch.get("finished_at"):
        return f"the 48-hour watch is not over: {done} of {total} checks done{skip}"
    failed = int(watch.get("failed") or 0)
    if failed:
        return (
            f"the 48-hour watch had {failed} failed check(s) of {total}: read"
            f" {req.watch_dir}/watch.log{skip}"
        )
    return ""


def state(req: FinalizeQuery, ctx: Context) -> FinalizeState:
    """Fact: may the window be finalized, is its last dump taken and uploaded, is it done?"""
    journal = Journal(ctx).state()
    window = journal.get("window")
    if journal.get("finalized"):
        return FinalizeState(window, dict(journal["finalized"]))
    refusal = _refusal(req, journal)
    if refusal:
        return FinalizeState(window, refusal=refusal)
    archive, name = _names(req, journal)
    cut = (((journal.get("cutover") or {}).get("gate") or {}).get("positions") or {}).get("source")
    if _exists(ctx, req.source_db):
        check = _check(req, ctx)
        if not check.get("ok"):
            problems = "; ".join(check.get("problems") or ["not frozen"])
            refusal = f"the old database {req.source_db} is not frozen safely: {problems}"
        elif cut and check.get("position") != cut:
            refusal = (
                f"the old database {req.source_db} was written to after the cut-over (its write"
                " position moved): find out what wrote there before archiving it"
            )
        position = check.get("position")
    elif _exists(ctx, archive):
        position = cut  # renamed by a finalize that was stopped before it recorded it
    else:
        refusal = f"neither {req.source_db} nor {archive} exists on the source's server"
        position = None
    manifest = manifest_of(home_path(req.backup_dir) / name) or {}
    dumped = bool(manifest) and manifest.get("position") == position
    uploaded = (manifest.get("uploaded") or {}).get("sha256") == manifest.get("sha256")
    return FinalizeState(
        window, {}, refusal, archive, name, dumped, dumped and uploaded, manifest.get("sha256")
    )


def dump(req: FinalizeQuery, ctx: Context) -> None:
    """The last dump of the frozen old database, on the VPS and in Spaces (read back)."""
    with Journal(ctx).step("finalize-dump") as journal:
        found = state(req, ctx)
        if found.refusal or found.finalized:
            raise Failure(found.refusal or "the window is finalized already")
        path = home_path(req.backup_dir) / found.dump
        if not found.dumped:
            dump_frozen(_backup(req), ctx, path, str(found.window))
        proof = upload_dump(_backup(req), ctx, path)
        manifest = manifest_of(path) or {}
        journal.update(
            "finalize-dump",
            final_dump={
                "file": str(path),
                "size": manifest.get("size"),
                "sha256": manifest.get("sha256"),
                "position": manifest.get("position"),
                "uploaded": proof,
                "archive": found.archive,
            },
        )


def archive(req: FinalizeQuery, ctx: Context) -> None:
    """Rename the old database to its archive name (still frozen, checked), keep
    ``.env.pre-split``, and record that the window is finalized."""
    with Journal(ctx).step("finalize") as journal:
        recorded = journal.state()
        final = recorded.get("final_dump") or {}
        found = state(req, ctx)
        if found.refusal or found.finalized:
            raise Failure(found.refusal or "the window is finalized already")
        if not (found.uploaded and final.get("sha256") == found.sha256):
            raise Failure("the old database's last dump is not in Spaces yet: take it first")
        name = found.archive
        admin = {**ctx.conn("source_admin"), "PGDATABASE": "postgres"}
        if _exists(ctx, req.source_db):
            if _exists(ctx, name):
                raise Failure(f"a database {name} exists already: rename or drop it first")
            psql(
                admin,
                f"ALTER DATABASE {ident(req.source_db)} RENAME TO {ident(name)}",
                what=f"rename {req.source_db} to {name}",
            )
        check = _check(req, ctx, name)
        if not check.get("ok") or check.get("position") != final.get("position"):
            problems = "; ".join(check.get("problems") or []) or "its write position moved"
            raise Failure(f"the archive {name} is not frozen as it was: {problems}")
        env = home_path(req.env_file)
        pre = env.with_name(env.name + PRE_SPLIT)
        if not pre.is_file():
            raise Failure(f"{pre} is gone: the pre-split .env must be kept")
        pre_sha = hashlib.sha256(pre.read_bytes()).hexdigest()
        journal.update(
            "finalize",
            finalized={
                "at": now(),
                "run": ctx.run,
                "window": found.window,
                "archive": name,
                "source_db": req.source_db,
                "dump": {k: final.get(k) for k in ("file", "sha256", "size")},
                "uploaded": final.get("uploaded"),
                "env_pre_split": {"file": str(pre), "sha256": pre_sha},
            },
        )
        say(f"finalized: {req.source_db} is archived as {name}, frozen; {found.dump} in Spaces")


def closed(what: str, record: dict[str, Any]) -> str:
    """The one line every way back prints once the window is finalized."""
    dump = record.get("dump") or {}
    up = record.get("uploaded") or {}
    source, archive = record.get("source_db", "the source"), record.get("archive")
    return (
        f"{what} refused, nothing was changed: window {record.get('window')} was finalized at"
        f" {record.get('at')}; the old database is archived as {archive} (frozen, on the"
        f" source's server) and dumped to s3://{up.get('bucket')}/{up.get('key')} (sha256"
        f" {dump.get('sha256')}; on the VPS {dump.get('file')}); to go back to it, rename the"
        f" archive to {source} (or pg_restore --create the dump), run dbsplit unfreeze on it,"
        f" put {(record.get('env_pre_split') or {}).get('file')} back as .env and restart the app"
    )

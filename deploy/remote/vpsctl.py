"""vpsctl: the deploy's hands on the VPS, shipped on stdin with every call and never stored.

pyinfra runs ``python3 -c BOOTSTRAP`` on the VPS (see :data:`deploy.remote.BOOTSTRAP`); the
bootstrap reads one JSON line from stdin holding this file's source, an action, its arguments
and the secrets it needs, and calls :func:`main`. So:

- no secret is ever in a command line (``ps`` shows only the bootstrap), nor in pyinfra's
  output (stdin is never printed), nor in a file, except the app's ``.env`` (mode 0600);
- children get connection settings in their environment (``PGPASSWORD``, ``*_DATABASE_URL``),
  never in their arguments;
- everything printed goes through :func:`scrub`, which masks every secret it was given.

Standard library only: it runs under the VPS's ``python3`` (3.10+), and under the dbsplit
virtualenv's Python for the two actions that need boto3 (``upload``, ``fetch``).

Facts print exactly one JSON line. Actions print progress lines and exit non-zero with one
``error: ...`` line on failure.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import hmac
import json
import os
import re
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

CA_PLACEHOLDER = "__HANDLED_CA__"
"""Stands for the PRIMARY CA file's path in connection settings; replaced by a private temp file."""

_MASKS: list[str] = []
_URL_PW = re.compile(r"(?P<head>postgres(?:ql)?://[^:/?#@\s]*:)[^@\s]*@", re.I)


class Failure(Exception):
    """A step failed; the message is one line, already free of secrets."""


# ----- output -----------------------------------------------------------------------------------


def scrub(text: str) -> str:
    """``text`` with every known secret, and any URL password, replaced by ``***``."""
    for secret in _MASKS:
        text = text.replace(secret, "***")
    return _URL_PW.sub(lambda m: m["head"] + "***@", text)


def say(message: str) -> None:
    """Print a progress line (scrubbed)."""
    print(scrub(message), flush=True)


def emit(data: Mapping[str, Any]) -> None:
    """Print a fact's result: one JSON line (scrubbed)."""
    print(scrub(json.dumps(data, sort_keys=True)), flush=True)


# ----- paths and files --------------------------------------------------------------------------


def home_path(path: str) -> Path:
    """``path`` with ``~`` expanded; relative paths are relative to the home directory."""
    expanded = Path(os.path.expanduser(path))
    return expanded if expanded.is_absolute() else Path.home() / expanded


def sha256_file(path: Path) -> str:
    """The SHA-256 of a file, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def private_dir(path: Path) -> Path:
    """Create ``path`` (and parents) and make it mode 0700."""
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    path.chmod(0o700)
    return path


def atomic_write(path: Path, data: bytes, *, mode: int = 0o600) -> None:
    """Write ``data`` to ``path`` atomically, with ``mode`` from the first byte.

    The temporary file is created in the same directory with ``O_EXCL`` and ``mode`` (under
    umask 077), fsynced, then renamed over ``path``; the directory is fsynced too.
    """
    old_umask = os.umask(0o077)
    tmp = path.parent / f".{path.name}.tmp-{secrets.token_hex(4)}"
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode & 0o700)
        try:
            os.write(fd, data)
            os.fchmod(fd, mode)
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    finally:
        os.umask(old_umask)
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


@contextlib.contextmanager
def ca_file(req: Mapping[str, Any]) -> Iterator[str | None]:
    """The PRIMARY CA certificate in a private temporary file, for this call only."""
    pem = req.get("secrets", {}).get("ca_pem")
    if not pem:
        yield None
        return
    fd, name = tempfile.mkstemp(prefix="handled-ca-", suffix=".pem")
    try:
        with os.fdopen(fd, "w", encoding="ascii") as handle:
            handle.write(pem)
        yield name
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(name)


def with_ca(value: Any, ca: str | None) -> Any:
    """``value`` (a string, or a dict of them) with the CA placeholder replaced by ``ca``."""
    if isinstance(value, dict):
        return {k: with_ca(v, ca) for k, v in value.items()}
    if isinstance(value, str) and ca is not None:
        return value.replace(CA_PLACEHOLDER, ca)
    return value


# ----- processes --------------------------------------------------------------------------------


def base_env() -> dict[str, str]:
    """This process's environment without any ``PG*`` variable (connections are explicit)."""
    return {k: v for k, v in os.environ.items() if not k.startswith("PG")}


def run(
    argv: Sequence[str],
    *,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    what: str,
    echo: bool = True,
    timeout: float | None = None,
) -> str:
    """Run ``argv`` (never holding a secret), relay its output scrubbed, return stdout.

    Raises :class:`Failure` naming ``what`` and the last output line when it fails.
    """
    try:
        proc = subprocess.run(
            list(argv),
            env={**base_env(), **(env or {})},
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
    except FileNotFoundError:
        raise Failure(f"{what}: {argv[0]} not found on the VPS") from None
    except subprocess.TimeoutExpired:
        raise Failure(f"{what}: timed out after {timeout:.0f}s") from None
    if echo:
        for line in (proc.stdout + proc.stderr).splitlines():
            if line.strip():
                say(f"  {line}")
    if proc.returncode != 0:
        lines = [ln for ln in (proc.stderr + proc.stdout).splitlines() if ln.strip()]
        last = lines[-1].strip() if lines else "no output"
        raise Failure(f"{what} failed (exit {proc.returncode}): {scrub(last)}")
    return proc.stdout


def stream(argv: Sequence[str], *, env: Mapping[str, str], cwd: Path | None, what: str) -> None:
    """Run a long command, relaying each output line (scrubbed) as it comes."""
    try:
        proc = subprocess.Popen(
            list(argv),
            env={**base_env(), **env},
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
    except FileNotFoundError:
        raise Failure(f"{what}: {argv[0]} not found on the VPS") from None
    last = "no output"
    assert proc.stdout is not None
    for line in proc.stdout:
        if line.strip():
            last = line.strip()
            say(f"  {line.rstrip()}")
    code = proc.wait()
    if code != 0:
        raise Failure(f"{what} failed (exit {code}): {scrub(last)}")


def psql(conn: Mapping[str, str], sql: str, *, what: str, dbname: str | None = None) -> list[str]:
    """Run one SQL text with ``psql`` (settings in the environment); return its output rows."""
    env = dict(conn)
    env.setdefault("PGCONNECT_TIMEOUT", "10")
    if dbname is not None:
        env["PGDATABASE"] = dbname
    out = run(
        ["psql", "-X", "-A", "-t", "-q", "-v", "ON_ERROR_STOP=1", "-c", sql],
        env=env,
        what=what,
        echo=False,
        timeout=120,
    )
    return [line for line in out.splitlines() if line.strip()]


def psql_stdin(conn: Mapping[str, str], sql: str, *, what: str) -> None:
    """Run SQL text given on psql's stdin (for statements that must not be in argv)."""
    env = {**base_env(), **conn}
    env.setdefault("PGCONNECT_TIMEOUT", "10")
    proc = subprocess.run(
        ["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1"],
        input=sql,
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    if proc.returncode != 0:
        lines = [ln for ln in proc.stderr.splitlines() if ln.strip()] or ["no output"]
        raise Failure(f"{what} failed: {scrub(lines[-1])}")


def try_psql(conn: Mapping[str, str], sql: str, what: str) -> tuple[bool, str]:
    """``(True, first row)`` or ``(False, the one-line reason)``."""
    try:
        rows = psql(conn, sql, what=what)
    except Failure as exc:
        return False, str(exc)
    return True, rows[0] if rows else ""


# ----- preflight --------------------------------------------------------------------------------


def act_probe(req: dict[str, Any]) -> None:
    """Preflight, changing nothing: disk, pg_dump version, all three database servers."""
    args, sec = req["args"], req["secrets"]
    checks: list[dict[str, Any]] = []

    def check(name: str, ok: bool, detail: str) -> None:
        checks.append({"name": name, "ok": ok, "detail": detail})

    ok, row = try_psql(
        sec["source"],
        "SELECT current_setting('server_version_num')::int / 10000,"
        " pg_database_size(current_database())",
        "connect to the source database",
    )
    source_major, source_size = 0, 0
    if ok:
        source_major, source_size = (int(x) for x in row.split("|"))
        check("source", True, f"source PostgreSQL {source_major}, {source_size} bytes")
    else:
        check("source", False, row)

    try:
        out = run(["pg_dump", "--version"], what="pg_dump --version", echo=False)
        found = re.search(r"(\d+)(?:\.\d+)?", out)
        dump_major = int(found.group(1)) if found else 0
        check(
            "pg_dump",
            dump_major >= source_major,
            f"pg_dump {dump_major} for a PostgreSQL {source_major} source"
            + ("" if dump_major >= source_major else ": install a newer PostgreSQL client"),
        )
    except Failure as exc:
        check("pg_dump", False, str(exc))

    backup_dir = home_path(args["backup_dir"])
    probe_dir = backup_dir
    while not probe_dir.exists():
        probe_dir = probe_dir.parent
    free = shutil.disk_usage(probe_dir).free
    need = int(source_size * float(args.get("disk_factor", 1.0))) + int(args.get("disk_margin", 0))
    if _manifest(args):
        check("disk", True, f"backup already taken, {free // (1 << 20)} MiB free")
    else:
        check(
            "disk",
            free >= need,
            f"{free // (1 << 20)} MiB free in {probe_dir}, {need // (1 << 20)} MiB needed "
            "for the backup",
        )

    with ca_file(req) as ca:
        for name, key, sql in (
            (
                "primary-direct",
                "primary_direct",
                "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
            ),
            ("primary-pool", "primary_pool", "SELECT 1"),
        ):
            conn = with_ca(sec[key], ca)
            ok, row = try_psql(conn, sql, f"connect to PRIMARY ({name}, {conn.get('PGSSLMODE')})")
            if ok and name == "primary-direct" and row != "t":
                ok, row = False, "PRIMARY direct connection is not encrypted"
            detail = f"reachable with TLS {conn.get('PGSSLMODE')} against the cluster's CA"
            check(name, ok, detail if ok else row)
    ok, row = try_psql(sec["data_admin"], "SELECT version()", "connect to the DATA server")
    check("data-server", ok, row.split(" on ")[0] if ok else row)
    emit({"checks": checks, "source_size": source_size, "free": free})


# ----- backup -----------------------------------------------------------------------------------


def _backup_paths(args: Mapping[str, Any]) -> tuple[Path, Path, Path]:
    directory = home_path(args["backup_dir"])
    dump = directory / args["backup_name"]
    return dump, dump.with_name(dump.name + ".sha256"), dump.with_name(dump.name + ".json")


def _manifest(args: Mapping[str, Any]) -> dict[str, Any] | None:
    """The backup's manifest when the dump is still the one it describes (size and mtime)."""
    dump, _, manifest_path = _backup_paths(args)
    try:
        manifest: dict[str, Any] = json.loads(manifest_path.read_text(encoding="utf-8"))
        stat = dump.stat()
    except (OSError, ValueError):
        return None
    if manifest.get("size") != stat.st_size or manifest.get("mtime_ns") != stat.st_mtime_ns:
        return None
    return manifest


def act_backup_state(req: dict[str, Any]) -> None:
    """Fact: is the backup on disk (checksummed, listable) and uploaded with that checksum?"""
    args = req["args"]
    manifest = _manifest(args)
    uploaded = bool(
        manifest
        and manifest.get("uploaded", {}).get("key") == args.get("key")
        and manifest.get("uploaded", {}).get("sha256") == manifest.get("sha256")
    )
    emit(
        {
            "local": bool(manifest and manifest.get("listed")),
            "sha256": manifest.get("sha256") if manifest else None,
            "uploaded": uploaded,
        }
    )


def act_backup(req: dict[str, Any]) -> None:
    """``pg_dump -Fc`` of the source, its SHA-256 file, and ``pg_restore --list`` on it."""
    args, sec = req["args"], req["secrets"]
    dump, sha_path, manifest_path = _backup_paths(args)
    if _manifest(args):
        say(f"backup {dump} already taken")
        return
    private_dir(dump.parent)
    tmp = dump.with_name(f".{dump.name}.partial")
    started = time.monotonic()
    say(f"pg_dump -Fc of {sec['source'].get('PGDATABASE')} to {dump}")
    run(["pg_dump", "-Fc", "--no-password", "-f", str(tmp)], env=sec["source"], what="pg_dump")
    with tmp.open("rb") as handle:
        os.fsync(handle.fileno())
    tmp.chmod(0o600)
    run(["pg_restore", "--list", str(tmp)], what="pg_restore --list", echo=False)
    os.replace(tmp, dump)
    digest = sha256_file(dump)
    atomic_write(sha_path, f"{digest}  {dump.name}\n".encode(), mode=0o600)
    stat = dump.stat()
    manifest = {
        "file": str(dump),
        "size": stat.st_size,
        "mtime_ns": stat.st_mtime_ns,
        "sha256": digest,
        "listed": True,
        "seconds": round(time.monotonic() - started, 2),
        "taken_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    atomic_write(manifest_path, json.dumps(manifest, indent=2).encode(), mode=0o600)
    say(f"backup {dump.name}: {stat.st_size} bytes, sha256 {digest}, pg_restore --list ok")


def _s3(req: Mapping[str, Any]) -> Any:
    import boto3
    from botocore.config import Config

    args, sec = req["args"], req["secrets"]
    return boto3.client(
        "s3",
        endpoint_url=args["endpoint"],
        region_name=args["region"],
        aws_access_key_id=sec["s3_access_key"],
        aws_secret_access_key=sec["s3_secret_key"],
        config=Config(
            s3={"addressing_style": args.get("addressing_style", "virtual")},
            retries={"max_attempts": 5, "mode": "standard"},
            # S3-compatible stores (Spaces) do not all speak the newer flexible checksums.
            request_checksum_calculation="when_required",
            response_checksum_validation="when_required",
        ),
    )


def _remote_sha256(client: Any, bucket: str, key: str) -> tuple[str, int]:
    """Stream the object back and hash it: the checksum check that works on any S3 store."""
    body = client.get_object(Bucket=bucket, Key=key)["Body"]
    digest, size = hashlib.sha256(), 0
    for chunk in iter(lambda: body.read(1 << 20), b""):
        digest.update(chunk)
        size += len(chunk)
    return digest.hexdigest(), size


def act_upload(req: dict[str, Any]) -> None:
    """Upload the backup to the bucket (multipart when large), then check it by its SHA-256."""
    from boto3.s3.transfer import TransferConfig

    args = req["args"]
    dump, _, manifest_path = _backup_paths(args)
    manifest = _manifest(args)
    if manifest is None:
        raise Failure(f"no valid backup at {dump}: take the backup first")
    client = _s3(req)
    bucket, key, digest = args["bucket"], args["key"], manifest["sha256"]
    try:
        head = client.head_object(Bucket=bucket, Key=key)
        present = head.get("Metadata", {}).get("sha256") == digest
    except client.exceptions.ClientError:
        present = False
    if not present:
        chunk = int(args.get("multipart_chunk", 64 << 20))
        config = TransferConfig(
            multipart_threshold=chunk, multipart_chunksize=chunk, max_concurrency=4
        )
        say(f"uploading {dump.name} ({manifest['size']} bytes) to s3://{bucket}/{key}")
        client.upload_file(
            str(dump),
            bucket,
            key,
            ExtraArgs={"Metadata": {"sha256": digest}, "ContentType": "application/octet-stream"},
            Config=config,
        )
    remote, size = _remote_sha256(client, bucket, key)
    if remote != digest or size != manifest["size"]:
        raise Failure(f"s3://{bucket}/{key} does not match the backup (sha256 {remote})")
    manifest["uploaded"] = {"bucket": bucket, "key": key, "sha256": remote, "size": size}
    atomic_write(manifest_path, json.dumps(manifest, indent=2).encode(), mode=0o600)
    say(f"s3://{bucket}/{key}: {size} bytes, sha256 {remote} matches")


def act_fetch(req: dict[str, Any]) -> None:
    """Make sure the backup is on disk: keep a local copy whose checksum matches, else download."""
    args = req["args"]
    dump, sha_path, _ = _backup_paths(args)
    expected = args.get("sha256")
    if dump.exists():
        digest = sha256_file(dump)
        if expected is None and sha_path.exists():
            expected = sha_path.read_text(encoding="utf-8").split()[0]
        if digest == expected:
            say(f"local backup {dump} matches sha256 {digest}")
            return
        say(f"local backup {dump} has sha256 {digest}, expected {expected}: downloading")
    client = _s3(req)
    bucket, key = args["bucket"], args["key"]
    head = client.head_object(Bucket=bucket, Key=key)
    expected = expected or head.get("Metadata", {}).get("sha256")
    if not expected:
        raise Failure(f"s3://{bucket}/{key} carries no sha256: give it with --data backup_sha256=")
    private_dir(dump.parent)
    tmp = dump.with_name(f".{dump.name}.download")
    client.download_file(bucket, key, str(tmp))
    digest = sha256_file(tmp)
    if digest != expected:
        tmp.unlink()
        raise Failure(f"downloaded s3://{bucket}/{key} has sha256 {digest}, expected {expected}")
    tmp.chmod(0o600)
    os.replace(tmp, dump)
    atomic_write(sha_path, f"{digest}  {dump.name}\n".encode(), mode=0o600)
    say(f"downloaded s3://{bucket}/{key}: sha256 {digest} matches")


# ----- databases --------------------------------------------------------------------------------


FROZEN_SQL = (
    "SELECT coalesce(bool_or(s IN ('default_transaction_read_only=on',"
    " 'default_transaction_read_only=true')), false)"
    " FROM pg_db_role_setting r CROSS JOIN LATERAL unnest(r.setconfig) s"
    " WHERE r.setdatabase = (SELECT oid FROM pg_database WHERE datname = current_database())"
    " AND r.setrole = 0"
)


def act_source_state(req: dict[str, Any]) -> None:
    """Fact: is the source database frozen (read-only by default)?"""
    ok, row = try_psql(req["secrets"]["source"], FROZEN_SQL, "read the source's settings")
    emit({"reachable": ok, "frozen": ok and row == "t", "error": None if ok else row})


def scram_verifier(password: str, iterations: int = 4096) -> str:
    """The SCRAM-SHA-256 secret PostgreSQL stores: the password itself never reaches the server."""
    salt = secrets.token_bytes(16)
    salted = hashlib.pbkdf2_hmac("sha256", password.encode("utf-8"), salt, iterations)
    client_key = hmac.new(salted, b"Client Key", hashlib.sha256).digest()
    stored_key = hashlib.sha256(client_key).digest()
    server_key = hmac.new(salted, b"Server Key", hashlib.sha256).digest()

    def b64(data: bytes) -> str:
        return base64.b64encode(data).decode("ascii")

    return f"SCRAM-SHA-256${iterations}:{b64(salt)}${b64(stored_key)}:{b64(server_key)}"


def _ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _literal(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def _data_db_facts(req: Mapping[str, Any]) -> dict[str, Any]:
    args, sec = req["args"], req["secrets"]
    role, db = args["role"], args["database"]
    rows = psql(
        sec["data_admin"],
        f"SELECT (SELECT count(*) FROM pg_roles WHERE rolname = {_literal(role)}),"
        f" (SELECT pg_get_userbyid(datdba) FROM pg_database WHERE datname = {_literal(db)})",
        what="read the DATA server's roles and databases",
    )
    count, owner = rows[0].split("|")
    login = False
    if count == "1":
        conn = {**sec["data_admin"], "PGUSER": role, "PGPASSWORD": sec["data_password"]}
        login, _ = try_psql(
            {**conn, "PGDATABASE": db if owner else "postgres"}, "SELECT 1", "login"
        )
    return {"role": count == "1", "database": bool(owner), "owner": owner or None, "login": login}


def act_data_db_state(req: dict[str, Any]) -> None:
    """Fact: do the DATA role (able to log in with its password) and database exist?"""
    emit(_data_db_facts(req))


def act_data_db(req: dict[str, Any]) -> None:
    """Create the DATA role and database when missing (the password sent as a SCRAM verifier)."""
    args, sec = req["args"], req["secrets"]
    role, db = args["role"], args["database"]
    facts = _data_db_facts(req)
    verifier = _literal(scram_verifier(sec["data_password"]))
    if not facts["role"]:
        psql_stdin(
            sec["data_admin"],
            f"CREATE ROLE {_ident(role)} LOGIN PASSWORD {verifier};\n",
            what=f"create role {role}",
        )
        say(f"created role {role}")
    elif not facts["login"]:
        psql_stdin(
            sec["data_admin"],
            f"ALTER ROLE {_ident(role)} LOGIN PASSWORD {verifier};\n",
            what=f"set role {role}'s password",
        )
        say(f"set role {role}'s password")
    if not facts["database"]:
        psql(
            sec["data_admin"],
            f"CREATE DATABASE {_ident(db)} OWNER {_ident(role)}",
            what=f"create database {db}",
        )
        say(f"created database {db} owned by {role}")
    elif facts["owner"] != role:
        psql(
            sec["data_admin"],
            f"ALTER DATABASE {_ident(db)} OWNER TO {_ident(role)}",
            what=f"give {db} to {role}",
        )
        say(f"database {db} now owned by {role}")


def _targets_done(req: Mapping[str, Any], ca: str | None) -> dict[str, Any]:
    sec = req["secrets"]
    state: dict[str, Any] = {"started": False}
    for name, conn in (("primary", with_ca(sec["primary_direct"], ca)), ("data", sec["data"])):
        ok, row = try_psql(
            conn,
            "SELECT CASE WHEN to_regclass('_dbsplit.steps') IS NULL THEN 'none'"
            " WHEN EXISTS (SELECT 1 FROM _dbsplit.steps WHERE name = 'done') THEN 'done'"
            " ELSE 'started' END",
            f"read {name}'s split state",
        )
        state[name] = ok and row == "done"
        state["started"] = state["started"] or (ok and row in ("done", "started"))
    state["done"] = state["primary"] and state["data"]
    return state


def act_split_state(req: dict[str, Any]) -> None:
    """Fact: has ``dbsplit migrate`` finished on both targets (its ``done`` step recorded)?"""
    with ca_file(req) as ca:
        state = _targets_done(req, ca)
    state["rolled_back"] = _marker(req["args"], "rolled-back") is not None
    emit(state)


def act_mark(req: dict[str, Any]) -> None:
    """Record (or, with ``clear``, remove) a marker file in the deploy's state directory."""
    args = req["args"]
    path = home_path(args["state_dir"]) / args["name"]
    if args.get("clear"):
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
        return
    _set_marker(args, args["name"], time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()))
    say(f"recorded {args['name']} in {path.parent}")


def act_dbsplit(req: dict[str, Any]) -> None:
    """Run ``dbsplit <args>`` from the virtualenv, the URLs in its environment."""
    args, sec = req["args"], req["secrets"]
    venv = home_path(args["venv"])
    argv = [str(venv / "bin" / "dbsplit"), *args["argv"]]
    with ca_file(req) as ca:
        env = {key: with_ca(value, ca) for key, value in sec["dbsplit_env"].items()}
        if args.get("report"):
            private_dir(home_path(args["report"]).parent)
        say("dbsplit " + " ".join(args["argv"]))
        stream(argv, env=env, cwd=None, what="dbsplit " + args["argv"][0])


# ----- the app's .env and CA file ---------------------------------------------------------------

_KEY = re.compile(r"^\s*(?:export\s+)?([A-Za-z_][A-Za-z0-9_]*)\s*=")


def env_line(key: str, value: str) -> str:
    """``KEY="value"`` as the app's dotenv reader parses it back to ``value`` exactly."""
    if "\n" in value or "\r" in value:
        raise Failure(f"value of {key} contains a line break")
    if "'" not in value and ('"' in value or "\\" in value or "#" in value):
        return f"{key}='{value}'"
    escaped = value.replace("\\", "\\\\").replace('"', '\\"')
    return f'{key}="{escaped}"'


def merged_env(base: str, values: Mapping[str, str], header: str) -> str:
    """``base`` with each key of ``values`` set: first occurrence replaced, later ones dropped,
    missing keys appended; every other line kept as it was."""
    out: list[str] = []
    seen: set[str] = set()
    for line in base.splitlines():
        match = _KEY.match(line)
        if match and match.group(1) in values:
            key = match.group(1)
            if key not in seen:
                out.append(env_line(key, values[key]))
                seen.add(key)
            continue
        out.append(line)
    missing = [key for key in values if key not in seen]
    if missing:
        if out and out[-1].strip():
            out.append("")
        out.append(header)
        out.extend(env_line(key, values[key]) for key in missing)
    return "\n".join(out) + "\n"


def _env_paths(args: Mapping[str, Any]) -> tuple[Path, Path]:
    env = home_path(args["env_file"])
    return env, env.with_name(env.name + args.get("pre_split_suffix", ".pre-split"))


def _desired_env(req: Mapping[str, Any]) -> tuple[Path, Path, bytes, bytes | None]:
    args = req["args"]
    env, pre = _env_paths(args)
    current = env.read_bytes() if env.exists() else None
    base = pre.read_bytes() if pre.exists() else (current or b"")
    desired = merged_env(base.decode("utf-8"), req["secrets"]["env_values"], args["header"])
    return env, pre, desired.encode("utf-8"), current


def _mode(path: Path) -> str | None:
    try:
        return oct(path.stat().st_mode & 0o777)
    except FileNotFoundError:
        return None


def act_env_state(req: dict[str, Any]) -> None:
    """Fact: is the app's .env already the split one (content, mode 0600, owner)?"""
    env, pre, desired, current = _desired_env(req)
    ca = home_path(req["args"]["ca_path"])
    ca_same = ca.exists() and ca.read_text(encoding="ascii") == req["secrets"]["ca_pem"]
    owner_ok = env.exists() and env.stat().st_uid == os.getuid()
    emit(
        {
            "same": current == desired,
            "mode": _mode(env),
            "owner_ok": owner_ok,
            "pre_split": pre.exists(),
            "ca_same": ca_same,
            "exists": current is not None,
        }
    )


def act_env_write(req: dict[str, Any]) -> None:
    """Write the CA file and the split .env atomically (0600), keeping ``.env.pre-split`` once."""
    args = req["args"]
    ca = home_path(args["ca_path"])
    pem = req["secrets"]["ca_pem"].encode("ascii")
    ca.parent.mkdir(parents=True, exist_ok=True)
    if not ca.exists() or ca.read_bytes() != pem:
        atomic_write(ca, pem, mode=0o644)
        say(f"wrote CA certificate {ca}")
    env, pre, desired, current = _desired_env(req)
    if current is not None and not pre.exists():
        atomic_write(pre, current, mode=0o600)
        say(f"kept the previous file as {pre.name}")
    if current != desired or _mode(env) != "0o600":
        atomic_write(env, desired, mode=0o600)
        say(f"wrote {env} (mode 0600, {len(req['secrets']['env_values'])} keys set)")


def act_env_restore(req: dict[str, Any]) -> None:
    """Put ``.env.pre-split`` back as ``.env`` (atomically, 0600)."""
    env, pre = _env_paths(req["args"])
    if not pre.exists():
        raise Failure(f"no {pre} to roll back to")
    old = pre.read_bytes()
    if not env.exists() or env.read_bytes() != old:
        atomic_write(env, old, mode=0o600)
        say(f"restored {env.name} from {pre.name}")


def act_env_rollback_state(req: dict[str, Any]) -> None:
    """Fact: is .env already the pre-split file (or is there nothing to roll back to)?"""
    env, pre = _env_paths(req["args"])
    pre_exists = pre.exists()
    same = pre_exists and env.exists() and env.read_bytes() == pre.read_bytes()
    emit({"pre_split": pre_exists, "same": same})


# ----- the app: build, pm2, health --------------------------------------------------------------

_SKIP_DIRS = {"node_modules", ".git", "dist", ".next", ".turbo", "build", "logs", ".pnpm-store"}


def tree_digest(root: Path) -> str:
    """SHA-256 over the app's source files (dependencies, builds, logs and .env* left out)."""
    digest = hashlib.sha256()
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if d not in _SKIP_DIRS)
        for name in sorted(filenames):
            if name.startswith(".env") or name.endswith(".log"):
                continue
            path = Path(dirpath) / name
            digest.update(str(path.relative_to(root)).encode() + b"\0")
            digest.update(sha256_file(path).encode())
    return digest.hexdigest()


def _app_digest(args: Mapping[str, Any]) -> str:
    app = home_path(args["app_dir"])
    env = home_path(args["env_file"])
    env_sha = sha256_file(env) if env.exists() else "-"
    return hashlib.sha256(f"{tree_digest(app)}:{env_sha}".encode()).hexdigest()


def _marker(args: Mapping[str, Any], name: str) -> str | None:
    path = home_path(args["state_dir"]) / name
    try:
        return path.read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        return None


def _set_marker(args: Mapping[str, Any], name: str, value: str) -> None:
    atomic_write(private_dir(home_path(args["state_dir"])) / name, value.encode(), mode=0o600)


def pm2_status(apps: Sequence[str]) -> dict[str, dict[str, Any]]:
    """Status of ``apps`` from ``pm2 jlist``, keeping only safe fields (jlist holds the env)."""
    try:
        proc = subprocess.run(
            ["pm2", "jlist"],
            env=base_env(),
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    except (FileNotFoundError, subprocess.TimeoutExpired):
        return {}
    text = proc.stdout
    start = text.find("[")
    try:
        entries = json.loads(text[start:]) if start >= 0 else []
    except ValueError:
        entries = []
    result: dict[str, dict[str, Any]] = {}
    for entry in entries:
        name = entry.get("name")
        if name not in apps:
            continue
        env = entry.get("pm2_env") or {}
        result[name] = {
            "status": env.get("status"),
            "restarts": env.get("restart_time"),
            "unstable_restarts": env.get("unstable_restarts"),
            "pid": entry.get("pid"),
            "uptime_since": env.get("pm_uptime"),
            "err_log": env.get("pm_err_log_path"),
            "out_log": env.get("pm_out_log_path"),
        }
    return result


def get_health(url: str, timeout: float = 5.0) -> dict[str, Any]:
    """``GET url`` as JSON (also on 503); ``{"status": "down", "error": ...}`` when unreachable."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:  # noqa: S310
            body: dict[str, Any] = json.loads(response.read().decode("utf-8"))
    except urllib.error.HTTPError as exc:
        try:
            body = json.loads(exc.read().decode("utf-8"))
        except ValueError:
            return {"status": "down", "error": f"HTTP {exc.code}"}
    except (urllib.error.URLError, OSError, ValueError) as exc:
        return {"status": "down", "error": str(getattr(exc, "reason", exc))}
    return body


def healthy(body: Mapping[str, Any], mode: str) -> tuple[bool, str]:
    """Whether a health body shows ``mode`` with both databases connected, and why not."""
    if body.get("status") == "down":
        return False, f"API not answering ({body.get('error')})"
    if body.get("mode") != mode:
        return False, f"API in {body.get('mode')} mode, expected {mode}"
    problems = []
    for name, db in sorted((body.get("databases") or {}).items()):
        if not db.get("connected"):
            problems.append(f"{name} not connected ({db.get('error', 'unknown error')})")
    if problems or body.get("status") != "ok":
        return False, "; ".join(problems) or f"status {body.get('status')}"
    dbs = body["databases"]
    return True, ", ".join(f"{n} {d.get('database')}" for n, d in sorted(dbs.items()))


def act_app_state(req: dict[str, Any]) -> None:
    """Fact: build marker, pm2 status of the apps and one health reading."""
    args = req["args"]
    digest = _app_digest(args)
    body = get_health(args["health_url"])
    ok, why = healthy(body, args["mode"])
    pm2 = pm2_status(args["apps"])
    online = all(pm2.get(app, {}).get("status") == "online" for app in args["apps"])
    emit(
        {
            "built": _marker(args, "app-built") == digest,
            "restarted": _marker(args, "app-restarted") == digest,
            "online": online,
            "healthy": ok,
            "health": why,
        }
    )


def act_app_build(req: dict[str, Any]) -> None:
    """pnpm install, db:generate, PRIMARY and DATA migrations (direct URLs), build."""
    args, sec = req["args"], req["secrets"]
    app = home_path(args["app_dir"])
    digest = _app_digest(args)
    if _marker(args, "app-built") == digest:
        say("app already built for this .env and source")
        return
    # The migrations read PRIMARY_DIRECT_URL and DATA_DATABASE_URL from the new .env: the
    # direct URL, never the pool (the app's migrate script refuses a pgbouncer=true URL).
    steps = [
        ["pnpm", "install", *args.get("install_args", [])],
        ["pnpm", "db:generate"],
        ["pnpm", "db:migrate:primary"],
        ["pnpm", "db:migrate:data"],
        ["pnpm", "build"],
    ]
    with ca_file(req) as ca:
        for argv in steps:
            what = " ".join(argv[:2])
            say(what)
            stream(argv, env={"CI": "true"}, cwd=app, what=what)
        conn = with_ca(sec["primary_direct"], ca)
        schemas = args.get("primary_schemas", [])
        if schemas:
            listed = ",".join(_literal(s) for s in schemas)
            rows = psql(
                conn,
                f"SELECT nspname FROM pg_namespace WHERE nspname IN ({listed})",
                what="list PRIMARY's schemas",
            )
            missing = sorted(set(schemas) - set(rows))
            if missing:
                raise Failure(f"PRIMARY lacks schema(s) {', '.join(missing)} after its migrations")
            say(f"PRIMARY has schemas {', '.join(schemas)}")
    _set_marker(args, "app-built", digest)


def act_app_restart(req: dict[str, Any]) -> None:
    """``pm2 restart <apps> --update-env`` (or start them from the ecosystem file if absent)."""
    args = req["args"]
    app = home_path(args["app_dir"])
    apps = list(args["apps"])
    known = pm2_status(apps)
    env = {"PATH": os.environ.get("PATH", "")}
    if all(name in known for name in apps):
        run(["pm2", "restart", *apps, "--update-env"], env=env, cwd=app, what="pm2 restart")
    else:
        run(
            ["pm2", "start", args["ecosystem"], "--only", ",".join(apps), "--update-env"],
            env=env,
            cwd=app,
            what="pm2 start",
        )
    if args.get("record"):
        _set_marker(args, "app-restarted", _app_digest(args))
    say(f"pm2 restarted {', '.join(apps)} with --update-env")


def act_app_stop(req: dict[str, Any]) -> None:
    """``pm2 stop <apps>`` for the apps that are running."""
    args = req["args"]
    running = [n for n, s in pm2_status(args["apps"]).items() if s.get("status") == "online"]
    if running:
        run(["pm2", "stop", *running], what="pm2 stop")
        say(f"pm2 stopped {', '.join(running)}")


def act_health_wait(req: dict[str, Any]) -> None:
    """Poll the health URL until it shows the mode with both databases connected, or time out."""
    args = req["args"]
    deadline = time.monotonic() + float(args["timeout"])
    started = time.monotonic()
    why = "not checked"
    while True:
        ok, why = healthy(get_health(args["health_url"], timeout=3), args["mode"])
        if ok:
            say(f"healthy after {time.monotonic() - started:.1f}s: {args['mode']} mode, {why}")
            return
        if time.monotonic() >= deadline:
            raise Failure(f"not healthy after {args['timeout']}s: {why}")
        time.sleep(float(args.get("interval", 1.0)))


# ----- restore and checks -----------------------------------------------------------------------

_COPY = re.compile(r"^COPY (\S+) .*FROM stdin;$")


def dump_counts(dump: Path) -> dict[str, int]:
    """Rows per table in a custom-format dump, counted from ``pg_restore --data-only`` output."""
    proc = subprocess.Popen(
        ["pg_restore", "--data-only", "-f", "-", str(dump)],
        env=base_env(),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    counts: dict[str, int] = {}
    table: str | None = None
    assert proc.stdout is not None
    for line in proc.stdout:
        if table is None:
            match = _COPY.match(line.rstrip("\n"))
            if match:
                table = match.group(1).replace('"', "")
                counts[table] = 0
        elif line.rstrip("\n") == "\\.":
            table = None
        else:
            counts[table] += 1
    if proc.wait() != 0:
        raise Failure("pg_restore --data-only failed on the backup")
    return counts


def db_counts(conn: Mapping[str, str], tables: Sequence[str]) -> dict[str, int]:
    """Exact row counts of ``tables`` (``schema.table``) in one psql call."""
    if not tables:
        return {}
    parts = []
    for name in tables:
        schema, _, table = name.partition(".")
        parts.append(f"SELECT {_literal(name)}, count(*) FROM {_ident(schema)}.{_ident(table)}")
    rows = psql(conn, " UNION ALL ".join(parts), what="count rows")
    return {row.split("|")[0]: int(row.split("|")[1]) for row in rows}


def restore_into(conn: Mapping[str, str], dump: Path) -> None:
    """``pg_restore --clean --if-exists -f - | psql --single-transaction``, all or nothing.

    Streaming through psql lets a newer ``pg_restore`` restore into an older server: the
    settings it does not know (``SET transaction_timeout`` from 17 on) are left out.
    """
    restore = subprocess.Popen(
        ["pg_restore", "--clean", "--if-exists", "--no-owner", "-f", "-", str(dump)],
        env=base_env(),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    loader = subprocess.Popen(
        ["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "--single-transaction", "-f", "-"],
        env={**base_env(), **conn},
        stdin=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    assert restore.stdout is not None
    assert loader.stdin is not None
    try:
        for line in restore.stdout:
            if not line.startswith(b"SET transaction_timeout"):
                loader.stdin.write(line)
    except BrokenPipeError:
        pass
    with contextlib.suppress(BrokenPipeError):
        loader.stdin.close()
    restore_err = restore.stderr.read().decode(errors="replace") if restore.stderr else ""
    loader_err = loader.stderr.read().decode(errors="replace") if loader.stderr else ""
    if restore.wait() != 0:
        last = (restore_err.strip().splitlines() or ["no output"])[-1]
        raise Failure(f"pg_restore failed: {scrub(last)}")
    if loader.wait() != 0:
        last = (loader_err.strip().splitlines() or ["no output"])[-1]
        raise Failure(f"restoring into the source failed, nothing changed: {scrub(last)}")


def act_restore(req: dict[str, Any]) -> None:
    """Restore the backup into the source database, then compare row counts with the backup."""
    args, sec = req["args"], req["secrets"]
    dump, _, _ = _backup_paths(args)
    if not dump.exists():
        raise Failure(f"no backup at {dump}")
    say(f"pg_restore --clean --if-exists {dump.name} | psql --single-transaction")
    restore_into(sec["source"], dump)
    expected = dump_counts(dump)
    actual = db_counts(sec["source"], sorted(expected))
    different = {t: (n, actual.get(t)) for t, n in expected.items() if actual.get(t) != n}
    if different:
        shown = ", ".join(
            f"{t} {a} rows (backup {n})" for t, (n, a) in sorted(different.items())[:5]
        )
        raise Failure(f"row counts differ from the backup: {shown}")
    say(f"row counts match the backup: {len(expected)} tables, {sum(expected.values())} rows")
    emit({"tables": len(expected), "rows": sum(expected.values())})


def act_check(req: dict[str, Any]) -> None:
    """Fact for the first-hour check: health, connections, pm2, recent error lines."""
    args, sec = req["args"], req["secrets"]
    body = get_health(args["health_url"])
    ok, why = healthy(body, args["mode"])
    connections: dict[str, Any] = {}
    with ca_file(req) as ca:
        for name, conn in (("primary", with_ca(sec["primary_direct"], ca)), ("data", sec["data"])):
            good, row = try_psql(
                conn,
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
                " AND pid <> pg_backend_pid()",
                f"count {name} connections",
            )
            connections[name] = int(row) if good else row
    pm2 = pm2_status(args["apps"])
    errors: dict[str, list[str]] = {}
    pattern = re.compile(args.get("error_pattern", r"(?i)\b(error|fatal|unhandled|ECONNREFUSED)\b"))
    for name, status in pm2.items():
        lines: list[str] = []
        for key in ("err_log", "out_log"):
            path = status.pop(key, None)
            if not path or not os.path.exists(path):
                continue
            with open(path, encoding="utf-8", errors="replace") as handle:
                tail = handle.readlines()[-int(args.get("log_lines", 200)) :]
            lines += [scrub(line.rstrip()) for line in tail if pattern.search(line)]
        errors[name] = lines[-20:]
    emit({"healthy": ok, "health": why, "connections": connections, "pm2": pm2, "errors": errors})


# ----- PRIMARY initialisation (checklist Phase 2) and the reset after a rollback ----------------


def _primary_facts(conn: Mapping[str, str], schemas: Sequence[str]) -> dict[str, Any]:
    """Version, TLS, the app's schemas with their table counts, and applied migrations."""
    listed = ",".join(_literal(s) for s in schemas) or "''"
    rows = psql(
        conn,
        "SELECT current_setting('server_version'),"
        " (SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()),"
        " coalesce((SELECT string_agg(n.nspname || ':' || (SELECT count(*) FROM pg_tables t"
        " WHERE t.schemaname = n.nspname), ',') FROM pg_namespace n"
        f" WHERE n.nspname IN ({listed})), ''),"
        " to_regclass('public._prisma_migrations') IS NOT NULL",
        what="read PRIMARY's state",
    )
    version, tls, found, has_history = [*rows[0].split("|"), "", "", "", ""][:4]
    applied = ""
    if has_history == "t":
        history = psql(
            conn,
            "SELECT coalesce(string_agg(migration_name, ',' ORDER BY migration_name), '')"
            " FROM public._prisma_migrations"
            " WHERE finished_at IS NOT NULL AND rolled_back_at IS NULL",
            what="read PRIMARY's migration history",
        )
        applied = history[0] if history else ""
    tables = {k: int(v) for k, v in (x.split(":") for x in found.split(",") if x)}
    return {
        "version": version,
        "tls": tls == "t",
        "tables": tables,
        "applied": [m for m in applied.split(",") if m],
    }


def _local_migrations(args: Mapping[str, Any]) -> list[str]:
    root = home_path(args["app_dir"]) / "prisma" / "primary" / "migrations"
    if not root.is_dir():
        return []
    return sorted(p.name for p in root.iterdir() if p.is_dir())


def _pool_test(conn: Mapping[str, str], clients: int, hold: float) -> dict[str, Any]:
    """``clients`` psql sessions at once through the pool, each holding a server for ``hold``."""
    env = {**base_env(), **conn, "PGCONNECT_TIMEOUT": "10"}
    sql = f"SELECT pg_sleep({hold:.2f}), 1"
    started = time.monotonic()
    procs = [
        subprocess.Popen(
            ["psql", "-X", "-A", "-t", "-q", "-v", "ON_ERROR_STOP=1", "-c", sql],
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(clients)
    ]
    failures = []
    for proc in procs:
        out, err = proc.communicate(timeout=120)
        if proc.returncode != 0 or out.strip().split("|")[-1] != "1":
            lines = [ln for ln in err.splitlines() if ln.strip()] or ["no output"]
            failures.append(scrub(lines[-1]))
    return {
        "clients": clients,
        "ok": clients - len(failures),
        "seconds": round(time.monotonic() - started, 2),
        "error": failures[0] if failures else "",
    }


def act_primary_state(req: dict[str, Any]) -> None:
    """Fact: PRIMARY from the VPS (version, TLS, schemas, migrations), optionally a pool test."""
    args, sec = req["args"], req["secrets"]
    with ca_file(req) as ca:
        try:
            facts = _primary_facts(with_ca(sec["primary_direct"], ca), args["primary_schemas"])
        except Failure as exc:
            emit({"reachable": False, "error": str(exc)})
            return
        facts["reachable"] = True
        facts["local"] = _local_migrations(args)
        if args.get("pool_clients"):
            facts["pool"] = _pool_test(
                with_ca(sec["primary_pool"], ca),
                int(args["pool_clients"]),
                float(args.get("pool_hold", 0.3)),
            )
    emit(facts)


def act_primary_migrate(req: dict[str, Any]) -> None:
    """``pnpm db:migrate:primary`` with PRIMARY_DIRECT_URL in its environment (never the pool)."""
    args, sec = req["args"], req["secrets"]
    with ca_file(req) as ca:
        env = {"CI": "true", "PRIMARY_DIRECT_URL": with_ca(sec["primary_direct_url"], ca)}
        say("pnpm db:migrate:primary (PRIMARY_DIRECT_URL from the environment)")
        stream(
            ["pnpm", "db:migrate:primary"],
            env=env,
            cwd=home_path(args["app_dir"]),
            what="pnpm db:migrate:primary",
        )


def _env_is_split(env_file: Path) -> bool:
    if not env_file.exists():
        return False
    for line in env_file.read_text(encoding="utf-8").splitlines():
        match = _KEY.match(line)
        if match and match[1] == "SPLIT_DB_MODE":
            value = line.split("=", 1)[1].strip().strip("\"'").lower()
            return value == "true"
    return False


def act_reset_split(req: dict[str, Any]) -> None:
    """Drop the split on PRIMARY and DATA and clear the deploy's state, unless the app uses it."""
    args, sec = req["args"], req["secrets"]
    body = get_health(args["health_url"], timeout=3)
    if body.get("mode") == "split":
        raise Failure("the app runs in split mode: roll back first (deploy/rollback.py)")
    if _env_is_split(home_path(args["env_file"])):
        raise Failure("the app's .env is in split mode: roll back first (deploy/rollback.py)")
    drops = [*args["primary_schemas"], "_dbsplit"]
    with ca_file(req) as ca:
        conn = with_ca(sec["primary_direct"], ca)
        psql(
            conn,
            "DROP SCHEMA IF EXISTS " + ", ".join(_ident(s) for s in drops) + " CASCADE;"
            " DROP TABLE IF EXISTS public._prisma_migrations",
            what="drop the split on PRIMARY",
        )
    say(f"PRIMARY: dropped schemas {', '.join(drops)} and the app's migration history")
    db = args["data_db"]
    psql(
        sec["data_admin"],
        f"DROP DATABASE IF EXISTS {_ident(db)} WITH (FORCE)",
        what=f"drop {db}",
    )
    say(f"DATA: dropped database {db}")
    state = home_path(args["state_dir"])
    for name in ("rolled-back", "app-built", "app-restarted"):
        with contextlib.suppress(FileNotFoundError):
            (state / name).unlink()
    dump, digest, manifest = _backup_paths(args)
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    for path in (dump, digest, manifest):
        if path.exists():
            path.rename(path.with_name(f"{path.name}.{stamp}"))
    say(
        "cleared the stale-split marker and build markers; the old backup kept with suffix "
        f".{stamp} (the next window takes a fresh one)"
    )


# ----- entry point ------------------------------------------------------------------------------

ACTIONS = {
    "probe": act_probe,
    "backup-state": act_backup_state,
    "backup": act_backup,
    "upload": act_upload,
    "fetch": act_fetch,
    "source-state": act_source_state,
    "data-db-state": act_data_db_state,
    "data-db": act_data_db,
    "split-state": act_split_state,
    "dbsplit": act_dbsplit,
    "mark": act_mark,
    "env-state": act_env_state,
    "env-write": act_env_write,
    "env-restore": act_env_restore,
    "env-rollback-state": act_env_rollback_state,
    "app-state": act_app_state,
    "app-build": act_app_build,
    "app-restart": act_app_restart,
    "app-stop": act_app_stop,
    "health-wait": act_health_wait,
    "restore": act_restore,
    "check": act_check,
    "primary-state": act_primary_state,
    "primary-migrate": act_primary_migrate,
    "reset-split": act_reset_split,
}


def main(req: dict[str, Any]) -> int:
    """Run ``req["action"]``; 0 on success, 1 with one ``error:`` line on failure."""
    _MASKS[:] = sorted((m for m in req.get("mask", []) if len(m) >= 4), key=len, reverse=True)
    os.umask(0o077)
    action = ACTIONS.get(req.get("action", ""))
    if action is None:
        print(f"error: unknown vpsctl action {req.get('action')!r}", file=sys.stderr)
        return 2
    try:
        action(req)
    except Failure as exc:
        print(f"error: {scrub(str(exc))}", file=sys.stderr, flush=True)
        return 1
    except Exception as exc:  # a bug or an unexpected state: one scrubbed line, no traceback
        print(f"error: {req['action']}: {type(exc).__name__}: {scrub(str(exc))}", file=sys.stderr)
        return 1
    return 0

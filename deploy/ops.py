"""The window's operations, in pyinfra's shape: read a fact, compare, then yield or noop.

With ``-y`` pyinfra evaluates each operation when its turn comes, so every fact here sees
what the operations before it did. An operation that finds its target state already there
calls ``host.noop(why)``; that is what makes a re-run print "No changes". Failures are one
red line (:func:`fail`), never a traceback, and stop the host: nothing after them runs.

Every operation takes the :class:`~deploy.window.Window` and builds vpsctl requests from it:
secrets travel on stdin (see :mod:`deploy.remote`), never in a command or an argument.
"""

from __future__ import annotations

import hashlib
import shlex
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Generator
from pathlib import Path
from typing import Any

from pyinfra import logger
from pyinfra.api.command import (
    FileDownloadCommand,
    FileUploadCommand,
    FunctionCommand,
    PyinfraCommand,
    StringCommand,
)
from pyinfra.api.operation import OperationMeta, operation
from pyinfra.context import host

from dbsplit.urls import parse
from deploy.facts import VenvDigest, Vpsctl
from deploy.remote import Request, vpsctl_command
from deploy.remote.vpsctl import CA_PLACEHOLDER
from deploy.window import Window

Commands = Generator[PyinfraCommand | str, None, None]

REPO = Path(__file__).resolve().parents[1]


# ----- helpers ----------------------------------------------------------------------------------


def _fail_now(state: Any, host: Any, message: str) -> bool:
    host.log_styled(message, fg="red", log_func=logger.error)
    return False


def fail(message: str) -> FunctionCommand:
    """A command that prints ``message`` as one red line and fails the operation."""
    return FunctionCommand(_fail_now, (message,), {})


def vpsctl(request: Request, python: str = "python3") -> StringCommand:
    """Run a vpsctl action with ``request`` on stdin."""
    return StringCommand(*vpsctl_command(request.action, python).bits, _stdin=request)


def fact(request: Request, python: str = "python3") -> dict[str, Any]:
    """Read a vpsctl fact."""
    result: dict[str, Any] = host.get_fact(
        Vpsctl, action=request.action, python=python, _stdin=request
    )
    return result


def venv_python(window: Window) -> str:
    """The dbsplit virtualenv's Python on the VPS."""
    return f"{window.settings.venv}/bin/python"


# ----- 1. preflight -----------------------------------------------------------------------------


@operation()
def preflight(window: Window) -> Commands:
    """
    Check, changing nothing, that the window can run: disk for the backup, ``pg_dump`` new
    enough for the source, PRIMARY direct and pooled with TLS ``verify-full`` against the
    cluster's CA, the DATA server, and no split left over from before a rollback.

    + window: the host's settings and secrets

    **Example:**

    .. code:: python

        preflight(name="Preflight", window=window)
    """
    s = window.settings
    probe = fact(
        window.request(
            "probe",
            {
                **window.backup_args(),
                "disk_factor": s.disk_factor,
                "disk_margin": s.disk_margin_mb << 20,
                "state_dir": s.state_dir,
            },
            source=window.source(),
            primary_direct=window.primary_direct(),
            primary_pool=window.primary_pool(),
            data_admin=window.data_admin(),
            ca_pem=window.ca_pem(),
        )
    )
    checks = probe.get("checks", [])
    failed = [c for c in checks if not c["ok"]]
    if failed or not checks:
        reasons = (
            "; ".join(f"{c['name']}: {c['detail']}" for c in failed) or "vpsctl gave no result"
        )
        yield fail(f"preflight failed, nothing was changed: {reasons}")
        return
    split = _split_state(window)
    if split.get("started") and split.get("rolled_back"):
        yield fail(
            "preflight failed, nothing was changed: PRIMARY and DATA hold a split from "
            "before a rollback; the old database has changed since. Reset them (docs/deploy.md, "
            "'Re-running after a rollback') before running the window again"
        )
        return
    host.noop("preflight passed: " + "; ".join(c["detail"] for c in checks))


# ----- tooling: dbsplit in a virtualenv on the VPS ----------------------------------------------


WHEEL_SOURCES = ("pyproject.toml", "README.md", "dbsplit")
"""What the dbsplit wheel is built from."""


def _git(*args: str) -> str | None:
    """``git <args>`` in the repository, or None when that is not a git checkout."""
    try:
        proc = subprocess.run(
            ["git", *args], cwd=REPO, capture_output=True, text=True, check=False, timeout=30
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return proc.stdout.strip() if proc.returncode == 0 else None


def dbsplit_digest() -> str:
    """What identifies the dbsplit that ships: the committed tree (``HEAD``) of its sources.

    The deploy ships committed code only: uncommitted edits in the work tree are not deployed.
    Outside a git checkout, a SHA-256 over the files themselves.
    """
    trees = [_git("rev-parse", f"HEAD:{name}") for name in WHEEL_SOURCES]
    if all(trees):
        return hashlib.sha256(" ".join(t or "" for t in trees).encode()).hexdigest()
    digest = hashlib.sha256()
    for path in [REPO / "pyproject.toml", *sorted((REPO / "dbsplit").rglob("*.py"))]:
        digest.update(str(path.relative_to(REPO)).encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()


def _export_sources(dest: Path) -> None:
    """The wheel's sources at ``HEAD`` (``git archive``), else as they are on disk."""
    if _git("rev-parse", "HEAD") is not None:
        archive = subprocess.run(
            ["git", "archive", "--format=tar", "HEAD", *WHEEL_SOURCES],
            cwd=REPO,
            capture_output=True,
            check=True,
        )
        subprocess.run(["tar", "-x", "-C", str(dest)], input=archive.stdout, check=True)
        return
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(REPO / name, dest / name)
    shutil.copytree(
        REPO / "dbsplit", dest / "dbsplit", ignore=shutil.ignore_patterns("__pycache__")
    )


def build_wheel(out_dir: Path) -> Path:
    """Build the dbsplit wheel from a copy of its sources (the work tree stays clean)."""
    src = out_dir / "src"
    src.mkdir()
    _export_sources(src)
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(out_dir),
            str(src),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    wheels = sorted(out_dir.glob("*.whl"))
    if proc.returncode != 0 or not wheels:
        last = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        raise RuntimeError(f"building the dbsplit wheel failed: {last}")
    return wheels[0]


@operation()
def dbsplit_installed(window: Window) -> Commands:
    """
    Install this repository's ``dbsplit`` (with boto3) into a virtualenv on the VPS.

    + window: the host's settings (``venv``, ``pip_args``, ``state_dir``)

    Updates: only when the installed package was built from other sources than these.
    """
    s = window.settings
    digest = dbsplit_digest()
    if host.get_fact(VenvDigest, venv=s.venv) == digest:
        host.noop(f"dbsplit {digest[:12]} already installed in {s.venv}")
        return
    build_dir = Path(tempfile.mkdtemp(prefix="handled-dbsplit-wheel-"))
    wheel = build_wheel(build_dir)
    remote_dir = f"{s.state_dir}/wheels"
    remote = f"{remote_dir}/{wheel.name}"
    pip = f"{s.venv}/bin/pip"
    extra = " ".join(shlex.quote(a) for a in s.pip_args)
    yield f"mkdir -p -m 700 {s.state_dir} {remote_dir} && python3 -m venv {s.venv}"
    yield FileUploadCommand(str(wheel), remote)
    yield f"{pip} install -q {extra} --upgrade boto3 {remote}"
    yield f"{pip} install -q {extra} --no-deps --force-reinstall {remote}"
    yield f"printf '%s\\n' {digest} > {s.venv}/.handled-dbsplit-digest"


def _split_state(window: Window) -> dict[str, Any]:
    return fact(
        window.request(
            "split-state",
            {"state_dir": window.settings.state_dir},
            primary_direct=window.primary_direct(),
            data=window.data(),
            ca_pem=window.ca_pem(),
        )
    )


@operation()
def split_plan_clear(window: Window) -> Commands:
    """
    Run ``dbsplit plan`` on the VPS and stop the window if it reports blockers.

    + window: the host's settings and secrets

    Updates: nothing, ever; skipped once the split has finished.
    """
    if _split_state(window).get("done"):
        host.noop("the split has finished: no plan needed")
        return
    yield vpsctl(
        window.request(
            "dbsplit",
            {"venv": window.settings.venv, "argv": ["plan"]},
            dbsplit_env=window.dbsplit_env(),
            ca_pem=window.ca_pem(),
        )
    )


# ----- 2. backup --------------------------------------------------------------------------------


@operation()
def backup_taken(window: Window) -> Commands:
    """
    ``pg_dump -Fc`` of the source into the VPS's backup directory, with its SHA-256 and a
    successful ``pg_restore --list``.

    + window: the host's settings (``backup_dir``, ``backup_name``) and secrets

    Updates: never replaces a valid backup (delete it to take a new one).
    """
    state = fact(
        window.request("backup-state", {**window.backup_args(), "key": window.settings.backup_key})
    )
    if state.get("local"):
        host.noop(f"backup already taken (sha256 {state.get('sha256')})")
        return
    yield vpsctl(window.request("backup", window.backup_args(), source=window.source()))


@operation()
def backup_uploaded(window: Window) -> Commands:
    """
    Upload the backup to the Spaces bucket (multipart when large) and check it by streaming
    it back through SHA-256. Runs with the dbsplit virtualenv's Python (boto3).

    + window: the host's settings (bucket, endpoint, region) and the Spaces key pair
    """
    args = {**window.backup_args(), **window.s3_args()}
    state = fact(window.request("backup-state", args))
    if state.get("uploaded"):
        where = f"s3://{args['bucket']}/{args['key']}"
        host.noop(f"backup already in {where} with sha256 {state.get('sha256')}")
        return
    yield vpsctl(window.request("upload", args, **window.s3_secrets()), venv_python(window))


# ----- 3. stop the app, freeze the source -------------------------------------------------------


def _env_state(window: Window) -> dict[str, Any]:
    return fact(
        window.request(
            "env-state",
            window.env_args(),
            env_values=window.app_env_values(),
            ca_pem=window.ca_pem(),
        )
    )


def _app_state(window: Window, mode: str) -> dict[str, Any]:
    return fact(window.request("app-state", window.app_args(mode)))


@operation()
def app_stopped_for_split(window: Window) -> Commands:
    """
    ``pm2 stop`` the apps before the data moves, unless the split ``.env`` is already in place
    (a re-run after the window, or after a failure past that point).

    + window: the host's settings and secrets
    """
    if _env_state(window).get("same"):
        host.noop("the app already has the split .env: not stopping it")
        return
    yield from _pm2_stop(window, "single")


@operation()
def source_frozen(window: Window, frozen: bool = True) -> Commands:
    """
    Freeze (``dbsplit freeze``) or unfreeze (``dbsplit unfreeze``) the source database.

    + window: the host's settings and secrets
    + frozen: whether the source should refuse writes
    """
    state = fact(window.request("source-state", source=window.source()))
    if not state.get("reachable"):
        yield fail(f"cannot read the source's state: {state.get('error')}")
        return
    if bool(state.get("frozen")) == frozen:
        host.noop(
            f"source {window.settings.source_db} already {'frozen' if frozen else 'writable'}"
        )
        return
    yield vpsctl(
        window.request(
            "dbsplit",
            {"venv": window.settings.venv, "argv": ["freeze" if frozen else "unfreeze"]},
            dbsplit_env=window.dbsplit_env(),
            ca_pem=window.ca_pem(),
        )
    )


# ----- 4. the DATA database ---------------------------------------------------------------------


@operation()
def data_database(window: Window) -> Commands:
    """
    Create the DATA role (SCRAM verifier: the password never reaches the server) and the
    ``handled_data`` database owned by it, when missing.

    + window: the host's settings (``data_db``, ``data_role``) and secrets
    """
    s = window.settings
    parsed = parse(window.secrets.require("DATA_DATABASE_URL"), what="DATA_DATABASE_URL")
    if parsed.user != s.data_role or parsed.dbname != s.data_db:
        yield fail(
            f"DATA_DATABASE_URL names {parsed.user}@{parsed.dbname}, "
            f"the settings say {s.data_role}@{s.data_db}"
        )
        return
    args = {"role": s.data_role, "database": s.data_db}
    secrets = {"data_admin": window.data_admin(), "data_password": parsed.password or ""}
    request = window.request("data-db-state", args, **secrets)
    state = fact(request)
    if state.get("database") and state.get("login") and state.get("owner") == s.data_role:
        host.noop(f"database {s.data_db} and role {s.data_role} exist")
        return
    yield vpsctl(window.request("data-db", args, **secrets))


# ----- 5. the data migration --------------------------------------------------------------------


@operation()
def split_migrated(window: Window) -> Commands:
    """
    ``dbsplit migrate`` on the VPS (the cluster trusts only its IP), writing its JSON report.

    + window: the host's settings (``dbsplit_jobs``, ``dbsplit_migrate_args``) and secrets

    Updates: nothing once both targets record the finished split; an interrupted run resumes.
    """
    s = window.settings
    if _split_state(window).get("done"):
        host.noop("dbsplit migrate has finished on PRIMARY and DATA")
        return
    argv = [
        "migrate",
        "--jobs",
        str(s.dbsplit_jobs),
        *s.dbsplit_migrate_args,
        "--report",
        s.report_path,
    ]
    yield vpsctl(
        window.request(
            "dbsplit",
            {"venv": s.venv, "argv": argv, "report": s.report_path},
            dbsplit_env=window.dbsplit_env(),
            ca_pem=window.ca_pem(),
        )
    )


@operation()
def report_fetched(window: Window, local_path: str) -> Commands:
    """
    Bring ``dbsplit migrate``'s report back to the operator's machine.

    + window: the host's settings
    + local_path: where to keep it

    Updates: only when the local copy differs from the VPS's.
    """
    from pyinfra.facts.files import Sha1File

    remote = window.settings.report_path
    remote_sha = host.get_fact(Sha1File, path=remote)
    if not remote_sha:
        host.noop(f"no report at {remote} (the split ran elsewhere)")
        return
    local = Path(local_path)
    if local.exists() and hashlib.sha1(local.read_bytes()).hexdigest() == remote_sha:  # noqa: S324
        host.noop(f"report already at {local}")
        return
    local.parent.mkdir(parents=True, exist_ok=True)
    yield FileDownloadCommand(remote, str(local))


# ----- 6. the CA file and the new .env ----------------------------------------------------------


@operation()
def env_split(window: Window) -> Commands:
    """
    Write the CA certificate and the split ``.env``: atomically, mode 0600 from the first byte,
    the previous file kept once as ``.env.pre-split``, every other line of it kept.

    + window: the host's settings (``env_file``, ``ca_path``) and secrets
    """
    state = _env_state(window)
    if (
        state.get("same")
        and state.get("ca_same")
        and state.get("mode") == "0o600"
        and state.get("owner_ok")
    ):
        host.noop(".env and CA certificate already as the split needs them (mode 0600)")
        return
    yield vpsctl(
        window.request(
            "env-write",
            window.env_args(),
            env_values=window.app_env_values(),
            ca_pem=window.ca_pem(),
        )
    )


@operation()
def env_rolled_back(window: Window) -> Commands:
    """
    Put ``.env.pre-split`` back as ``.env`` (atomically, mode 0600).

    + window: the host's settings
    """
    state = fact(window.request("env-rollback-state", window.env_args()))
    if not state.get("pre_split"):
        yield fail(f"no {window.settings.env_file}.pre-split to roll back to")
        return
    if state.get("same"):
        host.noop(".env is already the pre-split one")
        return
    yield vpsctl(window.request("env-restore", window.env_args()))


@operation()
def app_stopped_for_rollback(window: Window) -> Commands:
    """
    ``pm2 stop`` the apps before the old ``.env`` goes back, so the split app writes no more.

    + window: the host's settings
    """
    state = fact(window.request("env-rollback-state", window.env_args()))
    if state.get("same"):
        host.noop(".env is already the pre-split one: not stopping the app")
        return
    yield from _pm2_stop(window, "split")


@operation()
def rollback_recorded(window: Window) -> Commands:
    """
    Record on the VPS that the app went back to the old database after the split started:
    the targets are stale from now on, and the window refuses to run until they are reset.

    + window: the host's settings and secrets
    """
    split = _split_state(window)
    if not split.get("started"):
        host.noop("no split on PRIMARY or DATA: nothing goes stale")
        return
    if split.get("rolled_back"):
        host.noop("rollback already recorded")
        return
    yield vpsctl(
        window.request("mark", {"state_dir": window.settings.state_dir, "name": "rolled-back"})
    )


def _pm2_stop(window: Window, mode: str) -> Commands:
    """``pm2 stop`` the apps as run with the ``mode`` (``single`` or ``split``) ``.env``,
    unless they are not running."""
    if not _app_state(window, mode).get("online"):
        host.noop("the app is not running")
        return
    yield vpsctl(window.request("app-stop", window.app_args(mode)))


@operation()
def app_stopped(window: Window) -> Commands:
    """
    ``pm2 stop`` the apps, whatever database they use.

    + window: the host's settings
    """
    yield from _pm2_stop(window, "single")


# ----- 7.-9. build, restart, health -------------------------------------------------------------


@operation()
def app_built(window: Window) -> Commands:
    """
    ``pnpm install``, ``pnpm db:generate``, the PRIMARY and DATA migrations (direct URLs from
    the new ``.env``), ``pnpm build``; then check PRIMARY has its schemas.

    + window: the host's settings and secrets

    Updates: only when the app's sources or its ``.env`` changed since the last build.
    """
    s = window.settings
    if _app_state(window, "split").get("built"):
        host.noop("app already built for these sources and this .env")
        return
    yield vpsctl(
        window.request(
            "app-build",
            {
                **window.app_args("split"),
                "install_args": list(s.pnpm_install_args),
                "primary_schemas": list(s.primary_schemas),
            },
            primary_direct=window.primary_direct(),
            ca_pem=window.ca_pem(),
        )
    )


@operation()
def app_restarted(window: Window, mode: str) -> Commands:
    """
    ``pm2 restart <apps> --update-env``.

    + window: the host's settings
    + mode: ``split`` (restart when the build or ``.env`` changed since the last restart, or
      an app is down) or ``single`` (restart unless healthy on the old database)
    """
    state = _app_state(window, mode)
    if mode == "split" and state.get("restarted") and state.get("online"):
        host.noop("apps already restarted on this build and .env")
        return
    if mode == "single" and state.get("online") and state.get("healthy"):
        host.noop(f"apps already healthy in single mode: {state.get('health')}")
        return
    yield vpsctl(
        window.request("app-restart", {**window.app_args(mode), "record": mode == "split"})
    )


@operation()
def app_healthy(window: Window, mode: str, timeout: int) -> Commands:
    """
    Poll ``/api/health`` until it reports ``mode`` with both databases connected.

    + window: the host's settings
    + mode: ``split`` or ``single``
    + timeout: seconds to wait before failing
    """
    state = _app_state(window, mode)
    if state.get("healthy"):
        host.noop(f"healthy in {mode} mode: {state.get('health')}")
        return
    yield vpsctl(window.request("health-wait", {**window.app_args(mode), "timeout": timeout}))


def _failed_after(state: Any, host: Any, gate: OperationMeta, message: str) -> bool:
    lines = [ln for ln in gate.stderr_lines if ln.strip()] if gate.is_complete() else []
    cause = lines[-1].removeprefix("error: ") if lines else "see above"
    return _fail_now(state, host, f"{message} ({cause})")


@operation()
def deploy_failed(gate: OperationMeta, message: str) -> Commands:
    """
    Fail the deploy with ``message`` and the reason ``gate`` failed (use with ``_if``).

    + gate: the operation whose failure this reports
    + message: one line saying what happened
    """
    yield FunctionCommand(_failed_after, (gate, message), {})


# ----- restore ----------------------------------------------------------------------------------


@operation(is_idempotent=False)
def backup_fetched(window: Window, sha256: str | None = None) -> Commands:
    """
    Make sure the backup is on the VPS with the right checksum: the local copy, else a
    download from the bucket (checked against ``sha256`` or the object's recorded one).

    + window: the host's settings and the Spaces key pair
    + sha256: the expected checksum, when known
    """
    args: dict[str, Any] = {**window.backup_args(), "sha256": sha256}
    state = fact(window.request("backup-state", {**args, "key": window.settings.backup_key}))
    if state.get("local") and (sha256 is None or state.get("sha256") == sha256):
        yield vpsctl(window.request("fetch", {**args, "sha256": state.get("sha256")}))
        return
    yield vpsctl(
        window.request("fetch", {**args, **window.s3_args()}, **window.s3_secrets()),
        venv_python(window),
    )


@operation(is_idempotent=False)
def source_restored(window: Window) -> Commands:
    """
    Restore the backup into the source database (``pg_restore --clean --single-transaction``)
    and compare every table's row count with the backup's.

    + window: the host's settings and secrets
    """
    yield vpsctl(window.request("restore", window.backup_args(), source=window.source()))


# ----- the first-hour check ---------------------------------------------------------------------


@operation()
def first_hour_check(window: Window) -> Commands:
    """
    Health, connections in use on both databases against the pool size, pm2 status and
    restart counts, error lines in the recent pm2 logs; fails when any is wrong.

    + window: the host's settings and secrets

    Updates: nothing.
    """
    s = window.settings
    report = fact(
        window.request(
            "check",
            window.app_args("split"),
            primary_direct=window.primary_direct(),
            data=window.data(),
            ca_pem=window.ca_pem(),
        )
    )
    problems: list[str] = []
    lines = [f"health: {'ok' if report.get('healthy') else 'FAILING'} ({report.get('health')})"]
    if not report.get("healthy"):
        problems.append(f"health: {report.get('health')}")
    for name, count in sorted((report.get("connections") or {}).items()):
        if isinstance(count, int):
            lines.append(f"{name} connections in use: {count} (pool size {s.pool_size})")
            if name == "primary" and count >= s.pool_size:
                problems.append(f"{count} PRIMARY connections, pool size {s.pool_size}")
        else:
            problems.append(f"{name}: {count}")
    pm2 = report.get("pm2") or {}
    for app in s.pm2_apps:
        info = pm2.get(app)
        if info is None:
            problems.append(f"pm2 app {app} missing")
            continue
        lines.append(f"pm2 {app}: {info.get('status')}, {info.get('restarts')} restarts")
        if info.get("status") != "online":
            problems.append(f"pm2 app {app} is {info.get('status')}")
    for app, errors in sorted((report.get("errors") or {}).items()):
        lines.append(f"{app}: {len(errors)} error line(s) in the recent logs")
        lines += [f"    {e}" for e in errors[-5:]]
        if errors:
            problems.append(f"{len(errors)} error line(s) in {app}'s recent logs")
    for line in lines:
        host.log(line)
    if problems:
        yield fail("first-hour check failed: " + "; ".join(problems))
        return
    host.noop("first-hour check passed")


# ----- Phase 2: PRIMARY initialisation ----------------------------------------------------------


def _primary_state(window: Window, pool_clients: int = 0) -> dict[str, Any]:
    s = window.settings
    return fact(
        window.request(
            "primary-state",
            {
                "app_dir": s.app_dir,
                "primary_schemas": list(s.primary_schemas),
                "pool_clients": pool_clients,
            },
            primary_direct=window.primary_direct(),
            primary_pool=window.primary_pool(),
            ca_pem=window.ca_pem(),
        )
    )


@operation()
def primary_reachable(window: Window) -> Commands:
    """
    Connect to PRIMARY from the VPS, directly with TLS ``verify-full``: ``SELECT version()``.

    + window: the host's settings and secrets

    Updates: nothing, ever.
    """
    state = _primary_state(window)
    if not state.get("reachable"):
        yield fail(f"PRIMARY is not reachable from the VPS: {state.get('error')}")
        return
    if not state.get("tls"):
        yield fail("PRIMARY answered without TLS")
        return
    host.noop(f"PRIMARY reachable from the VPS with TLS: PostgreSQL {state.get('version')}")


@operation()
def primary_migrated(window: Window) -> Commands:
    """
    ``pnpm db:migrate:primary`` through ``PRIMARY_DIRECT_URL`` (never the pool).

    + window: the host's settings and secrets

    Updates: only when a migration of the app's ``prisma/primary`` is not applied on PRIMARY.
    """
    state = _primary_state(window)
    pending = sorted(set(state.get("local", [])) - set(state.get("applied", [])))
    if state.get("local") and not pending:
        host.noop(f"PRIMARY has all {len(state['local'])} of the app's migrations")
        return
    s = window.settings
    yield vpsctl(
        window.request(
            "primary-migrate",
            {"app_dir": s.app_dir},
            primary_direct_url=window.primary_direct_url(CA_PLACEHOLDER),
            ca_pem=window.ca_pem(),
        )
    )


@operation()
def primary_schemas_present(window: Window) -> Commands:
    """
    Check that PRIMARY has the app's schemas (``config``, ``customer``) and tables in each.

    + window: the host's settings and secrets

    Updates: nothing, ever.
    """
    tables = _primary_state(window).get("tables", {})
    missing = [s for s in window.settings.primary_schemas if not tables.get(s)]
    if missing:
        yield fail(f"PRIMARY lacks tables in schema(s) {', '.join(missing)}")
        return
    host.noop("PRIMARY schemas: " + ", ".join(f"{k} ({v} tables)" for k, v in tables.items()))


@operation()
def primary_pool_tested(window: Window, clients: int) -> Commands:
    """
    Open ``clients`` sessions at once through the pool (``pgbouncer=true``, verify-full), more
    than its size, each holding a server connection for a moment: all must succeed.

    + window: the host's settings and secrets
    + clients: how many concurrent sessions

    Updates: nothing, ever.
    """
    pool = _primary_state(window, pool_clients=clients).get("pool", {})
    if pool.get("ok") != clients:
        yield fail(
            f"pool test: {pool.get('ok', 0)} of {clients} concurrent sessions succeeded "
            f"({pool.get('error') or 'no result'})"
        )
        return
    host.noop(
        f"pool test: {clients} concurrent sessions through PgBouncer all succeeded "
        f"in {pool.get('seconds')}s"
    )


# ----- reset after a rollback -------------------------------------------------------------------


@operation()
def split_reset(window: Window, confirmed: bool) -> Commands:
    """
    Drop the stale split (PRIMARY's schemas and ``_dbsplit``, the ``handled_data`` database),
    clear the rollback marker and build markers, keep the old backup aside. Refused while the
    app runs in split mode, and without ``confirmed``.

    + window: the host's settings and secrets
    + confirmed: the operator said ``confirm_reset=yes``
    """
    if not confirmed:
        yield fail(
            "reset refused: it drops PRIMARY's split schemas and the DATA database; "
            "pass --data confirm_reset=yes (or HANDLED_CONFIRM_RESET=yes)"
        )
        return
    split = _split_state(window)
    primary = _primary_state(window)
    if not split.get("started") and not split.get("rolled_back") and not primary.get("tables"):
        host.noop("no split on PRIMARY or DATA and no stale marker: nothing to reset")
        return
    s = window.settings
    data_db = window.data().get("PGDATABASE", s.data_db)
    yield vpsctl(
        window.request(
            "reset-split",
            {
                **window.app_args("single"),
                **window.backup_args(),
                "primary_schemas": list(s.primary_schemas),
                "data_db": data_db,
            },
            primary_direct=window.primary_direct(),
            data_admin=window.data_admin(),
            ca_pem=window.ca_pem(),
        )
    )

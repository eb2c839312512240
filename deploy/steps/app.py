"""Steps 7-9: build the app, restart it (the cut-over), wait for its health (operations)."""

from __future__ import annotations

import dataclasses
from typing import Any

from pyinfra.api.command import FunctionCommand
from pyinfra.api.operation import OperationMeta, operation
from pyinfra.context import host

from deploy.steps import Commands, _fail_now, clean, fact, run
from deploy.steps import app_remote as remote
from deploy.steps.split import secrets
from deploy.window import Window


def query(window: Window, mode: str, timeout: float = 60.0, phase: str = "") -> remote.App:
    s = window.settings
    return remote.App(
        app_dir=s.app_dir,
        env_file=s.env_file,
        apps=list(s.pm2_apps),
        ecosystem=s.ecosystem,
        health_url=s.health_url,
        mode=mode,
        health_contract=dict(s.health_contract),
        smoke=dataclasses.asdict(window.smoke()),
        phase=phase,
        venv=s.venv,
        install_args=list(s.pnpm_install_args),
        primary_schemas=list(s.primary_schemas),
        timeout=timeout,
    )


def app_state(window: Window, mode: str, phase: str = "") -> remote.AppState:
    return fact(window, remote.state, query(window, mode, phase=phase))


@operation()
@clean
def app_built(window: Window) -> Commands:
    """
    ``pnpm install``, ``pnpm db:generate``, the PRIMARY and DATA migrations (direct URLs from
    the new ``.env``), ``pnpm build``; then check PRIMARY has its schemas.

    + window: the host's settings and secrets

    Updates: only when the app's sources or its ``.env`` changed since the last build.
    """
    if app_state(window, "split").built:
        host.noop("app already built for these sources and this .env")
        return
    yield run(
        window,
        remote.build,
        query(window, "split"),
        primary_direct=window.primary_direct(),
        ca_pem=window.ca_pem(),
    )


@operation()
@clean
def app_restarted(window: Window, mode: str) -> Commands:
    """
    ``pm2 restart <apps> --update-env`` (started from the ecosystem file when pm2 lost them).

    + window: the host's settings
    + mode: ``split`` (the cut-over: through the gate, recorded; a restart when the build or
      ``.env`` changed since the last one, or an app is down) or ``single`` (unless healthy on
      the old database already)
    """
    found = app_state(window, mode)
    if mode == "split" and found.restarted and found.online:
        host.noop("apps already restarted on this build and .env")
        return
    if mode == "single" and found.online and found.healthy:
        host.noop(f"apps already healthy in single mode: {found.health}")
        return
    extra: dict[str, Any] = {}
    if mode == "split":
        extra = {
            **secrets(window),
            "primary_direct": window.primary_direct(),
            "data": window.data(),
        }
    yield run(window, remote.restart, query(window, mode), **extra)


@operation()
@clean
def app_healthy(window: Window, mode: str, timeout: int, phase: str = "") -> Commands:
    """
    Poll the health URL until it reports ``mode`` with both databases connected (read by
    ``health_contract``); then, with ``phase``, run the smoke checks, record them in the
    journal as ``smoke[phase]`` and fail unless every one passes.

    + window: the host's settings (and the smoke user's password)
    + mode: ``split`` or ``single``
    + timeout: seconds to wait before failing
    + phase: ``cutover`` or ``rollback`` (the journal's name for this smoke run), or empty

    Updates: nothing when healthy and this phase's smoke checks passed since it began.
    """
    found = app_state(window, mode, phase)
    if found.healthy and found.smoke_passed:
        host.noop(f"healthy in {mode} mode: {found.health}")
        return
    yield run(
        window, remote.wait_healthy, query(window, mode, timeout, phase), **window.smoke_secrets()
    )


def _failed_after(state: Any, host: Any, gate: OperationMeta, message: str) -> bool:
    lines = [ln for ln in gate.stderr_lines if ln.strip()] if gate.is_complete() else []
    cause = lines[-1].removeprefix("error: ") if lines else "see above"
    return _fail_now(state, host, f"{message} ({cause})")


@operation()
@clean
def deploy_failed(gate: OperationMeta, message: str) -> Commands:
    """
    Fail the deploy with ``message`` and the reason ``gate`` failed (use with ``_if``).

    + gate: the operation whose failure this reports
    + message: one line saying what happened
    """
    yield FunctionCommand(_failed_after, (gate, message), {})

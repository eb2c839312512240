"""The VPS side's runtime: what every remote action of a step shares.

Remote actions (``deploy/steps/*_remote.py``) run on the VPS, shipped with the modules they
import on **stdin** (see :mod:`deploy.remote`): standard library only, Python 3.10+. This module
holds what they share: output that never shows a secret (:func:`say`, :func:`emit`), the one
failure type (:class:`Failure`, printed as one ``error:`` line), files written atomically and
privately, child processes that get connection settings in their environment and never in
their arguments, and :func:`main`, which builds the action's typed request and runs it.

A request is one JSON line::

    {"entry": "deploy.steps.freeze_remote", "func": "freeze", "args": {...},
     "secrets": {...}, "mask": [...], "run": "<run id>", "runbook": "window",
     "state_dir": ".handled-deploy", "progress_every": 10.0}

``args`` become the action's request dataclass (the annotation of its first parameter); a fact
action returns a result dataclass, printed as one JSON line.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import importlib
import json
import os
import re
import secrets
import subprocess
import sys
import tempfile
import typing
from collections.abc import Callable, Mapping, Sequence
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
    print(scrub(json.dumps(data, sort_keys=True, default=str)), flush=True)


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
    fsync_dir(path.parent)


def fsync_dir(path: Path) -> None:
    """fsync a directory, so a rename or a new file in it survives a crash."""
    dir_fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def read_json(path: Path) -> Any:
    """The JSON in ``path``, or None when it is missing or unreadable."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


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
        raise Failure(f"{what} failed (exit {proc.returncode}): {last_line(proc)}")
    return proc.stdout


def last_line(proc: subprocess.CompletedProcess[str]) -> str:
    """The last non-empty line a finished process printed (stderr first), scrubbed."""
    lines = [ln for ln in (proc.stderr + "\n" + proc.stdout).splitlines() if ln.strip()]
    return scrub(lines[-1].strip()) if lines else "no output"


def stream(
    argv: Sequence[str],
    *,
    env: Mapping[str, str],
    cwd: Path | None,
    what: str,
    relay: Callable[[str], bool] | None = None,
) -> list[str]:
    """Run a long command, relaying each output line (scrubbed) as it comes; returns them.

    ``relay`` sees each line first and says whether to relay it (it may print its own)."""
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
    lines: list[str] = []
    assert proc.stdout is not None
    for line in proc.stdout:
        if line.strip():
            lines.append(scrub(line.rstrip()))
            if relay is None or relay(lines[-1]):
                say(f"  {line.rstrip()}")
    code = proc.wait()
    if code != 0:
        raise Failure(f"{what} failed (exit {code}): {lines[-1].strip() if lines else 'no output'}")
    return lines


# ----- the request ------------------------------------------------------------------------------


class Context:
    """What an action gets besides its typed request: secrets, the run, the state directory.

    ``ctx.conn("source")`` is a libpq environment (``PGHOST``...) for a connection secret, the
    PRIMARY CA placeholder replaced by a private temporary file that lives as long as the
    action. ``ctx.secret("auth_secret")`` is a plain secret.
    """

    def __init__(self, req: Mapping[str, Any], stack: contextlib.ExitStack) -> None:
        self._secrets: dict[str, Any] = dict(req.get("secrets") or {})
        self.run: str = str(req.get("run", ""))
        self.runbook: str = str(req.get("runbook", ""))
        self.state_dir: Path = home_path(str(req.get("state_dir") or ".handled-deploy"))
        self.progress_every: float = float(req.get("progress_every") or 10.0)
        self._stack = stack
        self._ca: str | None = None

    def has(self, name: str) -> bool:
        return bool(self._secrets.get(name))

    def secret(self, name: str) -> Any:
        if name not in self._secrets:
            raise Failure(f"the request carries no {name}")
        return with_ca(self._secrets[name], self.ca_path())

    def conn(self, name: str) -> dict[str, str]:
        """The libpq environment of connection ``name``."""
        value = self.secret(name)
        if not isinstance(value, dict):
            raise Failure(f"{name} is not a connection")
        return {str(k): str(v) for k, v in value.items()}

    def ca_path(self) -> str | None:
        """The CA certificate in a private temporary file, for this action only."""
        pem = self._secrets.get("ca_pem")
        if not pem:
            return None
        if self._ca is None:
            fd, name = tempfile.mkstemp(prefix="handled-ca-", suffix=".pem")
            with os.fdopen(fd, "w", encoding="ascii") as handle:
                handle.write(pem)
            self._stack.callback(_unlink, name)
            self._ca = name
        return self._ca


def _unlink(name: str) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.unlink(name)


def with_ca(value: Any, ca: str | None) -> Any:
    """``value`` (a string, or a dict of them) with the CA placeholder replaced by ``ca``."""
    if isinstance(value, dict):
        return {k: with_ca(v, ca) for k, v in value.items()}
    if isinstance(value, str) and ca is not None:
        return value.replace(CA_PLACEHOLDER, ca)
    return value


def request_type(func: Any) -> Any:
    """The dataclass an action takes as its request (its first parameter's annotation)."""
    hints = typing.get_type_hints(func, vars(sys.modules[func.__module__]))
    first = next(iter(func.__code__.co_varnames[: func.__code__.co_argcount]))
    return hints[first]


def build(kind: Any, args: Mapping[str, Any]) -> Any:
    """``kind(**args)``, refusing unknown or missing fields with one line."""
    names = {f.name for f in dataclasses.fields(kind)}
    unknown = sorted(set(args) - names)
    if unknown:
        raise Failure(f"{kind.__name__}: unknown field {unknown[0]!r}")
    try:
        return kind(**args)
    except TypeError as exc:
        raise Failure(f"{kind.__name__}: {exc}") from None


def main(req: dict[str, Any]) -> int:
    """Run ``req["func"]`` of module ``req["entry"]``; 0 on success, 1 with one ``error:`` line.

    A fact returns a dataclass, printed as one JSON line; an action returns None.
    """
    _MASKS[:] = sorted((m for m in req.get("mask", []) if len(m) >= 4), key=len, reverse=True)
    os.umask(0o077)
    name = f"{req.get('entry')}.{req.get('func')}"
    is_fact = False
    try:
        func = getattr(importlib.import_module(str(req["entry"])), str(req["func"]))
        hints = typing.get_type_hints(func, vars(sys.modules[func.__module__]))
        is_fact = hints.get("return", type(None)) is not type(None)
        request = build(request_type(func), req.get("args") or {})
        with contextlib.ExitStack() as stack:
            result = func(request, Context(req, stack))
        if result is not None:
            emit(dataclasses.asdict(result))
    except Failure as exc:
        return _failed(scrub(str(exc)), is_fact)
    except Exception as exc:  # a bug or an unexpected state: one scrubbed line, no traceback
        return _failed(f"{name}: {type(exc).__name__}: {scrub(str(exc))}", is_fact)
    return 0


def _failed(message: str, is_fact: bool) -> int:
    """A fact reports its failure as ``{"__error__": ...}`` (the operation then fails with one
    line); an action prints one ``error:`` line and exits 1."""
    if is_fact:
        emit({"__error__": message})
        return 0
    print(f"error: {message}", file=sys.stderr, flush=True)
    return 1

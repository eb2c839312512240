"""Remote side of the ``.env`` step: the CA file and the split ``.env``, and putting the old one
back. The merge is :func:`dbsplit.urls.merged_env` (the one module that shapes the ``.env``),
shipped here with this module."""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

from dbsplit.urls import merged_env
from deploy.remote.journal import Journal, now
from deploy.remote.runtime import Context, Failure, atomic_write, home_path, say

PRE_SPLIT = ".pre-split"


@dataclass(frozen=True)
class EnvQuery:
    env_file: str
    ca_path: str


@dataclass(frozen=True)
class EnvState:
    same: bool = False
    mode: str | None = None
    owner_ok: bool = False
    pre_split: bool = False
    pre_split_same: bool = False
    ca_same: bool = False
    exists: bool = False


def _paths(req: EnvQuery) -> tuple[Path, Path]:
    env = home_path(req.env_file)
    return env, env.with_name(env.name + PRE_SPLIT)


def _mode(path: Path) -> str | None:
    try:
        return oct(path.stat().st_mode & 0o777)
    except FileNotFoundError:
        return None


def _desired(req: EnvQuery, ctx: Context) -> tuple[bytes, bytes | None]:
    env, pre = _paths(req)
    current = env.read_bytes() if env.exists() else None
    base = pre.read_bytes() if pre.exists() else (current or b"")
    values = {str(k): str(v) for k, v in ctx.secret("env_values").items()}
    return merged_env(base.decode("utf-8"), values).encode("utf-8"), current


def state(req: EnvQuery, ctx: Context) -> EnvState:
    """Fact: is the app's .env the split one (content, mode 0600, owner), is the old one kept?"""
    env, pre = _paths(req)
    current = env.read_bytes() if env.exists() else None
    same = False
    if ctx.has("env_values"):
        desired, _ = _desired(req, ctx)
        same = current == desired
    ca = home_path(req.ca_path)
    pem = ctx.secret("ca_pem") if ctx.has("ca_pem") else None
    return EnvState(
        same=same,
        mode=_mode(env),
        owner_ok=env.exists() and env.stat().st_uid == os.getuid(),
        pre_split=pre.exists(),
        pre_split_same=pre.exists() and current == pre.read_bytes(),
        ca_same=pem is not None and ca.exists() and ca.read_text(encoding="ascii") == pem,
        exists=current is not None,
    )


def write(req: EnvQuery, ctx: Context) -> None:
    """Write the CA file and the split .env atomically (0600), keeping ``.env.pre-split`` once."""
    with Journal(ctx).step("env") as journal:
        ca = home_path(req.ca_path)
        pem = str(ctx.secret("ca_pem")).encode("ascii")
        ca.parent.mkdir(parents=True, exist_ok=True)
        if not ca.exists() or ca.read_bytes() != pem:
            atomic_write(ca, pem, mode=0o644)
            say(f"wrote CA certificate {ca}")
        env, pre = _paths(req)
        desired, current = _desired(req, ctx)
        if current is not None and not pre.exists():
            atomic_write(pre, current, mode=0o600)
            say(f"kept the previous file as {pre.name}")
        if current != desired or _mode(env) != "0o600":
            atomic_write(env, desired, mode=0o600)
            say(f"wrote {env} (mode 0600, {len(ctx.secret('env_values'))} keys set)")
        journal.update(
            "env",
            env={
                "at": now(),
                "pre_split_sha256": hashlib.sha256(pre.read_bytes()).hexdigest()
                if pre.exists()
                else None,
                "sha256": hashlib.sha256(desired).hexdigest(),
            },
        )


def restore(req: EnvQuery, ctx: Context) -> None:
    """Put ``.env.pre-split`` back as ``.env`` (atomically, 0600)."""
    with Journal(ctx).step("env-restore") as journal:
        env, pre = _paths(req)
        if not pre.exists():
            raise Failure(f"no {pre} to roll back to")
        old = pre.read_bytes()
        if not env.exists() or env.read_bytes() != old:
            atomic_write(env, old, mode=0o600)
            say(f"restored {env.name} from {pre.name}")
        journal.update("env-restore", env_restored={"at": now()})

"""The quick rollback: the old ``.env``, the source writable, the app healthy on it."""

from __future__ import annotations

from pyinfra.api.deploy import deploy

from deploy import ops
from deploy.window import Window


@deploy("Rollback")
def rollback(window: Window, prefix: str = "Rollback") -> None:
    """Stop the apps, put ``.env.pre-split`` back, ``dbsplit unfreeze``, record that the split
    is now stale, restart, and wait for health in single-database mode."""
    ops.app_stopped_for_rollback(name=f"{prefix}: stop the app (pm2 stop)", window=window)
    ops.env_rolled_back(name=f"{prefix}: put .env.pre-split back", window=window)
    ops.source_frozen(name=f"{prefix}: unfreeze the source", window=window, frozen=False)
    ops.rollback_recorded(name=f"{prefix}: record that the split is stale", window=window)
    ops.app_restarted(name=f"{prefix}: pm2 restart --update-env", window=window, mode="single")
    ops.app_healthy(
        name=f"{prefix}: healthy on the old database",
        window=window,
        mode="single",
        timeout=window.settings.rollback_health_timeout,
    )

"""Step 9: the health gate, with the automatic rollback behind it."""

from __future__ import annotations

from pyinfra.api.deploy import deploy

from deploy import ops
from deploy.tasks.rollback import rollback
from deploy.window import Window


@deploy("9. Health gate")
def health_gate(window: Window) -> None:
    """Wait for ``/api/health`` to report both databases; if it does not in time, roll back
    (old ``.env``, ``dbsplit unfreeze``, restart, healthy on the old database) and fail."""
    gate = ops.app_healthy(
        name="9. Health gate: /api/health reports PRIMARY and DATA connected",
        window=window,
        mode="split",
        timeout=window.settings.health_timeout,
        _ignore_errors=True,
    )
    rollback(window=window, prefix="9. Rollback", _if=gate.did_error)
    ops.deploy_failed(
        name="9. Deploy failed: health gate",
        gate=gate,
        message="health gate failed; rolled back: the app runs on the old database again",
        _if=gate.did_error,
    )

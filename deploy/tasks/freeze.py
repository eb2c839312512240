"""Step 3: stop the app and freeze the source."""

from __future__ import annotations

from pyinfra.api.deploy import deploy

from deploy import ops
from deploy.window import Window


@deploy("3. Stop and freeze")
def stop_and_freeze(window: Window) -> None:
    """``pm2 stop`` the apps, then ``dbsplit freeze`` the source."""
    ops.app_stopped_for_split(name="3. Stop the app (pm2 stop)", window=window)
    ops.source_frozen(name="3. Freeze the source (dbsplit freeze)", window=window, frozen=True)

"""Steps 7 and 8: build the app, run its migrations, restart it under pm2."""

from __future__ import annotations

from pyinfra.api.deploy import deploy

from deploy import ops
from deploy.window import Window


@deploy("7-8. App")
def app(window: Window) -> None:
    """pnpm install, generate, PRIMARY and DATA migrations, build; pm2 restart --update-env."""
    ops.app_built(
        name="7. pnpm install, db:generate, db:migrate:primary, db:migrate:data, build",
        window=window,
    )
    ops.app_restarted(
        name="8. pm2 restart backoffice-api backoffice-web --update-env",
        window=window,
        mode="split",
    )

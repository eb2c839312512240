"""Step 5: the data migration, run on the VPS, its report brought back."""

from __future__ import annotations

from pyinfra.api.deploy import deploy
from pyinfra.context import host

from deploy import ops
from deploy.window import Window


@deploy("5. Split")
def split(window: Window) -> None:
    """``dbsplit migrate`` (resumable, a no-op once finished), then fetch its JSON report."""
    ops.split_migrated(name="5. dbsplit migrate on the VPS", window=window)
    local = f"{window.settings.report_dir}/{host.name}/dbsplit-migrate-report.json"
    ops.report_fetched(name="5. Fetch the dbsplit report", window=window, local_path=local)

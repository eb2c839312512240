"""Step 4: the DATA database and its role."""

from __future__ import annotations

from pyinfra.api.deploy import deploy

from deploy import ops
from deploy.window import Window


@deploy("4. DATA database")
def data_database(window: Window) -> None:
    """Create ``handled_data`` and its owner role on the VPS's DATA server when missing."""
    ops.data_database(name="4. Create the DATA database and role if missing", window=window)

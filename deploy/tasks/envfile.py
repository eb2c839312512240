"""Step 6: the CA certificate and the new ``.env``."""

from __future__ import annotations

from pyinfra.api.deploy import deploy

from deploy import ops
from deploy.window import Window


@deploy("6. Environment")
def envfile(window: Window) -> None:
    """Write the CA file and the split ``.env`` (atomic, 0600, ``.env.pre-split`` kept)."""
    ops.env_split(name="6. Write the CA certificate and the split .env", window=window)

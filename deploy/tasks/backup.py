"""Step 2: the backup, on the VPS and in the Spaces bucket."""

from __future__ import annotations

from pyinfra.api.deploy import deploy

from deploy import ops
from deploy.window import Window


@deploy("2. Backup")
def backup(window: Window) -> None:
    """``pg_dump -Fc`` with its SHA-256 and ``pg_restore --list``, then the upload, checked."""
    ops.backup_taken(name="2. Backup: pg_dump -Fc, sha256, pg_restore --list", window=window)
    ops.backup_uploaded(name="2. Backup: upload to Spaces, checksum checked", window=window)

"""Step 1: preflight, changing nothing on the app or the databases."""

from __future__ import annotations

from pyinfra.api.deploy import deploy

from deploy import ops
from deploy.window import Window


@deploy("1. Preflight")
def preflight(window: Window) -> None:
    """SSH, disk, ``pg_dump`` version, PRIMARY (direct and pooled, verify-full), DATA, then
    ``dbsplit`` installed in its virtualenv and ``dbsplit plan`` without blockers.

    The read-only checks come first: when one fails, nothing at all has changed. ``dbsplit
    plan`` needs both targets, so the (empty) DATA database of step 4 is created just before
    it; that and the virtualenv are all a failed plan leaves behind, and the app never notices.
    """
    ops.preflight(name="1. Preflight: disk, pg_dump, PRIMARY (verify-full), DATA", window=window)
    ops.dbsplit_installed(name="1. Preflight: dbsplit installed in a virtualenv", window=window)
    ops.data_database(name="1. Preflight: the DATA database for the plan (step 4)", window=window)
    ops.split_plan_clear(name="1. Preflight: dbsplit plan has no blockers", window=window)

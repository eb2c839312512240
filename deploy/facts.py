"""Facts the runbooks read from the VPS, each answered by one vpsctl action.

A fact's command is only the bootstrap (see :mod:`deploy.remote`); its request, secrets
included, goes on stdin, so reading a fact never exposes a secret. Pass the request as
``_stdin``::

    state = host.get_fact(Vpsctl, action="backup-state", _stdin=window.request(...))
"""

from __future__ import annotations

import json
from typing import Any

from pyinfra.api.command import StringCommand
from pyinfra.api.exceptions import FactProcessError
from pyinfra.api.facts import FactBase

from deploy.remote import vpsctl_command


class Vpsctl(FactBase[dict[str, Any]]):
    """The JSON object a vpsctl fact action prints, e.g.:

    .. code:: python

        {"local": True, "sha256": "9f2c...", "uploaded": True}
    """

    def command(self, action: str, python: str = "python3") -> StringCommand:
        """``python3 -c BOOTSTRAP <action>`` (``python`` may be the dbsplit virtualenv's)."""
        return vpsctl_command(action, python)

    def process(self, output: list[str]) -> dict[str, Any]:
        """Parse the last line, which vpsctl prints as one JSON object."""
        try:
            data = json.loads(output[-1])
        except (ValueError, IndexError):
            raise FactProcessError("vpsctl printed no JSON") from None
        if not isinstance(data, dict):
            raise FactProcessError("vpsctl printed JSON that is not an object")
        return data

    @staticmethod
    def default() -> dict[str, Any]:
        """An empty object: every flag reads as false."""
        return {}


class VenvDigest(FactBase[str]):
    """The digest of the dbsplit package installed in the VPS's virtualenv ("" when none)."""

    def command(self, venv: str) -> str:
        """Read the marker written after a successful install, if the venv still works."""
        return (
            f'if {venv}/bin/python -c "import dbsplit, boto3" 2>/dev/null; '
            f"then cat {venv}/.handled-dbsplit-digest 2>/dev/null; fi; true"
        )

    def process(self, output: list[str]) -> str:
        """The marker's one line."""
        return output[0].strip() if output else ""

    @staticmethod
    def default() -> str:
        """No marker: not installed."""
        return ""

"""Facts the runbooks read from the VPS: a step's remote fact action, and the dbsplit venv.

A remote fact's command is only the bootstrap (see :mod:`deploy.remote`); its request, secrets
included, goes on stdin, so reading a fact never exposes a secret. Use :func:`deploy.steps.fact`
rather than this class directly.
"""

from __future__ import annotations

import json
from typing import Any

from pyinfra.api.command import StringCommand
from pyinfra.api.exceptions import FactProcessError
from pyinfra.api.facts import FactBase

from deploy.remote import command


class RemoteFact(FactBase[dict[str, Any]]):
    """The JSON object a step's remote fact action prints, e.g.:

    .. code:: python

        {"frozen": True, "ok": True, "problems": []}
    """

    def command(self, action: str, python: str = "python3") -> StringCommand:
        """``python3 -c BOOTSTRAP <action>`` (``python`` may be the dbsplit virtualenv's)."""
        return command(action, python)

    def process(self, output: list[str]) -> dict[str, Any]:
        """Parse the last line, which the action prints as one JSON object."""
        try:
            data = json.loads(output[-1])
        except (ValueError, IndexError):
            raise FactProcessError("the remote action printed no JSON") from None
        if not isinstance(data, dict):
            raise FactProcessError("the remote action printed JSON that is not an object")
        return data

    @staticmethod
    def default() -> dict[str, Any]:
        """An empty object (the action failed: its error line was printed)."""
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

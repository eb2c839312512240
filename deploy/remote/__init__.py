"""Run :mod:`deploy.remote.vpsctl` on the VPS with its request (secrets included) on stdin.

The command line is only :data:`BOOTSTRAP`: no secret ever appears in ``ps``, in pyinfra's
output (``-vv`` prints commands, never stdin) or in ``--diff``.
"""

from __future__ import annotations

import json
import shlex
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any

from pyinfra.api.command import StringCommand

BOOTSTRAP = (
    'import json,sys;r=json.loads(sys.stdin.readline());g={"__name__":"vpsctl"};'
    'exec(compile(r.pop("src"),"vpsctl.py","exec"),g);sys.exit(g["main"](r))'
)
"""What ``python3 -c`` runs: read one JSON line, execute the helper's source, call ``main``."""


@cache
def helper_source() -> str:
    """The source of ``vpsctl.py``, sent with every request."""
    return (Path(__file__).with_name("vpsctl.py")).read_text(encoding="utf-8")


class Request:
    """A vpsctl request as pyinfra's ``_stdin``: it never prints its content.

    pyinfra calls ``readlines()`` when it writes stdin; everywhere else (``-v`` fact lines,
    ``--debug-operations``, ``--json``) only ``repr`` shows, which hides everything.
    """

    def __init__(
        self,
        action: str,
        args: dict[str, Any],
        secrets: dict[str, Any],
        mask: list[str],
    ) -> None:
        """Hold the request for ``action``; ``mask`` lists the strings vpsctl must never print."""
        self.action = action
        self._line = json.dumps(
            {
                "src": helper_source(),
                "action": action,
                "args": args,
                "secrets": secrets,
                "mask": mask,
            }
        )

    def readlines(self) -> list[str]:
        """The request as the single line vpsctl reads."""
        return [self._line + "\n"]

    def __iter__(self) -> Iterator[str]:
        """The same line, for code that iterates instead of calling ``readlines()``."""
        return iter(self.readlines())

    def __repr__(self) -> str:
        return f"<vpsctl {self.action} request, secrets hidden>"

    __str__ = __repr__


def vpsctl_command(action: str, python: str = "python3") -> StringCommand:
    """``python3 -c BOOTSTRAP <action>``: the action is in argv only to make ``ps`` readable."""
    return StringCommand(python, "-c", shlex.quote(BOOTSTRAP), action)

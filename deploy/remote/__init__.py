"""Run a step's remote action on the VPS, its modules and request (secrets included) on stdin.

The command line is only :data:`BOOTSTRAP` and the action's name: no secret ever appears in
``ps``, in pyinfra's output (``-vv`` prints commands, never stdin) or in ``--diff``. The
bootstrap reads one JSON line: the source of every module the action needs (the step's
``*_remote.py``, :mod:`deploy.remote.runtime` and the rest of its imports inside this
repository, found by reading their ``import`` statements), installs them as modules, and calls
:func:`deploy.remote.runtime.main`. Nothing is stored on the VPS.
"""

from __future__ import annotations

import ast
import dataclasses
import importlib
import json
import shlex
from collections.abc import Callable, Iterator
from functools import cache
from pathlib import Path
from typing import Any

from pyinfra.api.command import StringCommand

REPO = Path(__file__).resolve().parents[2]
SHIPPED_PACKAGES = ("deploy", "dbsplit")
"""Imports from these packages are shipped with the action; anything else must be stdlib."""

BOOTSTRAP = (
    'exec("import json,sys,types\\nr=json.loads(sys.stdin.readline())\\n'
    "for n,s in r.pop('modules'):\\n p=n.split('.')\\n for i in range(1,len(p)+1):\\n"
    "  q='.'.join(p[:i])\\n  if q not in sys.modules:\\n"
    "   m=types.ModuleType(q);m.__path__=[];sys.modules[q]=m\\n"
    "   if i>1:setattr(sys.modules['.'.join(p[:i-1])],p[i-1],m)\\n"
    " m=sys.modules[n];m.__file__=n+'.py'\\n exec(compile(s,n+'.py','exec'),m.__dict__)\\n"
    "sys.exit(sys.modules['deploy.remote.runtime'].main(r))\\n\")"
)
"""What ``python3 -c`` runs: install the shipped modules, then run the request."""


def _path(module: str) -> Path:
    return REPO.joinpath(*module.split(".")).with_suffix(".py")


def _imports(module: str) -> list[str]:
    """The repository modules ``module`` imports (``from deploy.remote import pg`` counts)."""
    tree = ast.parse(_path(module).read_text(encoding="utf-8"))
    found: list[str] = []
    for node in ast.walk(tree):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module]
            names += [f"{node.module}.{a.name}" for a in node.names]
        for name in names:
            if name.split(".")[0] in SHIPPED_PACKAGES and _path(name).is_file():
                found.append(name)
    return found


@cache
def closure(entry: str) -> tuple[tuple[str, str], ...]:
    """``(module, source)`` for ``entry`` and every repository module it needs, dependencies
    first."""
    order: list[str] = []

    def visit(name: str, seen: frozenset[str]) -> None:
        if name in order or name in seen:
            return
        for dep in _imports(name):
            visit(dep, seen | {name})
        order.append(name)

    visit("deploy.remote.runtime", frozenset())
    visit(entry, frozenset())
    return tuple((name, _path(name).read_text(encoding="utf-8")) for name in order)


class Request:
    """A remote action's request as pyinfra's ``_stdin``: it never prints its content.

    pyinfra calls ``readlines()`` when it writes stdin; everywhere else (``-v`` fact lines,
    ``--debug-operations``, ``--json``) only ``repr`` shows, which hides everything.
    """

    def __init__(
        self,
        func: Callable[..., Any],
        args: Any,
        *,
        secrets: dict[str, Any],
        mask: list[str],
        run: str,
        runbook: str,
        state_dir: str,
        progress_every: float = 10.0,
    ) -> None:
        """Hold the request for ``func`` (a function of a ``*_remote`` module) with ``args``
        (its request dataclass); ``mask`` lists the strings the VPS side must never print."""
        self.entry = func.__module__
        self.func = func.__name__
        self.action = f"{self.entry.rsplit('.', 1)[-1].removesuffix('_remote')}.{self.func}"
        self._line = json.dumps(
            {
                "modules": closure(self.entry),
                "entry": self.entry,
                "func": self.func,
                "args": dataclasses.asdict(args),
                "secrets": secrets,
                "mask": mask,
                "run": run,
                "runbook": runbook,
                "state_dir": state_dir,
                "progress_every": progress_every,
            }
        )

    def readlines(self) -> list[str]:
        """The request as the single line the bootstrap reads."""
        return [self._line + "\n"]

    def __iter__(self) -> Iterator[str]:
        """The same line, for code that iterates instead of calling ``readlines()``."""
        return iter(self.readlines())

    def __repr__(self) -> str:
        return f"<{self.action} request, secrets hidden>"

    __str__ = __repr__


def command(action: str, python: str = "python3") -> StringCommand:
    """``python3 -c BOOTSTRAP <action>``: the action is in argv only to make ``ps`` readable."""
    return StringCommand(python, "-c", shlex.quote(BOOTSTRAP), shlex.quote(action))


def result(kind: type[Any], data: dict[str, Any]) -> Any:
    """A fact's JSON as its result dataclass (fields it does not know are ignored)."""
    names = {f.name for f in dataclasses.fields(kind)}
    return kind(**{k: v for k, v in data.items() if k in names})


def remote_module(name: str) -> Any:
    """Import a ``*_remote`` module locally (for its request and result types)."""
    return importlib.import_module(name)

"""The window's steps, one module pair each: the pyinfra operations (``<step>.py``) and the
remote actions they run on the VPS (``<step>_remote.py``), exchanging a typed request and
result, the way pyinfra pairs an operation with the fact it compares.

This module holds what the operation side shares: reading a remote fact into its result
dataclass (:func:`fact`), running a remote action (:func:`run`), and failing with one line
(:func:`fail`). With ``-y`` pyinfra evaluates each operation when its turn comes, so every fact
sees what the operations before it did; an operation that finds its state already there calls
``host.noop(why)``, which is what makes a re-run print "No changes".
"""

from __future__ import annotations

import functools
import typing
from collections.abc import Callable, Generator
from typing import Any, TypeVar

from pyinfra import logger
from pyinfra.api.command import FunctionCommand, PyinfraCommand, StringCommand
from pyinfra.api.exceptions import DeployError
from pyinfra.context import host

from deploy.facts import RemoteFact
from deploy.progress import Live
from deploy.remote import Request, command, result
from deploy.window import Window

Commands = Generator[PyinfraCommand | str, None, None]
R = TypeVar("R")


def _fail_now(state: Any, host: Any, message: str) -> bool:
    host.log_styled(message, fg="red", log_func=logger.error)
    return False


def fail(message: str) -> FunctionCommand:
    """A command that prints ``message`` as one red line and fails the operation."""
    return FunctionCommand(_fail_now, (message,), {})


def venv_python(window: Window) -> str:
    """The dbsplit virtualenv's Python on the VPS (for actions that need boto3)."""
    return f"{window.settings.venv}/bin/python"


def clean(func: Callable[..., Commands]) -> Callable[..., Commands]:
    """Put under ``@operation()``: a :class:`DeployError` raised while the operation reads its
    facts (a remote fact that failed, a missing secret) becomes one red line, not a traceback."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Commands:
        try:
            yield from func(*args, **kwargs)
        except DeployError as exc:
            yield fail(str(exc))

    return wrapper


def fact(
    window: Window,
    func: Callable[..., R],
    args: Any,
    *,
    python: str = "python3",
    **secrets: Any,
) -> R:
    """Run the remote fact ``func`` with ``args`` and return its result dataclass.

    Raises :class:`DeployError` (one red line with :func:`clean`, the host stops) when the
    action fails: a fact that cannot be read must never read as "nothing to do".
    """
    request = window.request(func, args, **secrets)
    data = host.get_fact(RemoteFact, action=request.action, python=python, _stdin=request)
    if not data:
        raise DeployError(f"{request.action} could not be read on the VPS (see the error above)")
    if "__error__" in data:
        raise DeployError(str(data["__error__"]))
    kind = typing.get_type_hints(func)["return"]
    return result(kind, data)  # type: ignore[no-any-return]


def run(
    window: Window,
    func: Callable[..., Any],
    args: Any,
    *,
    python: str = "python3",
    **secrets: Any,
) -> StringCommand:
    """The command that runs the remote action ``func`` with ``args`` on stdin."""
    request: Request = window.request(func, args, **secrets)
    return StringCommand(*command(request.action, python).bits, _stdin=request)


def live(
    window: Window,
    func: Callable[..., Any],
    args: Any,
    *,
    python: str = "python3",
    **secrets: Any,
) -> StringCommand:
    """:func:`run` for a long step: pyinfra prints its output (progress lines included) as it
    comes, whatever the verbosity (:class:`deploy.progress.Live`)."""
    request: Request = window.request(func, args, **secrets)
    return Live(*command(request.action, python).bits, _stdin=request)

"""Progress an operator can see while a long step runs, and the hook a notifier listens on.

pyinfra prints a command's output only at ``-vvv`` (``state.print_output``), else only when it
fails: a 20-minute ``dbsplit migrate`` shows nothing until "Success". A long step's remote
action runs as a :class:`Live` command instead, whose output pyinfra prints line by line as it
comes, whatever the verbosity. The VPS side prints scrubbed lines only (every known secret and
URL password replaced before a line leaves it), and its progress lines carry one mark::

    [vps] progress backup: 1.2 GiB of 3.4 GiB (35%), 41.0 MiB/s, about 55s left
    [vps] dbsplit: [  12.3s] progress copy: 310 MiB of ~900 MiB (34%), 25.2 MiB/s, about 23s left

(``dbsplit.progress.Throughput`` writes them; how often is the ``progress_seconds`` setting).

A notifier connects with :func:`listen`: it is called with each step's latest progress line at
most once every ``every`` seconds (and always with a step's 100 % line)::

    from deploy.progress import listen
    listen(lambda p: notify(f"{p.host}: {p.step}: {p.text}"), every=300)

Call it at the top of a runbook (it wraps pyinfra's pluggable echo,
``pyinfra.api.output.set_echo``, and keeps printing as before); it returns a function that
removes the listener.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pyinfra import logger
from pyinfra.api import output
from pyinfra.api.command import StringCommand
from pyinfra.connectors.util import CommandOutput

MARK = re.compile(
    r"^\[(?P<host>[^\]]+)\]\s+(?:.*?\s)?progress (?P<step>[\w.-]+): (?P<text>.+?)\s*$"
)
_ANSI = re.compile(r"\x1b\[[0-9;]*m")


class Live(StringCommand):
    """A remote action whose output pyinfra prints line by line as it comes (as ``-vvv``
    would), so a long step shows its progress while it runs. When it fails, its lines are not
    printed a second time (pyinfra prints a failed command's output unless ``-vvv``)."""

    def execute(self, state: Any, host: Any, connector_arguments: Any) -> Any:
        connector_arguments.update(self.connector_arguments)
        ok, lines = host.run_shell_command(
            self, print_output=True, print_input=state.print_input, **connector_arguments
        )
        return ok, (lines if ok or state.print_output else CommandOutput([]))


@dataclass(frozen=True)
class ProgressLine:
    """One progress line as pyinfra printed it: which host, which step, what it said, when."""

    host: str
    step: str
    text: str
    at: float

    @property
    def finished(self) -> bool:
        return "(100%)" in self.text


def parse(line: str, at: float | None = None) -> ProgressLine | None:
    """The progress line in one line of pyinfra's output, or None."""
    match = MARK.match(_ANSI.sub("", str(line)).strip())
    if match is None:
        return None
    when = time.time() if at is None else at
    return ProgressLine(match["host"].strip(), match["step"], match["text"], when)


class Relay:
    """Passes progress lines on to ``listener``: a step's first line, then its latest at most
    once every ``every`` seconds, and its 100 % line."""

    def __init__(self, listener: Callable[[ProgressLine], None], every: float) -> None:
        self.listener = listener
        self.every = every
        self._sent: dict[tuple[str, str], float] = {}
        self._lock = threading.Lock()

    def feed(self, line: str, at: float | None = None) -> bool:
        """Look at one output line; True when it went to the listener."""
        found = parse(line, at)
        if found is None:
            return False
        key = (found.host, found.step)
        with self._lock:
            last = self._sent.get(key)
            if last is not None and found.at - last < self.every and not found.finished:
                return False
            self._sent[key] = found.at
        self.listener(found)
        return True


def listen(listener: Callable[[ProgressLine], None], every: float = 300.0) -> Callable[[], None]:
    """Call ``listener`` with progress lines as pyinfra prints them (see :class:`Relay`);
    returns the function that stops it."""
    previous: Callable[..., None] = vars(output)["_echo"]
    relay = Relay(listener, every)

    def echo(message: Any = None, **kwargs: Any) -> None:
        previous(message, **kwargs)
        if isinstance(message, str):
            try:
                relay.feed(message)
            except Exception as exc:  # a notifier's failure must never stop the window
                logger.warning(f"progress listener failed: {type(exc).__name__}")

    output.set_echo(echo)
    return lambda: output.set_echo(previous)

"""The communication plan, from the operator's run: what the window and the rollback post.

One call in a runbook, ``announce(window)``, and the run posts, in order: the window (or the
rollback) started; each step done, with its time, or failed, with its reason; the rollback
started; at the end, the rollback finished (or failed) or the window stopped. The window's last
operation, :func:`window_announced`, posts its success with the numbers this run measured
(read from the VPS's journal). Where the messages go is the stack's outputs
(``notifySlackWebhook``, ``notifyEmails``, ``notifySmtpUrl``, ``notifyFrom``): the stack config is
the one home of that configuration (``infra/config.py``).

Messages leave through one background worker, in order, each target bounded by a timeout; a
failing or hanging target is logged as a warning and never fails nor holds up the run (at the
end the run waits at most :data:`FLUSH_SECONDS` for what is still queued).
"""

from __future__ import annotations

import atexit
import logging
import queue
import re
import threading
import time
from typing import Any

from pyinfra import logger
from pyinfra.api.command import FunctionCommand
from pyinfra.api.operation import operation
from pyinfra.api.state import BaseStateCallback
from pyinfra.context import host, state

from deploy.progress import ProgressLine, listen
from deploy.remote import notify as remote
from deploy.secrets import outputs
from deploy.steps import Commands, clean, fact
from deploy.window import Window

FLUSH_SECONDS = 5.0
"""What the run waits, at most, at its end for messages still queued."""

RUNBOOK_TITLES = {"window": "window", "rollback": "rollback"}


def config_of(window: Window) -> remote.NotifyConfig:
    """The notifier's configuration from the stack's outputs (empty: nothing is sent)."""
    s = window.settings
    out = outputs(s.outputs_source, s.pulumi_stack, s.pulumi_cwd, s.stack_outputs_file)
    emails = out.get("notifyEmails") or []
    return remote.NotifyConfig(
        slack_webhook=str(out.get("notifySlackWebhook") or ""),
        emails=[str(e) for e in emails] if isinstance(emails, list) else [],
        smtp_url=str(out.get("notifySmtpUrl") or ""),
        sender=str(out.get("notifyFrom") or ""),
        label=window.settings.environment,
    )


class Poster:
    """Sends shaped messages in order from one worker thread; never raises, never blocks."""

    def __init__(self, config: remote.NotifyConfig, masks: list[str]) -> None:
        self.config = config
        self.masks = masks
        self._queue: queue.Queue[str | None] = queue.Queue()
        self._worker = threading.Thread(target=self._work, name="notifier", daemon=True)
        self._worker.start()

    def post(self, text: str) -> None:
        self._queue.put(remote.shape(self.config, text, self.masks))

    def _work(self) -> None:
        while (text := self._queue.get()) is not None:
            for failure in remote.send(self.config, text):
                logger.warning(f"notification not sent ({failure}); the run goes on")

    def close(self, wait: float = FLUSH_SECONDS) -> None:
        """Send what is queued, waiting at most ``wait`` seconds."""
        self._queue.put(None)
        self._worker.join(timeout=wait)
        if self._worker.is_alive():
            logger.warning(f"notifications still unsent after {wait:.0f}s were dropped")


class FirstError(logging.Handler):
    """The first error pyinfra logs during an operation: a step's one red line (``fail()``)
    says why it failed when no remote ``error:`` line does."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.first: str | None = None

    def emit(self, record: logging.LogRecord) -> None:
        if self.first is None:
            text = re.sub(r"\x1b\[[0-9;]*m", "", record.getMessage()).strip()
            self.first = re.sub(r"^\[[^\]]*\]\s*", "", text)


class Announcer(BaseStateCallback):
    """pyinfra's operation callbacks turned into the runbook's messages."""

    def __init__(self, window: Window, poster: Poster, name: str) -> None:
        self.window = window
        self.poster = poster
        self.host = name
        self.title = RUNBOOK_TITLES.get(window.runbook, window.runbook)
        self.began: float | None = None
        self.started: dict[str, float] = {}
        self.errored: dict[str, tuple[Any, float]] = {}
        self.first_error = FirstError()
        self.causes: dict[str, str] = {}
        logger.addHandler(self.first_error)
        self.failed: list[str] = []
        self.rollback: list[tuple[str, str]] = []
        """The rollback's operations that ran, each with its failure ("" when it passed)."""
        self.succeeded = False

    def operation_host_start(self, state: Any, host: Any, op_hash: Any) -> None:  # type: ignore[override]
        if host.name != self.host:
            return
        if self.began is None:
            self.began = time.monotonic()
            self.poster.post(f"{self.title} started on {self.host} (run {self.window.run})")
        self.started[op_hash] = time.monotonic()
        self.first_error.first = None

    def operation_host_error(self, state: Any, host: Any, op_hash: Any, *args: Any) -> None:  # type: ignore[override]
        if host.name != self.host:
            return
        self.errored[op_hash] = (state, time.monotonic())  # no operation_end: see finish()
        self.causes[op_hash] = self.first_error.first or "see the run's output"

    def operation_end(self, state: Any, op_hash: Any) -> None:  # type: ignore[override]
        self.errored.pop(op_hash, None)
        self._report(state, op_hash, time.monotonic())

    def _report(self, state: Any, op_hash: Any, ended: float) -> None:
        begun = self.started.pop(op_hash, None)
        if begun is None:
            return
        target = next((h for h in state.inventory if h.name == self.host), None)
        data = state.ops.get(target, {}).get(op_hash) if target is not None else None
        if data is None or not _if_allows(data.global_arguments.get("_if")):
            return
        names = state.get_op_meta(op_hash).names  # "Rollback | Rollback: ..." inside a deploy
        name = ", ".join(sorted(n.rsplit(" | ", 1)[-1] for n in names))
        meta = data.operation_meta
        if self.succeeded and not meta.did_error():
            return  # the operation that announced the success: its message says it all
        seconds = ended - begun
        if self.window.runbook == "window" and "Rollback" in name and not self.rollback:
            self.poster.post(f"rollback started on {self.host} after: {'; '.join(self.failed)}")
        cause = ""
        if meta.did_error():
            lines = [ln for ln in meta.stderr_lines if ln.strip()]
            logged = self.causes.pop(op_hash, None) or self.first_error.first
            cause = lines[-1].removeprefix("error: ").strip() if lines else logged or "see above"
            self.failed.append(f"{name}: {cause}")
            self.poster.post(f"FAILED: {name} after {seconds:.1f}s: {cause}")
        if "Rollback" in name:
            self.rollback.append((name, f"{name}: {cause}" if cause else ""))
        if not cause:
            what = "" if meta.did_change() else " (nothing to do)"
            self.poster.post(f"done: {name} in {seconds:.1f}s{what}")

    def finish(self) -> None:
        """The last messages (at the run's exit), then the flush."""
        for op_hash, (pyinfra_state, ended) in list(self.errored.items()):
            self._report(pyinfra_state, op_hash, ended)
        if self.began is not None:
            total = time.monotonic() - self.began
            if self.rollback:
                failed = [cause for name, cause in self.rollback if cause]
                verdict = f"FAILED: {failed[0]}" if failed else "finished"
                self.poster.post(f"rollback {verdict} on {self.host} ({total:.0f}s into the run)")
            if self.window.runbook != "rollback" and self.failed and not self.succeeded:
                self.poster.post(
                    f"{self.title} stopped on {self.host} after {total:.0f}s: {self.failed[0]}"
                )
        self.poster.close()


def _if_allows(condition: Any) -> bool:
    """Whether an operation's ``_if`` let it run (skipped operations are not announced)."""
    if isinstance(condition, list):
        return all(c() for c in condition)
    return bool(condition()) if callable(condition) else True


_ANNOUNCERS: dict[str, Announcer] = {}


def announce(window: Window) -> None:
    """Post this run's progress for ``host`` (once per host; nothing when unconfigured)."""
    config = config_of(window)
    if not config.enabled or host.name in _ANNOUNCERS:
        return
    announcer = Announcer(window, Poster(config, window.secrets.masks()), host.name)
    _ANNOUNCERS[host.name] = announcer
    state.add_callback_handler(announcer)  # type: ignore[no-untyped-call]
    atexit.register(announcer.finish)
    name = host.name

    def relay(line: ProgressLine) -> None:  # the long steps' progress, at most every few minutes
        if line.host == name:
            announcer.poster.post(f"progress {line.step}: {line.text}")

    listen(relay, every=float(window.settings.notify_progress_seconds))


def _numbers(window: Window) -> str:
    found = fact(window, remote.numbers, remote.NumbersQuery())
    return found.summary()


def _post_numbers(state: Any, host: Any, window: Window) -> bool:
    _announced(host.name, _numbers(window))
    return True


def _announced(name: str, text: str) -> None:
    announcer = _ANNOUNCERS.get(name)
    if announcer is not None:
        announcer.succeeded = True
        announcer.poster.post(text)


@operation()
@clean
def window_announced(window: Window) -> Commands:
    """
    Post the window's success with the numbers this run measured (the write freeze, the rows
    copied, the backup, the verify), read from the VPS's journal.

    + window: the host's settings and stack outputs

    Updates: nothing (a message is not a change to the VPS).
    """
    if not config_of(window).enabled:
        host.noop("no notifier configured in the stack's outputs")
        return
    if not state.is_executing:  # a diff run: post when the operation runs
        yield FunctionCommand(_post_numbers, (window,), {})
        return
    text = _numbers(window)
    _announced(host.name, text)
    host.noop(f"announced: {text}")

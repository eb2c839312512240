"""The notifier (the checklist's communication plan): a Slack incoming webhook and/or e-mail.

Standard library only (Python 3.10+), so one module serves both sides: the operator's pyinfra
run (:mod:`deploy.notify`) and the watch ticking on the VPS (:mod:`deploy.steps.watch_remote`).
``apprise`` would cover more services, but the VPS side ships stdlib-only modules on stdin and
the plan needs exactly these two: a JSON ``{"text": ...}`` POST and ``smtplib``.

Every message goes through :func:`shape` first: secrets, URL credentials (``user:pass@``) and
the notifier's own webhook and SMTP URLs (both are credentials) become ``***``. Sending never
raises and is bounded by ``timeout`` per target: :func:`send` returns the failures as lines for
the caller to log, and a window goes on whatever the notifier does.
"""

from __future__ import annotations

import calendar
import json
import re
import smtplib
import socket
import ssl
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterable
from dataclasses import dataclass, field
from email.message import EmailMessage
from typing import Any

from deploy.remote.journal import JOURNAL, Journal
from deploy.remote.runtime import Context, scrub

TIMEOUT = 5.0
"""Seconds one target may take to accept a message."""

MAX_CHARS = 3000
"""Longer messages are cut (Slack shows up to 40,000, but a message is for reading)."""

_CREDENTIALS = re.compile(
    r"(?P<head>\b[a-z][a-z0-9+.-]*://)(?P<user>[^:/?#@\s]*)(?P<password>:[^/?#@\s]*)?@", re.I
)


def _hidden(match: re.Match[str]) -> str:
    """``user:***@`` (a user name is no secret), or ``***@`` when the user part is a token."""
    if match["password"] is not None:
        return f"{match['head']}{match['user']}:***@"
    return f"{match['head']}***@"


@dataclass(frozen=True)
class NotifyConfig:
    """Where messages go: from the stack's outputs, nothing of it ever printed."""

    slack_webhook: str = field(default="", repr=False)
    emails: list[str] = field(default_factory=list)
    smtp_url: str = field(default="", repr=False)
    sender: str = ""
    label: str = ""
    """Names the environment in every message (``[production]``)."""

    @property
    def enabled(self) -> bool:
        return bool(self.slack_webhook or (self.emails and self.smtp_url))

    def masks(self) -> list[str]:
        """The notifier's own secrets: the webhook and SMTP URLs and the SMTP password."""
        found = [self.slack_webhook, self.smtp_url]
        if self.smtp_url:
            password = urllib.parse.urlsplit(self.smtp_url).password
            found += [password or "", urllib.parse.unquote(password or "")]
        return [m for m in found if len(m) >= 4]


def shape(config: NotifyConfig, text: str, masks: Iterable[str] = ()) -> str:
    """``text`` as it may be sent: labelled, cut to :data:`MAX_CHARS`, every secret in
    ``masks``, the notifier's own URLs and any URL credentials replaced by ``***``."""
    for secret in sorted({*masks, *config.masks()}, key=len, reverse=True):
        if len(secret) >= 4:
            text = text.replace(secret, "***")
    text = _CREDENTIALS.sub(_hidden, scrub(text))
    if config.label:
        text = f"[{config.label}] {text}"
    return text if len(text) <= MAX_CHARS else text[: MAX_CHARS - 1] + "…"


def send(config: NotifyConfig, text: str, timeout: float = TIMEOUT) -> list[str]:
    """Send ``text`` (already shaped) to every configured target; the failures, one line
    each (never raises, never waits more than ``timeout`` per target)."""
    failures: list[str] = []
    if config.slack_webhook:
        problem = _post_slack(config.slack_webhook, text, timeout)
        if problem:
            failures.append(f"slack webhook: {problem}")
    if config.emails and config.smtp_url:
        problem = _mail(config, text, timeout)
        if problem:
            failures.append(f"e-mail: {problem}")
    return [shape(NotifyConfig(config.slack_webhook, [], config.smtp_url), f) for f in failures]


def _post_slack(url: str, text: str, timeout: float) -> str | None:
    if urllib.parse.urlsplit(url).scheme not in ("https", "http"):
        return "the webhook must be an https:// URL"
    body = json.dumps({"text": text}).encode()
    request = urllib.request.Request(  # noqa: S310 (scheme checked above)
        url, data=body, method="POST", headers={"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310
            response.read(1024)
    except urllib.error.HTTPError as exc:
        return f"HTTP {exc.code}"
    except (urllib.error.URLError, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        return f"{type(reason).__name__}: {reason}"
    return None


def _mail(config: NotifyConfig, text: str, timeout: float) -> str | None:
    """``smtp://user:password@host:587`` (STARTTLS) or ``smtps://...:465`` (TLS)."""
    url = urllib.parse.urlsplit(config.smtp_url)
    if url.scheme not in ("smtp", "smtps") or not url.hostname:
        return "the SMTP URL must be smtp://[user:password@]host[:port] or smtps://..."
    message = EmailMessage()
    message["Subject"] = text.splitlines()[0][:120]
    message["From"] = config.sender or f"handled-deploy@{socket.getfqdn()}"
    message["To"] = ", ".join(config.emails)
    message.set_content(text)
    try:
        if url.scheme == "smtps":
            client: smtplib.SMTP = smtplib.SMTP_SSL(
                url.hostname, url.port or 465, timeout=timeout, context=ssl.create_default_context()
            )
        else:
            client = smtplib.SMTP(url.hostname, url.port or 587, timeout=timeout)
        with client:
            client.ehlo()
            if url.scheme == "smtp" and client.has_extn("starttls"):
                client.starttls(context=ssl.create_default_context())
            elif url.scheme == "smtp" and url.username:
                return "the server offers no STARTTLS: the password is never sent in clear"
            if url.username:
                client.login(
                    urllib.parse.unquote(url.username), urllib.parse.unquote(url.password or "")
                )
            client.send_message(message)
    except (smtplib.SMTPException, OSError) as exc:
        return f"{type(exc).__name__}: {exc}"
    return None


# ----- the window's numbers (a fact read on the VPS) ---------------------------------------


@dataclass(frozen=True)
class NumbersQuery:
    """Nothing to ask: the numbers are the current window's journal facts."""


@dataclass(frozen=True)
class WindowNumbers:
    window: str = ""
    writes_stopped_at: str = ""
    frozen_at: str = ""
    healthy_at: str = ""
    restarted_at: str = ""
    write_freeze_seconds: float | None = None
    tables: int | None = None
    rows: int | None = None
    copy_seconds: float | None = None
    backup_bytes: int | None = None
    verify_ok: bool | None = None
    verified_tables: int | None = None
    step_seconds: dict[str, float] = field(default_factory=dict)

    def summary(self) -> str:
        """The success message: what this window measured, each number named."""
        parts = [f"window {self.window} succeeded: the app serves from the split"]
        if self.write_freeze_seconds is not None:
            back = (
                f"healthy on the split {self.healthy_at}"
                if self.healthy_at
                else f"restarted on the split {self.restarted_at}, healthy at the gate's first look"
            )
            parts.append(
                f"write freeze {self.write_freeze_seconds:.0f}s (app stopped"
                f" {self.writes_stopped_at}, {back})"
            )
        if self.rows is not None:
            copy = f" in {self.copy_seconds:.1f}s" if self.copy_seconds is not None else ""
            parts.append(f"{self.rows} rows in {self.tables} tables copied{copy}")
        if self.verify_ok is not None:
            parts.append(
                f"verify {'passed' if self.verify_ok else 'FAILED'} on"
                f" {self.verified_tables} tables"
            )
        if self.backup_bytes is not None:
            parts.append(f"backup {self.backup_bytes} bytes, uploaded and checksummed")
        if self.step_seconds:
            parts.append(
                "steps: " + ", ".join(f"{k} {v:.1f}s" for k, v in self.step_seconds.items())
            )
        return "; ".join(parts)


def _epoch(stamp: Any) -> float | None:
    try:
        return calendar.timegm(time.strptime(str(stamp), "%Y-%m-%dT%H:%M:%SZ"))
    except ValueError:
        return None


def numbers(req: NumbersQuery, ctx: Context) -> WindowNumbers:
    """Fact: the current window's numbers, from its journal (what the steps measured)."""
    journal = Journal(ctx)
    state = journal.state()
    window = str(state.get("window") or "")
    stopped = (state.get("app_stopped") or {}).get("at", "")
    healthy = state.get("healthy") or {}
    healthy_at = healthy.get("at", "") if healthy.get("mode") == "split" else ""
    back_at = healthy_at or str(state.get("restarted_at") or "")  # healthy at the first look
    begin, end = _epoch(stopped), _epoch(back_at)
    split = state.get("split") or {}
    verify = state.get("verify") or {}
    backup = state.get("backup") or {}
    steps: dict[str, float] = {}
    path = ctx.state_dir / JOURNAL
    for line in path.read_text(encoding="utf-8").splitlines() if path.exists() else []:
        event = json.loads(line) if line.strip() else {}
        if window and event.get("window") == window and event.get("event") == "done":
            steps[str(event.get("step"))] = float(event.get("seconds") or 0)
    return WindowNumbers(
        window=window,
        writes_stopped_at=stopped,
        frozen_at=(state.get("frozen") or {}).get("at", ""),
        healthy_at=healthy_at,
        restarted_at=str(state.get("restarted_at") or ""),
        write_freeze_seconds=end - begin if begin is not None and end is not None else None,
        tables=split.get("tables"),
        rows=split.get("rows"),
        copy_seconds=split.get("seconds"),
        backup_bytes=backup.get("size"),
        verify_ok=verify.get("ok"),
        verified_tables=len(verify.get("tables") or {}) if verify else None,
        step_seconds=steps,
    )

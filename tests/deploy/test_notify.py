"""The notifier's pure parts and its two transports against real local servers: what a message
may contain (shaping, scrubbing), a Slack webhook POST, an SMTP conversation, a dead or hanging
target (bounded, reported, never raised), and the watch's schedule.

The notifier inside real runs (the window, the rollback, the watch on the VPS) is tested in
tests/deploy/test_window.py.
"""

from __future__ import annotations

import socketserver
import threading
import time
from collections.abc import Iterator
from email import message_from_bytes
from pathlib import Path
from typing import ClassVar

import pytest

from deploy.remote import notify
from deploy.remote.notify import NotifyConfig, send, shape
from deploy.steps import watch_remote
from deploy.steps.watch import WatchSettings
from tests.deploy.helpers import SlackReceiver

WEBHOOK = "https://hooks.slack.com/services/T0000/B0000/XyZsecretWebhookToken"
SMTP = "smtps://mailer:smtp%2Fpass%40word@smtp.example.com:465"

SHAPED: list[tuple[str, str, list[str], str]] = [
    (
        "a PostgreSQL URL's password",
        "psql postgresql://handled_app:s3cr3t-pw@db:25060/handled failed",
        [],
        "psql postgresql://handled_app:***@db:25060/handled failed",
    ),
    (
        "any URL's credentials",
        "GET https://deploy:tok3n@ops.example.com/x, s3://AKIA:sk@bucket, https://ghp_x@gh.io",
        [],
        "GET https://deploy:***@ops.example.com/x, s3://AKIA:***@bucket, https://***@gh.io",
    ),
    ("the webhook itself", f"posting to {WEBHOOK} failed", [], "posting to *** failed"),
    ("the SMTP URL", f"mail via {SMTP}", [], "mail via ***"),
    ("the SMTP password, decoded", "login smtp/pass@word refused", [], "login *** refused"),
    ("a known secret", "AUTH_SECRET is abcdef123456", ["abcdef123456"], "AUTH_SECRET is ***"),
    ("plain text kept", "done: 5. migrate in 12.3s", [], "done: 5. migrate in 12.3s"),
]


@pytest.mark.parametrize(
    ("text", "masks", "expected"), [c[1:] for c in SHAPED], ids=[c[0] for c in SHAPED]
)
def test_shape_scrubs_every_secret(text: str, masks: list[str], expected: str) -> None:
    config = NotifyConfig(slack_webhook=WEBHOOK, smtp_url=SMTP, emails=["ops@example.com"])
    assert shape(config, text, masks) == expected


def test_shape_labels_and_cuts() -> None:
    config = NotifyConfig(slack_webhook=WEBHOOK, label="production")
    assert shape(config, "window started") == "[production] window started"
    long = shape(config, "x" * 10_000)
    assert len(long) == notify.MAX_CHARS
    assert long.endswith("…")
    assert WEBHOOK not in repr(config)
    assert "pass" not in repr(NotifyConfig(smtp_url=SMTP))


@pytest.fixture
def slack() -> Iterator[SlackReceiver]:
    receiver = SlackReceiver()
    yield receiver
    receiver.stop()


def test_slack_receives_the_text_and_a_failing_target_is_reported(slack: SlackReceiver) -> None:
    config = NotifyConfig(slack_webhook=slack.url)
    assert send(config, "[staging] window started") == []
    assert slack.take() == ["[staging] window started"]

    wrong = NotifyConfig(slack_webhook=slack.url.replace(slack.token, "revoked"))
    assert send(wrong, "x") == ["slack webhook: HTTP 404"]
    dead = NotifyConfig(slack_webhook="http://127.0.0.1:9/services/T/B/token")
    (failure,) = send(dead, "x")
    assert failure.startswith("slack webhook: ConnectionRefusedError")
    assert "token" not in failure


def test_a_hanging_target_is_given_up_after_the_timeout(slack: SlackReceiver) -> None:
    slack.mode = "hang"
    started = time.monotonic()
    (failure,) = send(NotifyConfig(slack_webhook=slack.url), "x", timeout=0.5)
    assert time.monotonic() - started < 3
    assert "timed out" in failure
    assert slack.token not in failure


class _Smtp(socketserver.StreamRequestHandler):
    """Just enough SMTP (RFC 5321, no STARTTLS, no AUTH) to receive one message."""

    received: ClassVar[list[bytes]] = []

    def reply(self, line: str) -> None:
        self.wfile.write(line.encode() + b"\r\n")

    def handle(self) -> None:
        self.reply("220 stand-in ESMTP")
        while line := self.rfile.readline():
            verb = line[:4].upper()
            if verb == b"EHLO":
                self.reply("250 stand-in")
            elif verb == b"DATA":
                self.reply("354 go on")
                data = b""
                while (chunk := self.rfile.readline()) != b".\r\n":
                    data += chunk
                self.received.append(data)
                self.reply("250 queued")
            elif verb == b"QUIT":
                self.reply("221 bye")
                return
            else:
                self.reply("250 ok")


def test_mail_goes_through_a_real_smtp_conversation() -> None:
    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), _Smtp)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    port = server.server_address[1]
    try:
        config = NotifyConfig(
            emails=["ops@example.com"],
            smtp_url=f"smtp://127.0.0.1:{port}",
            sender="deploy@example.com",
        )
        assert send(config, "[production] rollback finished\nthe app runs on handled") == []
        mail = message_from_bytes(_Smtp.received[-1])
        assert mail["Subject"] == "[production] rollback finished"
        assert (mail["From"], mail["To"]) == ("deploy@example.com", "ops@example.com")
        assert "the app runs on handled" in mail.get_payload()

        with_password = NotifyConfig(
            emails=["ops@example.com"], smtp_url=f"smtp://mailer:pw1234@127.0.0.1:{port}"
        )
        assert send(with_password, "x") == [
            "e-mail: the server offers no STARTTLS: the password is never sent in clear"
        ]
    finally:
        server.shutdown()
        server.server_close()


def test_the_watch_runs_the_checklists_schedule() -> None:
    offsets = WatchSettings.of(
        {"watch_schedule": [[3600, 900], [86400, 3600], [172800, 14400]]}
    ).offsets()
    hour = 3600
    assert offsets[:6] == [0, 900, 1800, 2700, hour, 2 * hour]
    assert offsets[offsets.index(24 * hour) + 1] == 28 * hour
    assert offsets[-1] == 48 * hour
    assert len(offsets) == 1 + 4 + 23 + 6


def test_the_watch_counts_only_postgresql_errors_written_since_it_started(tmp_path: Path) -> None:
    log = tmp_path / "postgresql.log"
    log.write_text("old ERROR:  from before the watch\n")
    positions = {"data": watch_remote._size(str(tmp_path / "unreadable.log"))}
    assert positions == {"data": -1}, "unknown at the install"
    assert watch_remote._log_errors(str(log), positions, "data")[0] == [], "starts at its end"
    with log.open("a") as handle:
        handle.write("LOG:  checkpoint\nERROR:  division by zero\nFATAL:  role x\n")
    errors, note = watch_remote._log_errors(str(log), positions, "data")
    assert errors == ["ERROR:  division by zero", "FATAL:  role x"]
    assert note == "3 new line(s) scanned, 2 ERROR/FATAL"
    log.write_text("PANIC:  rotated\n")  # a new, shorter file: read from its start
    assert watch_remote._log_errors(str(log), positions, "data")[0] == ["PANIC:  rotated"]
    assert watch_remote._log_errors(str(tmp_path / "gone.log"), positions, "gone")[1] == (
        "not readable (No such file or directory)"
    )

"""The heartbeat: a server that stops answering fails the step in seconds, not hours.

TCP keepalives and ``tcp_user_timeout`` (:mod:`dbsplit.connect`) end a connection whose peer
acknowledges nothing: a dead network. They cannot end one whose peer's kernel still acknowledges
every packet while the server itself does nothing (a stopped or hung process, a paused VM): a
statement waiting for its result then waits forever. So while :func:`watching` is on (the CLI
turns it on for every command), each server this process has connections to gets one more
session of its own, read-only, which runs ``SELECT 1`` every few seconds. A server that has not
answered for ``silence`` seconds is **lost**: every connection of this process to it is shut
down (a statement waiting on it fails at once), every child process working against it
(``pg_dump``) is killed, and no new connection to it is opened: :func:`check` raises
:class:`~dbsplit.errors.LostError` (exit 5). The CLI reports the loss as the cause of whatever
failed after it. A connection that broke by itself (keepalives, ``tcp_user_timeout``, a
terminated backend) makes its server lost too, and so does a new connection that fails, without
an answer from the server, to a server this process was working with.

A statement that legitimately runs for minutes (a COPY, an index build, a validation) is never
cut short: the heartbeat asks whether the server answers, not how long a statement takes. The
freeze check does not count the heartbeat's own session (:func:`heartbeat_pids`).

What was happening is named from :func:`doing` labels: those of the threads whose connections
to the lost server were open, else the main thread's.
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import threading
import time
import weakref
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import psycopg

from dbsplit.errors import LostError, SplitError
from dbsplit.urls import redact

#: How often the judge looks at every server's last answer.
_TICK = 0.5


@dataclass(frozen=True)
class Server:
    """A server as :mod:`dbsplit.connect` describes it to the watchdog."""

    #: The redacted URL: the server's identity, and how messages show it.
    key: str
    #: "source", "PRIMARY", "DATA".
    what: str
    #: The heartbeat session's connection string (holds the password: never shown).
    heartbeat_conninfo: str = field(repr=False)
    every: float
    silence: float
    #: Why a connection broke, from libpq's message.
    explain: Callable[[str], str]


@dataclass
class Lost:
    """A server this process lost, and why."""

    server: Server
    reason: str
    during: tuple[str, ...]

    def error(self, during: tuple[str, ...] | None = None) -> LostError:
        """The error naming the server, the reason and what was happening (``during``, else
        the labels found when it was lost)."""
        return lost_error(self.server.what, self.server.key, self.reason, during or self.during)


def lost_error(what: str, key: str, reason: str, during: tuple[str, ...]) -> LostError:
    """``lost PRIMARY postgresql://...: <reason> during <what>; re-run to resume``."""
    shown = ", ".join(during[:3]) + (f" and {len(during) - 3} more" if len(during) > 3 else "")
    where = f" during {shown}" if shown else ""
    return LostError(f"lost {what} {key}: {reason}{where}; re-run to resume", key)


@dataclass
class _Watched:
    server: Server
    conns: weakref.WeakKeyDictionary[psycopg.Connection[Any], tuple[int, Any]] = field(
        default_factory=weakref.WeakKeyDictionary
    )
    children: set[subprocess.Popen[bytes]] = field(default_factory=set)
    heartbeat: psycopg.Connection[Any] | None = None
    pid: int | None = None
    last_answer: float = field(default_factory=time.monotonic)
    thread: threading.Thread | None = None

    def live(self) -> list[psycopg.Connection[Any]]:
        return [c for c in list(self.conns) if not c.closed]


class _State:
    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.on = False
        self.stop = threading.Event()
        self.servers: dict[str, _Watched] = {}
        self.lost: dict[str, Lost] = {}
        self.labels: dict[int, list[str]] = {}


_state = _State()


# ----- what the rest of dbsplit calls ---------------------------------------------------------


@contextlib.contextmanager
def watching() -> Iterator[None]:
    """Watch every server this process connects to until the block ends (the CLI's commands).

    Outside such a block (a library caller, a copy worker process) nothing is watched:
    keepalives and ``tcp_user_timeout`` still bound a dead network, and the caller names a
    broken connection itself.
    """
    with _state.lock:
        _state.on = True
        _state.stop = threading.Event()  # the threads of an earlier block keep their own
        _state.servers.clear()
        _state.lost.clear()
        threading.Thread(
            target=_judge, args=(_state.stop,), name="dbsplit-watchdog", daemon=True
        ).start()
    try:
        yield
    finally:
        with _state.lock:
            _state.on = False
            _state.stop.set()
            watched = list(_state.servers.values())
        for w in watched:
            _close_heartbeat(w)


def register(conn: psycopg.Connection[Any], server: Server) -> None:
    """Remember ``conn`` (open on ``server``), owned by the calling thread, and watch the
    server. Raises :class:`LostError` (closing ``conn``) when the server is already lost."""
    if not _state.on:
        return
    peer = _peer(conn)
    with _state.lock:
        w = _state.servers.setdefault(server.key, _Watched(server))
        w.conns[conn] = (threading.get_ident(), peer)
        lost = _state.lost.get(server.key)
        start = lost is None and w.thread is None
        if start:
            w.thread = threading.Thread(
                target=_beat,
                args=(w, _state.stop),
                name=f"dbsplit-heartbeat-{server.what}",
                daemon=True,
            )
            w.last_answer = time.monotonic()
    if lost is not None:
        conn.close()
        raise lost.error()
    if start and w.thread is not None:
        _open_heartbeat(w)  # now, so that its pid is known before the caller's first query
        w.thread.start()


def check(key: str) -> None:
    """Raise :class:`LostError` when the server ``key`` (a redacted URL) is lost, or one of
    this process's connections to it broke."""
    found = _find_lost(key)
    if found is not None:
        raise found.error()


def unreachable(server: Server, message: str) -> None:
    """A new connection to ``server`` failed with ``message``: raise :class:`LostError` when
    this process was working with it and the server itself did not answer (no ``FATAL``)."""
    w = _state.servers.get(server.key)
    if not _state.on or w is None or "FATAL" in message:
        return
    raise _declare(w, f"cannot connect again ({message})").error()


def lost() -> Lost | None:
    """The first server this process lost, if any."""
    for key in list(_state.servers):
        found = _find_lost(key)
        if found is not None:
            return found
    return None


def cause(exc: SplitError) -> SplitError:
    """The error to report for ``exc``: the loss of a server, when one was lost."""
    if isinstance(exc, LostError):
        return exc
    found = lost()
    return found.error() if found is not None else exc


def sever(key: str, reason: str) -> None:
    """Another process lost the server ``key``: treat it as lost here too."""
    w = _state.servers.get(key)
    if _state.on and w is not None:
        _declare(w, reason)


@contextlib.contextmanager
def child(proc: subprocess.Popen[bytes], key: str) -> Iterator[None]:
    """Kill ``proc`` (a ``pg_dump`` working against the server ``key``) if the server is lost;
    raise :class:`LostError` then, once the block is done."""
    with _state.lock:
        w = _state.servers.get(key)
        if w is not None:
            w.children.add(proc)
    try:
        yield
    finally:
        if w is not None:
            with _state.lock:
                w.children.discard(proc)
    check(key)


@contextlib.contextmanager
def doing(label: str) -> Iterator[None]:
    """Name what the calling thread is doing, for the message of a loss."""
    ident = threading.get_ident()
    with _state.lock:
        _state.labels.setdefault(ident, []).append(label)
    try:
        yield
    finally:
        with _state.lock:
            stack = _state.labels.get(ident, [])
            if stack:
                stack.pop()
            if not stack:
                _state.labels.pop(ident, None)


def heartbeat_pids(conn: psycopg.Connection[Any]) -> tuple[int, ...]:
    """Backend pids of this process's heartbeat sessions on ``conn``'s server."""
    with _state.lock:
        for w in _state.servers.values():
            if conn in w.conns and w.pid is not None:
                return (w.pid,)
    return ()


# ----- the heartbeat ----------------------------------------------------------------------------


def _open_heartbeat(w: _Watched) -> None:
    try:
        conn = psycopg.connect(w.server.heartbeat_conninfo, autocommit=True)
    except psycopg.Error as exc:
        if "FATAL" in str(exc):  # the server answered (too many clients...): it is alive
            w.last_answer = time.monotonic()
        return
    with _state.lock:
        w.heartbeat, w.pid = conn, conn.info.backend_pid
    w.last_answer = time.monotonic()


def _close_heartbeat(w: _Watched) -> None:
    with _state.lock:
        conn, w.heartbeat, w.pid = w.heartbeat, None, None
    if conn is not None:
        with contextlib.suppress(Exception):
            conn.close()


def _beat(w: _Watched, stop: threading.Event) -> None:
    """Ping ``w``'s server while this process has connections to it."""
    while True:
        with _state.lock:
            if stop.is_set() or w.server.key in _state.lost or not w.live():
                w.thread = None
                conn, w.heartbeat, w.pid = w.heartbeat, None, None
                break
            heartbeat = w.heartbeat
        if heartbeat is None or heartbeat.closed:
            _open_heartbeat(w)
        else:
            try:
                heartbeat.execute("SELECT 1")
                w.last_answer = time.monotonic()
            except psycopg.Error:
                _close_heartbeat(w)
        stop.wait(w.server.every)
    if conn is not None:
        with contextlib.suppress(Exception):
            conn.close()


def _judge(stop: threading.Event) -> None:
    """Declare lost every watched server that has not answered for its ``silence``."""
    while not stop.wait(_TICK):
        now = time.monotonic()
        for w in list(_state.servers.values()):
            if w.thread is None or w.server.key in _state.lost:
                continue
            if now - w.last_answer >= w.server.silence:
                _declare(w, f"no answer for {w.server.silence:.0f} s")


def _find_lost(key: str) -> Lost | None:
    if not _state.on:
        return None
    found = _state.lost.get(key)
    if found is not None:
        return found
    w = _state.servers.get(key)
    if w is None:
        return None
    for conn in list(w.conns):
        if conn.broken:
            message = redact(conn.pgconn.error_message.decode("utf-8", "replace"))
            return _declare(w, w.server.explain(message or "the connection broke"))
    return None


def _declare(w: _Watched, reason: str) -> Lost:
    """Record ``w``'s server as lost, shut its connections down and kill its children."""
    with _state.lock:
        found = _state.lost.get(w.server.key)
        if found is not None:
            return found
        found = Lost(w.server, reason, _labels(w))
        _state.lost[w.server.key] = found
        conns = list(w.conns.items())
        children = list(w.children)
        heartbeat = w.heartbeat
    for conn, (_, peer) in conns:
        _shutdown(conn, peer)
    if heartbeat is not None:
        _shutdown(heartbeat, None)
    for proc in children:
        if proc.poll() is None:
            proc.kill()
    return found


def _labels(w: _Watched) -> tuple[str, ...]:
    """What the threads owning ``w``'s open connections were doing, else the main thread."""
    owners = [owner for conn, (owner, _) in list(w.conns.items()) if not conn.closed]
    found: list[str] = []
    for owner in owners:
        stack = _state.labels.get(owner)
        if stack and stack[-1] not in found:
            found.append(stack[-1])
    if not found:
        main = _state.labels.get(threading.main_thread().ident or 0)
        if main:
            found.append(main[-1])
    return tuple(found)


def _peer(conn: psycopg.Connection[Any]) -> Any:
    try:
        with socket.socket(fileno=os.dup(conn.pgconn.socket)) as sock:
            return sock.getpeername()
    except (OSError, psycopg.Error):
        return None


def _shutdown(conn: psycopg.Connection[Any], peer: Any) -> None:
    """Shut ``conn``'s socket down (the thread waiting on it wakes up with an error), checking
    first that the descriptor still is that connection's."""
    if conn.closed:
        return
    try:
        with socket.socket(fileno=os.dup(conn.pgconn.socket)) as sock:
            if peer is None or sock.getpeername() == peer:
                sock.shutdown(socket.SHUT_RDWR)
    except (OSError, psycopg.Error):
        pass

"""A server that stops answering mid-step fails the step within the bound; the re-run completes.

Every fault is real, on the DBaaS stand-in (PRIMARY), through ``python -m dbsplit``:

- during COPY, streaming: the PRIMARY backend receiving ``COPY customer.big`` is stopped
  (SIGSTOP). Its kernel stops taking the stream (a zero window): ``tcp_user_timeout`` ends the
  connection, in the worker process;
- during COPY, waiting: the whole PRIMARY server (postmaster and every process it started) is
  stopped while a worker waits on it. Its kernel still acknowledges everything, so keepalives
  see nothing: the heartbeat (:mod:`dbsplit.watchdog`) of the main process tells;
- during verify: the whole PRIMARY server is stopped while verify waits on it (heartbeat).

Each time: exit 5 within the bound with one line naming PRIMARY and what was happening, no
traceback, no dbsplit process left; after SIGCONT the same command completes and the targets
equal the source.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg import sql

from dbsplit.connect import HEARTBEAT_SECONDS, NO_ANSWER_SECONDS, SILENT_PEER_SECONDS
from dbsplit.freeze import freeze
from dbsplit.urls import parse
from standins.dbaas import Dbaas
from standins.postgres import PostgresServer
from tests.dbsplit.helpers import DATA_OWNER, SplitEnv, assert_targets_equal_source

MIGRATE = ("migrate", "--jobs", "2")
#: The failure must come within a minute (issue 9); the settings aim at about 20 s.
BOUND_SECONDS = 60.0
#: 2,500 rows of 4 kB (10 MB) on PRIMARY, each slowed by 1 ms while `bounded.throttle` is on
#: (dbsplit's sessions, through PGOPTIONS): the COPY lasts about 3 s, more than the socket
#: buffers hold, so it is still streaming when its backend is stopped.
SOURCE_SQL = """
CREATE SCHEMA config;
CREATE SCHEMA customer;
CREATE SCHEMA reference;
CREATE FUNCTION customer.throttled() RETURNS boolean LANGUAGE plpgsql AS $$
BEGIN
    IF current_setting('bounded.throttle', true) = 'on' THEN
        PERFORM pg_sleep(0.001);
    END IF;
    RETURN true;
END $$;
CREATE TABLE customer.big (
    id integer PRIMARY KEY,
    pad text NOT NULL,
    CONSTRAINT throttled CHECK (customer.throttled())
);
INSERT INTO customer.big SELECT g, repeat(md5(g::text), 128) FROM generate_series(1, 2500) g;
CREATE TABLE config.settings (name text PRIMARY KEY, value text NOT NULL);
INSERT INTO config.settings SELECT 'k' || g, md5(g::text) FROM generate_series(1, 200) g;
CREATE TABLE reference.codes (id bigserial PRIMARY KEY, code text NOT NULL);
INSERT INTO reference.codes (code) SELECT md5(g::text) FROM generate_series(1, 2000) g;
"""


@pytest.fixture(scope="module")
def world(
    source_pg: PostgresServer, dbaas: Dbaas, data_pg: PostgresServer, data_owner: str
) -> Iterator[SplitEnv]:
    """A frozen source with a throttled PRIMARY table, a fresh PRIMARY and a fresh DATA."""
    source = source_pg.fresh_database(prefix="bounded")
    with source_pg.connect(source) as conn:
        conn.execute(SOURCE_SQL.encode())
    freeze(parse(source_pg.url(source)))
    primary = dbaas.server.fresh_database(owner=dbaas.admin_user)
    data = data_pg.fresh_database(owner=DATA_OWNER)
    env = SplitEnv(
        source_pg=source_pg,
        dbaas=dbaas,
        data_pg=data_pg,
        source=source,
        primary=primary,
        data=data,
        extra_env={"PGOPTIONS": "-c bounded.throttle=on"},
    )
    yield env
    for server, name in ((source_pg, source), (dbaas.server, primary), (data_pg, data)):
        server.drop_database(name)


@pytest.mark.slow
def test_copy_streaming_to_a_stopped_backend_fails_in_bound_then_rerun_completes(
    world: SplitEnv, dbaas: Dbaas
) -> None:
    def stop() -> list[int]:
        backend = _backend(dbaas, world.primary, COPYING_BIG)
        time.sleep(0.5)  # the stream is under way: the socket buffers fill
        _signal([backend], signal.SIGSTOP)
        return [backend]

    output, seconds = _fail(world, MIGRATE, stop, at="STEP 3/7", workers=2)
    print(f"migrate failed {seconds:.1f} s after the PRIMARY backend of its COPY was stopped")
    assert SILENT_PEER_SECONDS - 1 <= seconds < BOUND_SECONDS, output
    _assert_lost(
        world,
        output,
        rf"no answer for {SILENT_PEER_SECONDS} s \(tcp_user_timeout: .+\)"
        r" during COPY of customer\.big",
    )
    _rerun_completes(world)


@pytest.mark.slow
def test_copy_waiting_on_a_hung_primary_fails_in_bound_then_rerun_completes(
    world: SplitEnv, dbaas: Dbaas, data_pg: PostgresServer, make_db: Callable[..., str]
) -> None:
    env = replace(world, primary=make_db(dbaas), data=make_db(data_pg, owner=DATA_OWNER))
    with contextlib.ExitStack() as stack:

        def stop() -> list[int]:
            # Each PRIMARY part, once copied, waits to record itself: it waits on PRIMARY.
            holder = stack.enter_context(_locked(env, "_dbsplit.progress"))
            stack.callback(holder.rollback)
            _backend(dbaas, env.primary, "wait_event_type = 'Lock'")
            pids = _server_pids(dbaas.server)
            _signal(pids, signal.SIGSTOP)
            return pids

        output, seconds = _fail(env, MIGRATE, stop, at="STEP 3/7", workers=2)
    print(f"migrate failed {seconds:.1f} s after the PRIMARY server was stopped")
    assert NO_ANSWER_SECONDS - HEARTBEAT_SECONDS - 1 <= seconds < BOUND_SECONDS, output
    _assert_lost(
        env,
        output,
        rf"no answer for {NO_ANSWER_SECONDS:.0f} s"
        r" during COPY of customer\.big(, COPY of config\.settings)?",
    )
    _rerun_completes(env)


@pytest.mark.slow
def test_verify_waiting_on_a_hung_primary_fails_in_bound_then_rerun_passes(
    world: SplitEnv, dbaas: Dbaas
) -> None:
    done = world.run(*MIGRATE)  # a no-op after the first test
    assert done.returncode == 0, done.stderr
    with _locked(world, "customer.big") as holder:

        def stop() -> list[int]:
            # verify reads customer.big's size, which waits for the test's lock.
            _backend(dbaas, world.primary, "wait_event_type = 'Lock'")
            pids = _server_pids(dbaas.server)
            _signal(pids, signal.SIGSTOP)
            return pids

        output, seconds = _fail(world, ("verify",), stop)
        holder.rollback()
    print(f"verify failed {seconds:.1f} s after the PRIMARY server was stopped")
    assert NO_ANSWER_SECONDS - HEARTBEAT_SECONDS - 1 <= seconds < BOUND_SECONDS, output
    _assert_lost(world, output, rf"no answer for {NO_ANSWER_SECONDS:.0f} s during verify")
    again = world.run("verify")
    assert again.returncode == 0, again.stderr + again.stdout
    assert_targets_equal_source(world)


# ----- helpers ----------------------------------------------------------------------------------

COPYING_BIG = 'query LIKE \'COPY "customer"."big"%\''


def _fail(
    env: SplitEnv,
    args: tuple[str, ...],
    stop: Callable[[], list[int]],
    *,
    at: str | None = None,
    workers: int = 0,
) -> tuple[str, float]:
    """Run dbsplit ``args``; once stderr shows ``at``, call ``stop`` (it SIGSTOPs the pids it
    returns); wait for the exit. Returns the output and the seconds from the stop to the exit,
    once no process dbsplit started (at least ``workers`` of them) is left. The stopped pids
    get SIGCONT whatever happens."""
    proc = env.popen(*args)
    assert proc.stderr is not None
    lines: list[str] = []
    stopped: list[int] = []
    try:
        if at is not None:
            for line in proc.stderr:
                lines.append(line)
                if at in line:
                    break
            else:
                pytest.fail(f"dbsplit {args[0]} never reached {at}:\n" + "".join(lines))
        children = _children(proc.pid)
        assert len(children) >= workers, children
        stopped = stop()
        t0 = time.monotonic()
        lines.append(proc.stderr.read())
        proc.wait(timeout=BOUND_SECONDS * 2)
        seconds = time.monotonic() - t0
        assert _gone(children), "a process dbsplit started outlived it"
    finally:
        _signal(stopped, signal.SIGCONT)
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        for stream in (proc.stdout, proc.stderr):
            if stream:
                stream.close()
    output = "".join(lines)
    assert proc.returncode == 5, output
    for pw in env.passwords():
        assert pw not in output
    return output, seconds


def _assert_lost(env: SplitEnv, output: str, reason: str) -> None:
    """The output ends with the one line naming PRIMARY, ``reason`` and the way out."""
    assert "Traceback" not in output, output
    errors = [ln for ln in output.splitlines() if ln.startswith("dbsplit: error:")]
    assert len(errors) == 1, output
    assert output.rstrip().splitlines()[-1] == errors[0], output
    print(errors[0])
    url = re.escape(env.primary_url.split("@", 1)[1].split("?", 1)[0])
    assert re.fullmatch(
        rf"dbsplit: error: lost PRIMARY postgresql://doadmin:\*\*\*@{url}\?\S+: {reason};"
        " re-run to resume",
        errors[0],
    ), errors[0]


def _rerun_completes(env: SplitEnv) -> None:
    """The same command completes (without the test's throttle: nothing is slowed now)."""
    again = replace(env, extra_env={}).run(*MIGRATE)
    assert again.returncode == 0, again.stderr
    assert "verify passed" in again.stderr
    assert_targets_equal_source(env)


@contextlib.contextmanager
def _locked(env: SplitEnv, table: str) -> Iterator[psycopg.Connection[Any]]:
    """A PRIMARY session holding ``table`` locked (ACCESS EXCLUSIVE) until rolled back."""
    schema, name = table.split(".")
    with psycopg.connect(env.primary_url) as conn:
        conn.execute(
            sql.SQL("LOCK TABLE {} IN ACCESS EXCLUSIVE MODE").format(sql.Identifier(schema, name))
        )
        yield conn


def _backend(dbaas: Dbaas, dbname: str, condition: str, timeout: float = 30.0) -> int:
    """The pid of dbsplit's backend in ``dbname`` matching ``condition``, once there is one."""
    deadline = time.monotonic() + timeout
    with dbaas.server.connect(dbname) as conn:
        while time.monotonic() < deadline:
            row = conn.execute(
                "SELECT pid FROM pg_stat_activity WHERE datname = current_database()"
                " AND application_name = 'dbsplit' AND state = 'active' AND "
                + condition
                + " LIMIT 1"
            ).fetchone()
            if row is not None:
                return int(row[0])
            time.sleep(0.02)
    pytest.fail(f"no dbsplit backend with {condition} in {dbname}")


def _server_pids(server: PostgresServer) -> list[int]:
    """The postmaster, every process it started (each backend is in a session of its own, so
    not in the postmaster's process group) and the `runuser` it runs under, if any (which
    stops itself when its child stops, and must be continued too)."""
    parent = _ppid(server.pid)
    wrapper = [parent] if parent is not None and parent not in (os.getpid(), 1) else []
    return [*wrapper, server.pid, *_children(server.pid)]


def _signal(pids: list[int], signum: int) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signum)


def _children(pid: int) -> list[int]:
    return [int(entry.name) for entry in Path("/proc").iterdir() if _ppid(entry.name) == pid]


def _ppid(pid: int | str) -> int | None:
    try:
        return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
    except (OSError, IndexError, ValueError):
        return None


def _gone(pids: list[int], wait: float = 5.0) -> bool:
    """Whether every one of ``pids`` has ended (within ``wait`` s: the pool's helper process
    ends when it reads its parent's exit)."""
    deadline = time.monotonic() + wait
    while any(_alive(p) for p in pids):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"

"""`make rehearse`: the whole maintenance window, rehearsed on real stand-ins, with a report.

Stands up the window's world (`standins.window.Window.stand_up`, the VPS in its own network
namespace where the machine allows it), starts a load generator against the app and a sampler
watching the source's read-only state and the app's health, then runs the real entry points:
single-DB health, `deploy/primary_init.py`, `deploy/production.py`, `deploy/check.py`, the
rollback drill (`deploy/rollback.py`), `deploy/reset_split.py` + PRIMARY init + the redeploy, a
re-run with nothing to change, and the restore drill (`deploy/restore.py`, from Spaces). Then
it writes the report and prints the numbers.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from deploy.steps.check_remote import CheckQuery
from rehearsal import caches, evidence, keep, ledger, proofs
from rehearsal.checklist import Status, assess, counts, read_checklist
from rehearsal.load import LoadGenerator
from rehearsal.model import Rehearsal, Step, TableCheck, Window, summarize_smoke
from rehearsal.report import BUDGETS, DRILL_BUDGET, smoke_line, write_report
from rehearsal.sampler import Sample, StateSampler, first
from standins import handled_data
from standins.host import SourceSeeder, http_json
from standins.netns import Loopback, Network, vps_network
from standins.window import REPO, Run
from standins.window import Window as World

CHECKLIST = REPO.parent / "shared" / "docs" / "deployment-checklist.md"
LOAD_PATHS = (
    "/api/health",
    "/api/users/count",
    "POST /api/integration-runs",
    "/api/carriers",
    "/api/customers/count",
)
DRILLS = (
    ("after the freeze", "4. Backup: pg_dump", False),
    ("after the copy", "6. dbsplit verify", True),
    ("after the new .env", "9. pnpm install", False),
)
"""Rollback drills: (label, the operation pyinfra is killed at, whether a reset follows)."""
MAX_OPS = 8
"""The longest operations of the first deploy shown on the timeline (it fits one screen)."""
_ANSI = re.compile(r"\x1b\[[0-9;]*m")
_OP = re.compile(r"--> Starting operation:\s*(.+?)\s*$")


@dataclass
class Options:
    scale_mb: int = 1000
    out: Path = Path("reports")
    keep: bool = False
    rate: float = 10.0
    say: Callable[[str], None] = print


@dataclass
class Result:
    rehearsal: Rehearsal
    report: Path | None
    passed: bool
    env_file: Path | None = None
    world: World | None = field(default=None, repr=False)
    """With --keep, the detached world (its addresses; `ledger.sweep()` stops it)."""


class Rehearse:
    """One rehearsal: the world, the clocks, the records."""

    def __init__(self, options: Options) -> None:
        self.o = options
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
        self.r = Rehearsal(started_at=stamp, scale_mb=options.scale_mb)
        self.dir = (options.out / f"rehearsal-{stamp}").resolve()
        self.world: World | None = None
        self.network: Network | None = None
        self.sampler: StateSampler | None = None
        self.load: LoadGenerator | None = None
        self.runs: dict[str, tuple[float, float, Run]] = {}
        self.ops: list[Step] = []
        self.log_marks: dict[Path, int] = {}
        self.facts: dict[str, Any] = {}
        self.failed_items: list[str] = []
        """What this run measured, for the checklist's evidence (``rehearsal.proofs.FACTS``)."""

    # ----- steps -------------------------------------------------------------------------------

    @contextmanager
    def step(self, name: str, phase: str) -> Iterator[Step]:
        self.o.say(f"[{self.r.now():7.1f}s] {phase}: {name}")
        with self.r.step(name, phase) as record:
            yield record
        self.o.say(f"[{self.r.now():7.1f}s]   done in {record.seconds:.1f}s")

    def pyinfra(
        self,
        name: str,
        phase: str,
        deploy: str,
        *flags: str,
        ops: bool = False,
        refused: bool = False,
        kill_at: str | None = None,
        **env: str,
    ) -> Run:
        """Run a deploy as a step (its operations as sub-steps when ``ops``); raise on failure,
        or, with ``refused``, unless it fails; with ``kill_at``, pyinfra is killed when that
        operation starts (a lost laptop), which is what the step expects."""
        assert self.world is not None
        subs: list[Step] = []

        def on_line(line: str) -> None:
            match = _OP.search(_ANSI.sub("", line))
            if not match or not ops:
                return
            now = self.r.now()
            if subs:
                subs[-1].end = now
            label = match.group(1).split(" | ")[-1]
            label = label if len(label) <= 44 else label[:43] + "…"
            subs.append(Step(name="  " + label, phase="operation", start=now, end=now))

        with self.step(name, phase) as record:
            start = self.r.now()
            run = self.world.run(
                deploy, *flags, timeout=3600, on_line=on_line, kill_at=kill_at, **env
            )
            end = self.r.now()
            self.runs[name] = (start, end, run)
            if subs:
                subs[-1].end = end
                self.ops.extend(subs)
                longest = sorted(subs, key=lambda s: s.seconds, reverse=True)[:MAX_OPS]
                self.r.steps.extend(s for s in subs if s in longest and s.seconds >= 0.5)
            (self.dir / "logs").mkdir(parents=True, exist_ok=True)
            log = self.dir / "logs" / f"{len(self.runs):02d}-{deploy}.log"
            log.write_text(self._scrub(run.output), encoding="utf-8")
            record.detail = f"pyinfra {deploy}.py exit {run.returncode} ({log.name})"
            killed = kill_at is not None and f"[killed at: {kill_at}]" in run.output
            if kill_at is not None and not killed:
                raise RuntimeError(f"{deploy}.py was not killed at {kill_at!r}")
            if refused and run.returncode == 0:
                raise RuntimeError(f"{deploy}.py was expected to refuse, and did not")
            if run.returncode != 0 and not refused and not killed:
                lines = [ln for ln in _ANSI.sub("", run.output).splitlines() if ln.strip()]
                errors = [ln for ln in lines if "error" in ln.lower()] or lines[-1:]
                raise RuntimeError(f"{deploy}.py failed: {self._scrub(errors[-1].strip())}")
        return run

    def _scrub(self, text: str) -> str:
        if self.world is None:
            return text
        for secret in self.world.secret_values():
            text = text.replace(secret, "***")
        return text

    # ----- the world ---------------------------------------------------------------------------

    def stand_up(self) -> None:
        for line in ledger.sweep():
            self.o.say(f"swept from an earlier run: {line}")
        with self.step("VPS network namespace", "stand-ins"):
            network = vps_network()
        if network.isolated:
            with self.step("warm pnpm store and wheelhouse outside the namespace", "stand-ins"):
                try:
                    self.o.say("  " + caches.warm())
                except (caches.WarmError, OSError) as err:
                    network.close()
                    network = Loopback(f"warming the caches failed: {err}")
        self.network = network
        self.r.notes.append(network.describe())
        self.o.say(f"  {network.describe()}")
        seed = self._seed()
        world = World.stand_up(
            report_dir=self.dir / "deploy",
            network=network,
            seed=seed,
            on_step=lambda name: self.step(name, "stand-ins"),
        )
        self.world = world
        if network.isolated:
            world.extra_env["HANDLED_PIP_ARGS"] = caches.pip_args()
        ledger.record([*world.leftovers(), *network.leftovers()])
        self._prove_stand_ins()

    def _seed(self) -> SourceSeeder:
        def seed(owner_url: str) -> None:
            with self.step(f"generate handled at {self.o.scale_mb} MB", "stand-ins"):
                size = handled_data.generate(
                    owner_url, self.o.scale_mb, jobs=max(2, os.cpu_count() or 2), progress=None
                )
            self.r.numbers["source_mb"] = size / 1e6

        return seed

    def _prove_stand_ins(self) -> None:
        w = self.world
        assert w is not None
        with w.dbaas.server.connect() as conn:
            row = conn.execute("SELECT version()").fetchone()
        self.facts["dbaas_version"] = str(row[0]).split(" on ")[0] if row else None
        self.facts["hba"] = evidence.hba_facts(w)
        self.facts["outside"] = evidence.outside_connection(w)

    # ----- the drill ---------------------------------------------------------------------------

    def start_watchers(self) -> None:
        w = self.world
        assert w is not None
        self.sampler = StateSampler(
            w.vps.source, w.vps.source_db, w.vps.app.health_url, clock=self.r.now
        ).start()
        self.load = LoadGenerator(
            w.vps.app.api_url, LOAD_PATHS, clock=self.r.now, rate=self.o.rate
        ).start()

    def infrastructure(self) -> None:
        """Pre-Deployment: DigitalOcean can't be reached from here, so the Pulumi program runs
        under the SDK's mocks with both stacks' real config, its inputs held against the
        provider's schema, with the policy pack and the preview workflow checked too."""
        suites = ["tests/infra", "tests/policy", "tests/test_workflows.py"]
        with self.step("Pulumi program under mocks, policy pack", "pre-deployment") as record:
            proc = subprocess.run(
                [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *suites],
                cwd=REPO,
                capture_output=True,
                text=True,
                timeout=300,
                check=False,
            )
            summary = (proc.stdout.strip().splitlines() or ["no output"])[-1]
            record.detail = summary
            self.facts["pulumi"] = {"returncode": proc.returncode, "summary": summary}
            if proc.returncode != 0:
                raise RuntimeError(f"the infrastructure checks failed: {summary}")

    def single_health(self) -> None:
        w = self.world
        assert w is not None
        with self.step("single-DB health", "phase 1"):
            body = http_json(w.vps.app.health_url).body
            self.facts["health_single"] = body
            ok = isinstance(body, dict) and body.get("mode") == "single"
            ok = ok and isinstance(body, dict) and body.get("status") == "ok"
            if not ok:
                raise RuntimeError(f"the app is not healthy in single mode: {body}")

    def primary_init(self, label: str = "PRIMARY initialisation") -> None:
        run = self.pyinfra(label, "phase 2", "primary_init", "-v")
        self.facts.setdefault("primary_init", _ANSI.sub("", run.output))

    def deploy(self, label: str) -> None:
        self.pyinfra(label, "phase 4", "production", "-v", ops=True)
        assert self.world is not None
        self.facts.update(evidence.window_facts(self.world))
        self.facts.update(evidence.database_facts(self.world))
        self._smoke()
        # check.py reads the servers' logs from here on
        for path in (self.world.dbaas.server.log_path, self.world.data_pg.log_path):
            self.log_marks[path] = path.stat().st_size if path.exists() else 0
        self.facts["health_split"] = http_json(self.world.vps.app.health_url).body
        self._tables()

    def _smoke(self) -> None:
        """The smoke checks the journal holds now, by phase (the first record of each kept)."""
        found = evidence.journal_state(self.world).get("smoke")
        if isinstance(found, dict):
            self.facts["smoke"] = found | dict(self.facts.get("smoke") or {})

    def _tables(self) -> None:
        assert self.world is not None
        window = evidence.journal_state(self.world).get("window")
        reports = sorted((self.dir / "deploy").rglob(f"dbsplit-migrate-{window}.json"))
        checks = sorted((self.dir / "deploy").rglob(f"dbsplit-verify-{window}.json"))
        data = json.loads(reports[-1].read_text(encoding="utf-8")) if reports else {}
        verify = json.loads(checks[-1].read_text(encoding="utf-8")) if checks else {}
        self.facts["migrate_report"] = data
        self.facts["verify_report"] = verify
        self.r.tables = [
            TableCheck(
                target=str(t.get("target")),
                table=f"{t.get('schema')}.{t.get('name')}",
                source_rows=int(t.get("source_rows") or 0),
                target_rows=t.get("target_rows"),
                matches=t.get("status") == "ok",
            )
            for t in verify.get("tables", [])
        ]

    def check(self) -> None:
        run = self.pyinfra("post-deployment validation (check.py)", "phase 4", "check")
        self.facts["check"] = _ANSI.sub("", run.output)
        self.facts["pm2_pattern"] = CheckQuery.error_pattern
        self._smoke()
        assert self.world is not None
        logs = {"PRIMARY": self.world.dbaas.server.log_path, "DATA": self.world.data_pg.log_path}
        scan = evidence.scan_logs(logs, self.log_marks)
        self.facts["pg_logs"] = scan | {"matches": [self._scrub(m) for m in scan["matches"]]}

    def rollback(self) -> None:
        """The app has been writing in split mode (the load generator): the rollback refuses,
        naming the rows; then, told to discard them, it dumps them first and rolls back."""
        refused = self.pyinfra(
            "rollback refused: the app wrote in split mode", "rollback", "rollback", refused=True
        )
        self.facts["rollback_refused"] = _ANSI.sub("", refused.output)
        self.pyinfra(
            "rollback drill (rollback.py)",
            "rollback",
            "rollback",
            HANDLED_DISCARD_SPLIT_WRITES="yes",
        )
        self.facts["journal_rollback"] = evidence.journal_state(self.world)
        self._smoke()

    def reset_and_redeploy(self) -> None:
        self.pyinfra(
            "reset the stale split (reset_split.py)",
            "redeploy",
            "reset_split",
            HANDLED_CONFIRM_RESET="yes",
        )
        self.primary_init("PRIMARY initialisation again")
        self.deploy_again()

    def deploy_again(self) -> None:
        self.pyinfra("redeploy (production.py)", "redeploy", "production")
        self._tables()

    def rerun(self) -> None:
        run = self.pyinfra("re-run with nothing to change", "redeploy", "production")
        self.r.numbers["rerun_s"] = run.seconds

    def restore(self) -> None:
        assert self.world is not None
        window = evidence.journal_state(self.world).get("window")
        for dump in (self.world.vps.ssh.home / "backups").glob(f"*-{window}.dump"):
            dump.unlink()  # restore from the copy in Spaces, as after losing the VPS's disk
        run = self.pyinfra(
            "restore drill from Spaces (restore.py)",
            "restore",
            "restore",
            # the drill knowingly replaces what the app wrote since the backup, on the old
            # database and in split mode (those rows are dumped first)
            HANDLED_CONFIRM_RESTORE="yes",
            HANDLED_RESTORE_OVER_NEWER_WRITES="yes",
            HANDLED_DISCARD_SPLIT_WRITES="yes",
        )
        self.r.numbers["restore_s"] = run.seconds

    def rollback_from_each_step(self) -> None:
        """The window killed after the freeze, after the copy and after the new ``.env``, each
        time rolled back (timed); the split is reset where it went stale."""
        self.pyinfra(
            "reset before the drills", "drills", "reset_split", HANDLED_CONFIRM_RESET="yes"
        )
        for label, kill_at, stale in DRILLS:
            self.pyinfra(f"window killed {label}", "drills", "production", kill_at=kill_at)
            run = self.pyinfra(f"rollback {label}", "drills", "rollback")
            self.r.drills[label] = run.seconds
            if stale:
                self.pyinfra(
                    f"reset after the drill {label}",
                    "drills",
                    "reset_split",
                    HANDLED_CONFIRM_RESET="yes",
                )

    # ----- numbers -----------------------------------------------------------------------------

    def measure(self) -> None:
        samples = self.sampler.stop() if self.sampler else []
        self.r.requests = self.load.stop() if self.load else []
        self.sampler = None
        self.load = None
        first_deploy = self.runs.get("production deploy")
        if first_deploy:
            start, end, _ = first_deploy
            self._window(samples, start, end)
            migrate = [
                s for s in self.ops if "dbsplit migrate" in s.name or "dbsplit verify" in s.name
            ]
            migrate = [s for s in migrate if start <= s.start <= end]
            if migrate:
                self.r.numbers["migration_s"] = sum(s.seconds for s in migrate)
        drill = self.runs.get("rollback drill (rollback.py)")
        if drill:
            start, end, _run = drill
            healthy_at = first(
                samples, start, lambda s: s.mode == "single" and s.healthy and s.frozen is False
            )
            stop = healthy_at if healthy_at is not None and healthy_at <= end + 5 else end
            self.r.numbers["rollback_s"] = stop - start
            self.r.windows.append(Window("rollback", start, stop, 30.0))
        rate = self.r.success_rate()
        if rate is not None:
            self.r.numbers["success_rate_pct"] = 100 * rate
        self._live_requests()

    def _live_requests(self) -> None:
        """The requests made while the app was live on the split: from the first deploy's
        end to the rollback drill's start (or check.py's end)."""
        deployed = self.runs.get("production deploy")
        until = self.runs.get("rollback refused: the app wrote in split mode")
        checked = self.runs.get("post-deployment validation (check.py)")
        if deployed is None or (until is None and checked is None):
            return
        start = deployed[1]
        end = until[0] if until is not None else checked[1] if checked is not None else start
        self.facts["live_requests"] = [asdict(q) for q in self.r.requests if start <= q.at <= end]

    def _window(self, samples: list[Sample], start: float, end: float) -> None:
        frozen_at = first(samples, start, lambda s: bool(s.frozen), end)
        stop_steps = [
            s
            for s in self.r.steps
            if s.phase == "operation"
            and start <= s.start <= end
            and s.name.strip().startswith("2.")
        ]
        failed = [q.at for q in self.r.requests if not q.ok and start <= q.at <= end]
        candidates = [t for t in (stop_steps[0].start if stop_steps else None,) if t is not None]
        window_start = min(candidates + failed[:1]) if candidates or failed else None
        split_at = first(
            samples, frozen_at if frozen_at is not None else start, _split_healthy, end + 5
        )
        if frozen_at is not None and split_at is not None:
            self.r.numbers["write_freeze_s"] = split_at - frozen_at
            self.r.windows.append(Window("write freeze", frozen_at, split_at, 120.0))
        if window_start is not None and split_at is not None:
            self.r.numbers["window_s"] = split_at - window_start
            self.r.windows.append(Window("maintenance window", window_start, split_at, 7200.0))

    # ----- the whole thing ---------------------------------------------------------------------

    def run(self) -> Result:
        self.dir.mkdir(parents=True, exist_ok=True)
        env_file: Path | None = None
        failure: BaseException | None = None
        try:
            self.infrastructure()
            self.stand_up()
            self.start_watchers()
            self.single_health()
            self.primary_init()
            self.deploy("production deploy")
            self.check()
            self.rollback()
            self.reset_and_redeploy()
            self.rerun()
            self.restore()
            self.rollback_from_each_step()
        except Exception as exc:  # recorded as the failed step; the report still gets written
            failure = exc
            self.o.say(f"FAILED: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}")
        finally:
            self.measure()
        report = self._report()
        passed = failure is None and self.r.ok and self._within_budgets() and not self.failed_items
        if self.world is not None:
            if self.o.keep:
                env_file = self._keep()
            else:
                with self.step("tear down the stand-ins", "teardown"):
                    self.world.stop()
                    if self.network is not None:
                        self.network.close()
                    ledger.clear()
        self._print(report, passed)
        return Result(self.r, report, passed, env_file, self.world if self.o.keep else None)

    def _within_budgets(self) -> bool:
        for key, (_label, budget) in BUDGETS.items():
            if budget is not None and key in self.r.numbers and self.r.numbers[key] > budget:
                return False
        required = ("write_freeze_s", "window_s", "rollback_s", "rerun_s", "restore_s")
        drills = len(self.r.drills) == len(DRILLS)
        in_time = all(v <= DRILL_BUDGET for v in self.r.drills.values())
        return drills and in_time and all(k in self.r.numbers for k in required)

    def _report(self) -> Path:
        self.r.evidence = proofs.evaluate(self.facts)
        self.r.smoke = summarize_smoke(self.facts.get("smoke"))
        checklist = assess(read_checklist(CHECKLIST), self.r.evidence)
        self.r.counts = {s.value: n for s, n in counts(checklist).items()}
        self.failed_items = [
            f"{a.item.number}. {a.item.text}: {a.evidence}"
            for a in checklist
            if a.status is Status.FAILED
        ]
        return write_report(self.r, checklist, self.dir)

    def _keep(self) -> Path:
        """Leave the world running after exit (detached, in the ledger); print how to use it."""
        assert self.world is not None
        assert self.network is not None
        kept = keep.keep(self.world, self.network, self.dir)
        for line in kept.lines:
            self.o.say(line)
        return kept.env_file

    def _print(self, report: Path, passed: bool) -> None:
        self.o.say("")
        self.o.say(f"{'measure':<60} {'measured':>10} {'budget':>9}")
        for key, (label, budget) in BUDGETS.items():
            if key in self.r.numbers:
                value = self.r.numbers[key]
                mark = "" if budget is None else ("  ok" if value <= budget else "  OVER")
                btext = "—" if budget is None else f"{budget:.0f} s"
                self.o.say(f"{label:<60} {value:>8.1f} s {btext:>9}{mark}")
        for label, value in self.r.drills.items():
            mark = "  ok" if value <= DRILL_BUDGET else "  OVER"
            name = f"rollback with the window killed {label}"
            self.o.say(f"{name:<60} {value:>8.1f} s {DRILL_BUDGET:>7.0f} s{mark}")
        rate = self.r.success_rate()
        if rate is not None:
            failed = sum(not q.ok for q in self.r.requests)
            self.o.say(
                f"{'request success rate':<60} {100 * rate:>9.2f}% "
                f"({failed} of {len(self.r.requests)} failed)"
            )
        for run in self.r.smoke:
            self.o.say(f"{smoke_line(run):<60} {run.median_ms:>6.0f} ms median")
        self.o.say(
            "checklist: " + ", ".join(f"{n} {status}" for status, n in self.r.counts.items())
        )
        for line in self.failed_items:
            self.o.say(f"  failed: {line}")
        self.o.say(f"report: {report}")
        self.o.say("rehearsal " + ("PASSED" if passed else "FAILED"))


def _split_healthy(sample: Sample) -> bool:
    return sample.mode == "split" and sample.healthy


def rehearse(options: Options) -> Result:
    """Run one rehearsal (see the module docstring)."""
    return Rehearse(options).run()


def now_iso() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())

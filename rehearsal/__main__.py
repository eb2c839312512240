"""`python -m rehearsal [--scale-mb N] [--keep] [--out DIR] [--rate R]`: `make rehearse`;
`python -m rehearsal --stop`: stop the stand-ins a `--keep` (or a killed run) left running."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from rehearsal import ledger
from rehearsal.run import Options, rehearse

EPILOG = """\
--keep leaves the stand-ins running after the command exits and prints how to reach them
(ssh, psql, pyinfra; the URLs and keys are in a 0600 env file, never printed). They run until
`python -m rehearsal --stop` (`make rehearse ARGS=--stop`) or the next rehearsal stops them.

exit status: 0 the rehearsal passed (--stop: stopped what was left, or found nothing);
1 it failed or missed a budget (--stop: refused, a rehearsal is running); 2 bad arguments.
"""


def stop() -> int:
    """Sweep the ledger; one line per thing stopped, or one saying there was nothing."""
    try:
        lines = ledger.sweep()
    except RuntimeError as err:
        print(f"nothing stopped: {err}", file=sys.stderr)
        return 1
    for line in lines:
        print(line, flush=True)
    if not lines:
        print("nothing to stop: no stand-ins kept or left over by a rehearsal")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m rehearsal",
        description="Rehearse the maintenance window on local stand-ins and write a report.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--scale-mb", type=int, default=1000, help="size of handled (MB)")
    action = parser.add_mutually_exclusive_group()
    action.add_argument(
        "--keep", action="store_true", help="leave the stand-ins running after the command exits"
    )
    action.add_argument(
        "--stop",
        action="store_true",
        help="stop the stand-ins a --keep (or a killed run) left, then exit",
    )
    parser.add_argument("--out", type=Path, default=Path("reports"), help="report directory")
    parser.add_argument("--rate", type=float, default=10.0, help="app requests per second")
    args = parser.parse_args(argv)
    if args.stop:
        others = [
            o for o in ("scale_mb", "out", "rate") if getattr(args, o) != parser.get_default(o)
        ]
        if others:
            parser.error(f"--stop takes no other option, got --{others[0].replace('_', '-')}")
        return stop()
    result = rehearse(
        Options(
            scale_mb=args.scale_mb,
            out=args.out,
            keep=args.keep,
            rate=args.rate,
            say=lambda line: print(line, flush=True),
        )
    )
    return 0 if result.passed else 1


if __name__ == "__main__":
    sys.exit(main())

"""`python -m rehearsal [--scale-mb N] [--keep] [--out DIR] [--rate R]`: `make rehearse`."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from rehearsal.run import Options, rehearse


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m rehearsal",
        description="Rehearse the maintenance window on local stand-ins and write a report.",
    )
    parser.add_argument("--scale-mb", type=int, default=1000, help="size of handled (MB)")
    parser.add_argument("--keep", action="store_true", help="leave the stand-ins running")
    parser.add_argument("--out", type=Path, default=Path("reports"), help="report directory")
    parser.add_argument("--rate", type=float, default=10.0, help="app requests per second")
    args = parser.parse_args(argv)
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

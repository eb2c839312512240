"""Run inside (or outside) the VPS namespace: connect to the PostgreSQL URL read on stdin.

Prints one line: `OK <user> tls=<bool>` or `ERR <last line of the error>`. The URL (it
holds a password) comes on stdin, never on the command line.
"""

from __future__ import annotations

import sys

import psycopg


def main() -> int:
    url = sys.stdin.read().strip()
    try:
        with psycopg.connect(url, connect_timeout=5, prepare_threshold=None) as conn:
            row = conn.execute("SELECT current_user").fetchone()
            tls = conn.pgconn.ssl_in_use
    except psycopg.OperationalError as err:
        print("ERR " + str(err).strip().splitlines()[-1])
        return 1
    assert row is not None
    print(f"OK {row[0]} tls={tls}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The one error hierarchy of dbsplit, and the exit code each error carries.

::

    SplitError                      exit 4: an unexpected failure while working
     ├── UsageError                 exit 2: bad arguments, a malformed URL, a missing variable,
     │    └── ConfigError                   an unreadable or wrong split.toml
     ├── ConnectError               exit 2: a server that cannot be reached or refuses the login
     │    └── LostError             exit 5: a server stopped answering mid-step (a dead network,
     │                                      a hung server): its work rolled back; re-run resumes
     ├── BlockedError               exit 1: the plan has blockers; nothing was written
     ├── VerifyError                exit 1: a target differs from the source
     └── StateError                 exit 3: a target or run state dbsplit cannot safely continue

Messages are one lower-case line that names the problem and the value, and never contain a
password: build them from redacted URLs (:func:`dbsplit.urls.redact`).
"""

from __future__ import annotations


class SplitError(Exception):
    """Base class of every error dbsplit raises on purpose."""

    exit_code = 4


class UsageError(SplitError):
    """The command line, an environment variable or a URL is wrong."""

    exit_code = 2


class ConfigError(UsageError):
    """The split configuration file is unreadable or names something that does not exist."""


class ConnectError(SplitError):
    """A database server cannot be reached, or refuses the connection."""

    exit_code = 2


class LostError(ConnectError):
    """A server stopped answering while dbsplit worked with it (:mod:`dbsplit.watchdog`).

    What the server was doing is rolled back (each step commits with its own record), so the
    same command re-run resumes. ``server`` is the server's redacted URL.
    """

    exit_code = 5

    def __init__(self, message: str, server: str = "") -> None:
        super().__init__(message, server)
        self.server = server

    def __str__(self) -> str:
        return str(self.args[0])


class BlockedError(SplitError):
    """The plan has blockers, so nothing was written."""

    exit_code = 1


class VerifyError(SplitError):
    """A target database does not equal the source."""

    exit_code = 1


class StateError(SplitError):
    """A target holds data or run state that dbsplit cannot safely continue from."""

    exit_code = 3

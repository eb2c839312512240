"""A light load generator: keeps calling the app so the report shows every failed request.

It only ever calls the address it is given when that is loopback or inside the project's VPS
namespace range 10.231.0.0/16 (the stand-in VPS's own address), at a fixed rate, and stops by
itself after ``max_seconds`` or ``max_requests``, whichever comes first. A path may name its
method (``"POST /api/integration-runs"``, sent with an empty JSON body); the default is GET.
"""

from __future__ import annotations

import http.client
import ipaddress
import json
import threading
import time
from collections.abc import Callable, Sequence
from urllib.parse import urlsplit

from rehearsal.model import Request

PROJECT_SUBNET = ipaddress.ip_network("10.231.0.0/16")


def _allowed(host: str) -> bool:
    """Loopback, or an IPv4 address inside the project's namespace range; nothing else."""
    if host == "localhost":
        return True
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return False
    return ip.is_loopback or (ip.version == 4 and ip in PROJECT_SUBNET)


class LoadGenerator:
    """Call ``paths`` on ``base_url`` round-robin at ``rate`` requests per second, in a thread.

    A request counts as failed on a connection error, a timeout, or a status of 500 and above.
    """

    def __init__(
        self,
        base_url: str,
        paths: Sequence[str],
        *,
        clock: Callable[[], float],
        rate: float = 20.0,
        timeout: float = 2.0,
        max_seconds: float = 3600.0,
        max_requests: int = 200_000,
    ) -> None:
        parts = urlsplit(base_url)
        host = parts.hostname or ""
        if not _allowed(host):
            raise ValueError(
                f"the load generator only targets loopback or 10.231.0.0/16 addresses, not {host!r}"
            )
        self.host = host
        self.port = parts.port or 80
        self.paths = list(paths)
        self.clock = clock
        self.interval = 1.0 / rate
        self.timeout = timeout
        self.max_seconds = max_seconds
        self.max_requests = max_requests
        self.requests: list[Request] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="load-generator", daemon=True)

    def start(self) -> LoadGenerator:
        self._thread.start()
        return self

    def stop(self) -> list[Request]:
        """Stop and return every request made."""
        self._stop.set()
        self._thread.join(timeout=self.timeout + 5)
        return self.requests

    def _run(self) -> None:
        started = time.monotonic()
        i = 0
        while not self._stop.is_set() and i < self.max_requests:
            if time.monotonic() - started > self.max_seconds:
                break
            path = self.paths[i % len(self.paths)]
            self.requests.append(self._one(path))
            i += 1
            self._stop.wait(self.interval)

    def _one(self, path: str) -> Request:
        at = self.clock()
        t = time.monotonic()
        method, _, target = path.rpartition(" ")
        method = method or "GET"
        body = json.dumps({}) if method != "GET" else None
        headers = {"Content-Type": "application/json"} if body is not None else {}
        conn = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)
        try:
            conn.request(method, target, body=body, headers=headers)
            response = conn.getresponse()
            response.read()
            status = response.status
        except (OSError, http.client.HTTPException):
            status = 0
        finally:
            conn.close()
        latency = (time.monotonic() - t) * 1000
        return Request(at=at, ok=0 < status < 500, status=status, latency_ms=latency, path=path)

"""Smoke checks as data, run on the VPS against the app over HTTP (stdlib only, Python 3.10).

A check (one dict of ``smoke_checks`` in ``group_data/``)::

    {"name": "create user", "app": "api", "method": "POST", "path": "/api/users",
     "body": {"email": "smoke-{run}@handled.example"}, "expect": 201,
     "json": {"displayName": "Smoke {run}", "roles": {"contains": "smoke"}},
     "save": {"user_id": "id"}, "auth": True, "database": "primary"}

- ``app``: which base URL (``app_urls``: ``api``, ``web``); ``path`` and every string in
  ``body`` and ``json`` may name variables in braces: ``{run}`` (random per run),
  ``{smoke_user}``, ``{smoke_password}`` (the secret ``SMOKE_PASSWORD``) and what earlier checks
  saved. A ``body`` string is sent as is (``content_type``, default ``text/plain``), anything
  else as JSON.
- ``expect``: the HTTP status; ``json``: path -> expected value, or a predicate
  (``{"gte": 1}``, ``{"contains": x}``, ``{"type": "list"}``, ``{"ne": x}``, ...); a path is
  dot-separated (``user.email``, ``runs.0.id``); ``text``: substrings the body must hold.
- ``session``: the path of a token in this response: later checks with ``auth`` send it as
  ``Authorization: Bearer``; cookies are kept for every later check too.
- ``save``: variable -> path, for later checks; a check needing a variable nobody saved fails.
- ``always``: skipped (ok) when a variable it needs was never saved, where any other check
  fails: the clean-up of what earlier checks created. Every check runs, whatever failed
  before it, so one broken feature does not hide the state of the others.
- ``database``: ``primary``, ``data``, ``both`` or ``none``: what the check touches.

Each result is ``{"name", "ok", "status", "ms", "database", "detail"}``; the detail never holds
the password, the session token or any masked secret.
"""

from __future__ import annotations

import http.cookiejar
import json
import re
import secrets
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from typing import Any

from deploy.remote.journal import Journal, now
from deploy.remote.runtime import Context, Failure, say, scrub

KEYS = {
    "name",
    "app",
    "method",
    "path",
    "body",
    "content_type",
    "expect",
    "json",
    "text",
    "session",
    "save",
    "auth",
    "database",
    "always",
}
DATABASES = ("primary", "data", "both", "none")
METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE", "HEAD")
PREDICATES = ("eq", "ne", "gt", "gte", "lt", "lte", "contains", "type", "nonempty")
TYPES: dict[str, type | tuple[type, ...]] = {
    "list": list,
    "object": dict,
    "string": str,
    "number": (int, float),
    "bool": bool,
    "null": type(None),
}
_VAR = re.compile(r"\{([a-z_][a-z0-9_]*)\}")
_MISSING = object()


class SmokeError(ValueError):
    """A smoke check list that cannot be run (one line naming the check and the problem)."""


@dataclass(frozen=True)
class Check:
    name: str
    method: str
    path: str
    app: str = "api"
    body: Any = None
    content_type: str = ""
    expect: int = 200
    json: dict[str, Any] = field(default_factory=dict)
    text: list[str] = field(default_factory=list)
    session: str = ""
    save: dict[str, str] = field(default_factory=dict)
    auth: bool = False
    database: str = "none"
    always: bool = False


def parse_checks(raw: Any, apps: Any = ("api", "web")) -> list[Check]:
    """The checks of ``raw`` (a list of dicts), validated; :class:`SmokeError` otherwise."""
    if not isinstance(raw, (list, tuple)):
        raise SmokeError(f"smoke_checks must be a list, not {type(raw).__name__}")
    checks: list[Check] = []
    names: set[str] = set()
    for i, item in enumerate(raw, 1):
        if not isinstance(item, dict):
            raise SmokeError(f"smoke check {i} is not a dict: {item!r}")
        label = f"smoke check {i} ({item.get('name', '?')!r})"
        unknown = sorted(set(item) - KEYS)
        if unknown:
            raise SmokeError(f"{label}: unknown key {unknown[0]!r}")
        for key in ("name", "method", "path"):
            if not isinstance(item.get(key), str) or not item[key]:
                raise SmokeError(f"{label}: {key} must be a non-empty string")
        if item["name"] in names:
            raise SmokeError(f"{label}: the name is used twice")
        names.add(item["name"])
        if item["method"].upper() not in METHODS:
            raise SmokeError(f"{label}: unknown method {item['method']!r}")
        if not item["path"].startswith("/"):
            raise SmokeError(f"{label}: path must start with '/', not {item['path']!r}")
        if item.get("app", "api") not in apps:
            raise SmokeError(f"{label}: app {item.get('app')!r} is not in app_urls")
        if item.get("database", "none") not in DATABASES:
            raise SmokeError(f"{label}: database must be one of {', '.join(DATABASES)}")
        expect = item.get("expect", 200)
        if not isinstance(expect, int) or isinstance(expect, bool) or not 100 <= expect <= 599:
            raise SmokeError(f"{label}: expect must be an HTTP status, not {expect!r}")
        for key in ("json", "save"):
            if not isinstance(item.get(key, {}), dict):
                raise SmokeError(f"{label}: {key} must be a dict")
        for path, expected in (item.get("json") or {}).items():
            _check_predicate(label, path, expected)
        text = item.get("text", [])
        if not isinstance(text, list) or not all(isinstance(t, str) for t in text):
            raise SmokeError(f"{label}: text must be a list of strings")
        checks.append(Check(**{**item, "method": item["method"].upper()}))
    return checks


def _check_predicate(label: str, path: str, expected: Any) -> None:
    if not isinstance(expected, dict):
        return
    if len(expected) != 1 or next(iter(expected)) not in PREDICATES:
        raise SmokeError(
            f"{label}: condition on {path!r} must be a value or one of"
            f" {', '.join(PREDICATES)}, not {expected!r}"
        )
    if "type" in expected and expected["type"] not in TYPES:
        raise SmokeError(f"{label}: unknown type {expected['type']!r} for {path!r}")


def lookup(body: Any, path: str) -> Any:
    """The value at a dot-separated ``path`` (list items by index), or a marker when absent."""
    value = body
    for part in path.split(".") if path else []:
        if isinstance(value, dict) and part in value:
            value = value[part]
        elif isinstance(value, list) and _index(part, len(value)):
            value = value[int(part)]
        else:
            return _MISSING
    return value


def _index(part: str, length: int) -> bool:
    return part.lstrip("-").isdigit() and -length <= int(part) < length


def found(body: Any, path: str) -> bool:
    return lookup(body, path) is not _MISSING


def holds(actual: Any, expected: Any) -> tuple[bool, str]:
    """Whether ``actual`` meets ``expected`` (a value, or a one-key predicate), and why not."""
    if actual is _MISSING:
        return False, "absent"
    if not isinstance(expected, dict):
        return actual == expected, f"is {_short(actual)}, expected {_short(expected)}"
    op, arg = next(iter(expected.items()))
    try:
        if op == "eq":
            ok = actual == arg
        elif op == "ne":
            ok = actual != arg
        elif op in ("gt", "gte", "lt", "lte"):
            number = isinstance(actual, (int, float)) and not isinstance(actual, bool)
            ok = (
                number
                and {
                    "gt": actual > arg,
                    "gte": actual >= arg,
                    "lt": actual < arg,
                    "lte": actual <= arg,
                }[op]
            )
        elif op == "contains":
            ok = isinstance(actual, (list, str, dict)) and arg in actual
        elif op == "type":
            ok = isinstance(actual, TYPES[arg]) and not (
                arg == "number" and isinstance(actual, bool)
            )
        else:  # nonempty
            ok = bool(actual) is bool(arg)
    except TypeError:
        ok = False
    return ok, f"is {_short(actual)}, expected {op} {_short(arg)}"


def _short(value: Any, limit: int = 80) -> str:
    text = json.dumps(value, default=str)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def needs(value: Any) -> set[str]:
    """The variables a template (string, list or dict of them) names."""
    if isinstance(value, str):
        return set(_VAR.findall(value))
    if isinstance(value, dict):
        return set().union(*(needs(v) for v in value.values())) if value else set()
    if isinstance(value, list):
        return set().union(*(needs(v) for v in value)) if value else set()
    return set()


def fill(value: Any, variables: dict[str, Any]) -> Any:
    """``value`` with ``{name}`` replaced in every string (a lone ``{name}`` keeps its type)."""
    if isinstance(value, str):
        whole = _VAR.fullmatch(value)
        if whole and whole[1] in variables:
            return variables[whole[1]]
        return _VAR.sub(lambda m: str(variables.get(m[1], m[0])), value)
    if isinstance(value, dict):
        return {k: fill(v, variables) for k, v in value.items()}
    if isinstance(value, list):
        return [fill(v, variables) for v in value]
    return value


def scrubbed(text: str, hidden: Any) -> str:
    """``text`` with every value of ``hidden`` (4 characters or more) replaced by ``***``."""
    for value in sorted((str(h) for h in hidden if h and len(str(h)) >= 4), key=len, reverse=True):
        text = text.replace(value, "***")
    return text


def judge(check: Check, status: int, body: Any, text: str, variables: dict[str, Any]) -> str:
    """What is wrong with a response ("" when the check passed)."""
    if status != check.expect:
        reason = body.get("error") if isinstance(body, dict) else None
        return f"expected {check.expect}, got {status}" + (f": {reason}" if reason else "")
    problems = []
    for path, expected in check.json.items():
        ok, why = holds(lookup(body, path), fill(expected, variables))
        if not ok:
            problems.append(f"{path} {why}")
    for wanted in (fill(t, variables) for t in check.text):
        if wanted not in text:
            problems.append(f"body lacks {wanted!r}")
    for name, path in {
        **check.save,
        **({"session": check.session} if check.session else {}),
    }.items():
        if not found(body, path):
            problems.append(f"no {path} to save as {name}")
    return "; ".join(problems)


@dataclass
class Runner:
    """Runs checks in order, keeping the session, cookies and saved variables between them."""

    urls: dict[str, str]
    variables: dict[str, Any]
    hidden: list[str]
    timeout: float = 10.0
    token: str = ""
    opener: Any = None

    def __post_init__(self) -> None:
        self.variables.setdefault("run", secrets.token_hex(4))
        self.opener = urllib.request.build_opener(
            urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar())
        )

    def request(self, check: Check) -> tuple[int, Any, str]:
        url = self.urls[check.app].rstrip("/") + fill(check.path, self.variables)
        headers = {"accept": "application/json"}
        data = None
        if check.body is not None:
            body = fill(check.body, self.variables)
            if isinstance(body, str):
                data = body.encode()
                headers["content-type"] = check.content_type or "text/plain"
            else:
                data = json.dumps(body).encode()
                headers["content-type"] = check.content_type or "application/json"
        if check.auth and self.token:
            headers["authorization"] = f"Bearer {self.token}"
        if not url.startswith(("http://", "https://")):
            raise ValueError(f"not an HTTP URL: {url}")
        req = urllib.request.Request(url, data=data, headers=headers, method=check.method)  # noqa: S310
        try:
            with self.opener.open(req, timeout=self.timeout) as response:
                status, raw = response.status, response.read()
        except urllib.error.HTTPError as exc:
            status, raw = exc.code, exc.read()
        text = raw.decode("utf-8", "replace")
        try:
            parsed: Any = json.loads(text) if text.strip() else None
        except ValueError:
            parsed = None
        return status, parsed, text

    def run(self, check: Check) -> dict[str, Any]:
        missing = sorted(needs([check.path, check.body]) - set(self.variables))
        result: dict[str, Any] = {"name": check.name, "ok": False, "status": 0, "ms": 0.0}
        result["database"] = check.database
        if missing and check.always:
            result.update(ok=True, detail=f"skipped: nothing to undo ({missing[0]} never saved)")
            return result
        if missing:
            result["detail"] = f"needs {missing[0]}, which no earlier check saved"
            return result
        started = time.monotonic()
        try:
            status, body, text = self.request(check)
        except (urllib.error.URLError, OSError, ValueError) as exc:
            reason = getattr(exc, "reason", exc)
            result.update(ms=_ms(started), detail=f"no answer: {reason}")
            return self._scrub(result)
        problem = judge(check, status, body, text, self.variables)
        result.update(ok=not problem, status=status, ms=_ms(started))
        held = len(check.json) + len(check.text)
        result["detail"] = problem or f"{status}, {held} condition(s) held"
        if not problem:
            for name, path in check.save.items():
                self.variables[name] = lookup(body, path)
            if check.session:
                self.token = str(lookup(body, check.session))
                self.hidden.append(self.token)
        return self._scrub(result)

    def _scrub(self, result: dict[str, Any]) -> dict[str, Any]:
        result["detail"] = scrubbed(str(result.get("detail", "")), self.hidden)[:300]
        return result


def _ms(started: float) -> float:
    return round((time.monotonic() - started) * 1000, 1)


def run_checks(
    checks: list[Check],
    urls: dict[str, str],
    variables: dict[str, Any],
    hidden: list[str],
    timeout: float = 10.0,
) -> list[dict[str, Any]]:
    """Every check in order; one result each."""
    runner = Runner(urls, dict(variables), list(hidden), timeout)
    return [runner.run(check) for check in checks]


def summary(results: list[dict[str, Any]]) -> str:
    """``12/12 passed`` or ``11/12 passed; failed: manage roles (expected 201, got 403)``."""
    bad = [r for r in results if not r["ok"]]
    line = f"{len(results) - len(bad)}/{len(results)} smoke checks passed"
    if bad:
        line += "; failed: " + "; ".join(f"{r['name']} ({r['detail']})" for r in bad)
    return line


# ----- on the VPS: a phase's run, recorded in the journal ---------------------------------------


@dataclass(frozen=True)
class Smoke:
    """What a step needs to run the smoke checks: the list, the apps' URLs, the smoke user."""

    checks: list[dict[str, Any]] = field(default_factory=list)
    urls: dict[str, str] = field(default_factory=dict)
    user: str = ""
    timeout: float = 10.0


def run_phase(req: Smoke, ctx: Context, phase: str, mode: str) -> list[dict[str, Any]]:
    """Run the checks (the password from the request's secrets) and, when a window is open,
    record them as ``smoke[phase]`` in the window state; print one line per check."""
    variables: dict[str, Any] = {"smoke_user": req.user}
    hidden: list[str] = []
    if ctx.has("smoke_password"):
        variables["smoke_password"] = ctx.secret("smoke_password")
        hidden.append(variables["smoke_password"])
    try:
        checks = parse_checks(req.checks, tuple(req.urls))
    except SmokeError as exc:
        raise Failure(str(exc)) from None
    results = run_checks(checks, req.urls, variables, hidden, req.timeout)
    for r in results:
        r["detail"] = scrub(r["detail"])
        mark = "ok" if r["ok"] else "FAILED"
        say(f"smoke {mark}: {r['name']} [{r['database']}] {r['ms']:.0f} ms: {r['detail']}")
    journal = Journal(ctx)
    state = journal.state()
    if state.get("window"):
        smoke = dict(state.get("smoke") or {})
        smoke[phase] = {"at": now(), "mode": mode, "checks": results}
        journal.update(f"smoke-{phase}", smoke=smoke)
    return results

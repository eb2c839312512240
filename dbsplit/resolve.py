"""Cross-target dependencies: what each one needs, decided purely from the graph and routing.

For each target, every object dbsplit creates there (the objects of its schemas, less those
``[resolve] drop`` leaves out) must find what it uses on that target. A used object that lives
in the other target's schemas (or in a schema or table copied nowhere) is:

- **created there too** when it is a type, domain, enum, collation, text search configuration
  or dictionary, function, procedure or sequence: a *resolution* dbsplit applies by itself,
  and the copy's own dependencies are resolved the same way on that target. A sequence is
  copied only when the other target does not use it too (two databases cannot share one
  sequence's values);
- a **blocker** otherwise (a table, view or materialized view, a table's row type, or a
  sequence both targets use), with the fix: leave the dependent object out of its target with
  ``[resolve] drop`` when it is a view, materialized view, function, procedure or trigger, or
  route the two schemas to the same target.

The targets' abilities are checked too: a function in a language only a superuser may use, an
ICU collation on a server built without ICU, an extension that is not trusted, when the target's
user is not a superuser and the extension is not there yet.

Example::

    >>> res = resolve(graph, config, {Target.PRIMARY: None, Target.DATA: None})
    >>> [f.summary for f in res.findings][:1]
    ['table editor.editor_language (PRIMARY) uses type musicbrainz.fluency (DATA):
      created on PRIMARY too']
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from dbsplit.config import SplitConfig, Target
from dbsplit.deps import COPYABLE, DROPPABLE, Abilities, Edge, Obj, ObjectGraph
from dbsplit.errors import ConfigError

RESOLVED = "resolved"
BLOCKED = "blocked"
DROPPED = "dropped"

#: The dependency kind a finding is filed under, by the kind of the object that depends.
_FINDING_KIND = {
    "view": "view",
    "materialized view": "view",
    "function": "function",
    "procedure": "function",
    "aggregate": "function",
    "trigger": "trigger",
    "default": "default",
    "check constraint": "check constraint",
    "index": "index",
    "table": "column type",
    "type": "type",
    "domain": "type",
    "text search configuration": "text search configuration",
    "rule": "rule",
}


@dataclass(frozen=True)
class Finding:
    """One cross-target dependency and what becomes of it."""

    dependent: Obj
    referenced: Obj
    how: str
    #: The target the dependent object is created on.
    target: Target
    #: Where the referenced object lives: ``primary``, ``data`` or ``not copied``.
    where: str
    status: str
    #: What dbsplit does (resolved, dropped), or the fix (blocked).
    action: str

    @property
    def kind(self) -> str:
        return _FINDING_KIND.get(self.dependent.kind, self.dependent.kind)

    @property
    def summary(self) -> str:
        where = self.where.upper() if self.where != "not copied" else "copied nowhere"
        return (
            f"{self.dependent.display} ({self.target.value.upper()}) uses "
            f"{self.referenced.display} ({where}): {self.action}"
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "dependent": self.dependent.to_json(),
            "referenced": self.referenced.to_json(),
            "found_by": self.how,
            "target": self.target.value,
            "referenced_on": self.where,
            "status": self.status,
            "blocker": self.status == BLOCKED,
            "action": self.action,
        }


@dataclass(frozen=True)
class TargetResolution:
    """What dbsplit creates on one target beyond its own schemas, and what it leaves out."""

    #: Objects of other schemas created on this target too, sorted.
    copies: tuple[Obj, ...] = ()
    #: Objects of this target's schemas left out (``[resolve] drop``).
    drops: tuple[Obj, ...] = ()
    #: Extensions the copies need.
    extensions: tuple[str, ...] = ()
    #: Functions created with ``check_function_bodies = off`` (their bodies name objects that
    #: ``pg_dump`` may create after them).
    unchecked: tuple[Obj, ...] = ()

    @property
    def copy_schemas(self) -> tuple[str, ...]:
        return tuple(sorted({o.schema for o in self.copies}))

    def to_json(self) -> dict[str, Any]:
        return {
            "created_here_too": [o.to_json() for o in self.copies],
            "dropped": [o.to_json() for o in self.drops],
            "extensions_for_copies": list(self.extensions),
            "check_function_bodies_off": [o.qualname for o in self.unchecked],
        }


@dataclass(frozen=True)
class Resolution:
    findings: tuple[Finding, ...] = ()
    targets: Mapping[Target, TargetResolution] = field(default_factory=dict)
    #: Blockers that are not one dependency: the targets' abilities.
    other_blockers: tuple[str, ...] = ()

    @property
    def blockers(self) -> tuple[str, ...]:
        deps = dict.fromkeys(f.summary for f in self.findings if f.status == BLOCKED)
        return tuple(deps) + self.other_blockers

    def target(self, target: Target) -> TargetResolution:
        return self.targets.get(target, TargetResolution())


def drop_matches(graph: ObjectGraph, entries: Iterable[str], source_file: str | None) -> set[Obj]:
    """The objects ``[resolve] drop`` names; :class:`ConfigError` for an entry naming none."""
    names: dict[str, set[Obj]] = {}
    for o in graph.droppable:
        names.setdefault(o.qualname, set()).add(o)
        if "(" in o.name:
            names.setdefault(o.qualname.split("(", 1)[0], set()).add(o)
    found: set[Obj] = set()
    for entry in entries:
        if entry not in names:
            raise ConfigError(
                f"config file {source_file!r}: resolve.drop entry {entry!r} names no view,"
                " materialized view, function, procedure, trigger, collation or text search"
                " configuration of the source"
            )
        found |= names[entry]
    return found


def resolve(
    graph: ObjectGraph,
    config: SplitConfig,
    abilities: Mapping[Target, Abilities | None],
    *,
    excluded_tables: frozenset[str] = frozenset(),
    extension_needs: Mapping[Target, Iterable[str]] | None = None,
) -> Resolution:
    """Decide every cross-target dependency of ``graph`` for the targets in ``abilities``
    (``None``: abilities unknown, assumed sufficient)."""
    drops = drop_matches(graph, config.drop, config.source_file)

    def home(o: Obj) -> Target | None:
        table = f"{o.schema}.{o.table or o.name}"
        if (o.table or o.kind == "table") and table in excluded_tables:
            return None
        return config.target_of(o.schema)

    findings: list[Finding] = []
    targets: dict[Target, TargetResolution] = {}
    others: list[str] = []
    for t, able in abilities.items():
        r = _Resolver(graph, home, drops, t)
        r.run()
        findings += r.findings
        created = r.created()
        needs = sorted(set(r.extensions) | set((extension_needs or {}).get(t, ())))
        others += _ability_blockers(graph, t, able, created, needs)
        targets[t] = TargetResolution(
            copies=tuple(sorted(r.copies)),
            drops=tuple(sorted(o for o in drops if home(o) is t)),
            extensions=tuple(sorted(r.extensions)),
            unchecked=tuple(sorted(o for o in graph.unchecked if o in created)),
        )
    return Resolution(tuple(findings), targets, tuple(others))


class _Resolver:
    """The resolution for one target."""

    def __init__(self, graph: ObjectGraph, home: Any, drops: set[Obj], target: Target) -> None:
        self.graph, self.home, self.drops, self.t = graph, home, drops, target
        self.copies: dict[Obj, Obj] = {}
        self.extensions: set[str] = set()
        self.findings: list[Finding] = []
        self.own = [d for d in graph.dependents() if home(d) is target]

    def created(self) -> set[Obj]:
        g = self.graph
        own = set(self.own) | {
            o for o in g.untrusted | g.icu | g.unchecked if self.home(o) is self.t
        }
        return (own - self.drops) | set(self.copies)

    def run(self) -> None:
        queue = [d for d in self.own]
        while queue:
            dep = queue.pop(0)
            for e in self.graph.uses(dep):
                queue += self._edge(e, dropped=dep in self.drops and dep not in self.copies)

    def _edge(self, e: Edge, *, dropped: bool) -> list[Obj]:
        ref = e.referenced
        if ref.kind == "extension":
            if e.dependent in self.copies:
                self.extensions.add(ref.name)
            return []
        where_t = self.home(ref)
        if where_t is self.t:
            if ref in self.drops and not dropped:
                self._add(
                    e,
                    "same",
                    BLOCKED,
                    f"[resolve] drop leaves {ref.qualname!r} out: add {e.dependent.qualname!r}"
                    f" to it too, or keep {ref.qualname!r}",
                )
            return []
        where = where_t.value if where_t else "not copied"
        if dropped:
            self._add(e, where, DROPPED, f"left out of {self.t.value.upper()} ([resolve] drop)")
            return []
        if ref.kind in COPYABLE:
            shared = ref.kind == "sequence" and self._used_elsewhere(ref)
            if not shared:
                new = ref not in self.copies
                self.copies.setdefault(ref, e.dependent)
                self._add(e, where, RESOLVED, f"created on {self.t.value.upper()} too")
                return [ref] if new else []
            fix = (
                "both databases would hand out its values: route"
                f" {ref.schema} and {e.dependent.schema} to the same target"
            )
        else:
            fix = self._fix(e.dependent, ref)
        self._add(e, where, BLOCKED, fix)
        return []

    def _used_elsewhere(self, seq: Obj) -> bool:
        """True when objects of another target use ``seq`` too (or own it)."""
        owner = self.graph.owned_by.get(seq)
        if owner is not None and self.home(owner) not in (self.t, None):
            return True
        return any(
            e.referenced == seq and self.home(e.dependent) not in (self.t, None)
            for d in self.graph.dependents()
            for e in self.graph.uses(d)
        )

    def _fix(self, dep: Obj, ref: Obj) -> str:
        root = dep
        while root in self.copies:
            root = self.copies[root]
        if root.kind in DROPPABLE:
            return (
                f"add {root.qualname!r} to [resolve] drop in split.toml to leave it out of"
                f" {self.t.value.upper()}, or route {ref.schema} and {root.schema} together"
            )
        return f"route {ref.schema} and {root.schema} to the same target"

    def _add(self, e: Edge, where: str, status: str, action: str) -> None:
        where = self.t.value if where == "same" else where
        self.findings.append(
            Finding(e.dependent, e.referenced, e.how, self.t, where, status, action)
        )


def _ability_blockers(
    graph: ObjectGraph,
    t: Target,
    able: Abilities | None,
    created: set[Obj],
    extensions: list[str],
) -> list[str]:
    if able is None:
        return []
    name = t.value.upper()
    out: list[str] = []
    if not able.superuser:
        for fn in sorted(graph.untrusted & created):
            out.append(
                f"{fn.display} is in a language only a superuser may use, and {name}'s user"
                f" is not one: add {fn.qualname!r} to [resolve] drop in split.toml"
            )
    if not able.icu:
        for coll in sorted(graph.icu & created):
            out.append(
                f"{coll.display} uses the ICU provider, which {name}'s server was built without:"
                f" add {coll.qualname!r} to [resolve] drop in split.toml if nothing there uses it"
            )
    for ext in extensions:
        if ext in able.installed or (able.superuser and ext in able.available):
            continue
        if ext not in able.available:
            out.append(f"extension {ext!r} is needed on {name}, which does not offer it")
        elif not able.available[ext]:
            out.append(
                f"extension {ext!r} is needed on {name} and is not trusted, so {name}'s user"
                f" cannot create it: create it there first as a superuser"
                f" (CREATE EXTENSION {ext})"
            )
    return out

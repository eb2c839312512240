"""Each target's DDL, cut to its resolution: what ``pg_dump`` gave, less and more.

``pg_dump`` runs on the target's own schemas and the schemas its copies come from
(:attr:`dbsplit.resolve.TargetResolution.copy_schemas`); :func:`tailor` then keeps

- every entry of the target's own schemas, except the objects ``[resolve] drop`` leaves out
  (and their comments, and a dropped materialized view's indexes);
- of the other schemas, only the objects the target needs a copy of (pre-data only);

and creates functions with ``check_function_bodies = on``, except those the plan reported as
naming other objects in their bodies (:attr:`~dbsplit.resolve.TargetResolution.unchecked`),
which follow ``pg_dump``'s own choice, ``off``: it may create them before what they name.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import replace

from dbsplit.deps import Obj
from dbsplit.resolve import TargetResolution
from dbsplit.schema import Entry, SchemaScripts, pg_dump_name

#: ``pg_dump``'s entry type for each kind of object.
DUMP_TYPE = {
    "function": "FUNCTION",
    "procedure": "PROCEDURE",
    "aggregate": "AGGREGATE",
    "view": "VIEW",
    "materialized view": "MATERIALIZED VIEW",
    "type": "TYPE",
    "domain": "DOMAIN",
    "collation": "COLLATION",
    "text search configuration": "TEXT SEARCH CONFIGURATION",
    "text search dictionary": "TEXT SEARCH DICTIONARY",
    "sequence": "SEQUENCE",
    "trigger": "TRIGGER",
}
_BODIES_OFF = "SET check_function_bodies = false;"
_BODIES_ON = "SET check_function_bodies = true;"


def entry_key(obj: Obj) -> tuple[str, str, str]:
    """``(type, schema, name)`` of ``obj``'s entry in a ``pg_dump`` script."""
    name = f"{obj.table} {obj.name}" if obj.kind == "trigger" else obj.name
    return DUMP_TYPE.get(obj.kind, obj.kind.upper()), obj.schema, name


def _comment_names(obj: Obj) -> set[str]:
    dump_type = DUMP_TYPE.get(obj.kind, obj.kind.upper())
    if obj.kind == "trigger":
        return {f"TRIGGER {n} ON {t}" for n in _forms(obj.name) for t in _forms(obj.table)}
    return {f"{dump_type} {n}" for n in _forms(obj.name)}


def _forms(name: str) -> set[str]:
    return {name, pg_dump_name(name)}


def tailor(
    scripts: SchemaScripts, own_schemas: Sequence[str], res: TargetResolution
) -> SchemaScripts:
    """The target's DDL from a dump of its schemas and its copies' schemas."""
    own = set(own_schemas)
    copies = {entry_key(o) for o in res.copies}
    dropped = {entry_key(o) for o in res.drops}
    comments = {c for o in res.drops for c in _comment_names(o)}
    unchecked = {entry_key(o) for o in res.unchecked}
    dropped_relations = {
        pg_dump_name(o.qualname) for o in res.drops if o.kind == "materialized view"
    }
    views = {o.name for o in res.drops if o.kind in ("view", "materialized view")}

    def kept(e: Entry) -> bool:
        key = (e.type, e.schema, e.name)
        if e.schema not in own:
            return key in copies
        if key in dropped or (e.type == "COMMENT" and e.name in comments):
            return False
        # Comments on a dropped view's columns: "COLUMN view.column".
        return not (
            e.type == "COMMENT"
            and e.name.startswith("COLUMN ")
            and e.name[7:].rsplit(".", 1)[0] in views
        )

    def checked(e: Entry) -> Entry:
        if (e.type, e.schema, e.name) in unchecked:
            return replace(e, sql=f"{_BODIES_OFF}\n{e.sql}{_BODIES_ON}\n")
        return e

    return SchemaScripts(
        preamble=scripts.preamble.replace(_BODIES_OFF, _BODIES_ON),
        pre_data=tuple(checked(e) for e in scripts.pre_data if kept(e)),
        post_groups=tuple(
            (key, tuple(e for e in group if kept(e)))
            for key, group in scripts.post_groups
            if key not in dropped_relations and any(kept(e) for e in group)
        ),
        post_rest=tuple(e for e in scripts.post_rest if kept(e)),
    )


def dump_schemas(own: Iterable[str], res: TargetResolution) -> tuple[str, ...]:
    """The schemas to dump for a target: its own, then those its copies come from."""
    mine = tuple(own)
    return mine + tuple(s for s in res.copy_schemas if s not in mine)

"""Pure parts of the cross-target resolution: graphs in, findings and DDL out."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from dbsplit.config import SplitConfig, Target, load_config
from dbsplit.deps import Abilities, Edge, Obj, ObjectGraph
from dbsplit.errors import ConfigError
from dbsplit.plan import TargetState, build_plan
from dbsplit.resolve import resolve
from dbsplit.schema import Entry, SchemaScripts
from dbsplit.tailor import tailor
from tests.dbsplit.test_units import EMPTY, SOURCE

TABLE = Obj("table", "customer", "accounts")
ENUM = Obj("type", "workspace", "state")
FN = Obj("function", "workspace", "touch()")
READS = Obj("function", "workspace", "count_accounts()")
TRIGGER = Obj("trigger", "customer", "tg", "accounts")
VIEW = Obj("view", "workspace", "v")
SEQ = Obj("sequence", "workspace", "s")
DEFAULT = Obj("default", "customer", "n", "accounts")
JOBS_DEFAULT = Obj("default", "workspace", "id", "jobs")

GRAPH = ObjectGraph(
    edges=(
        Edge(TABLE, ENUM),
        Edge(TRIGGER, FN),
        Edge(FN, ENUM, "body"),
        Edge(VIEW, TABLE),
        Edge(READS, TABLE, "body"),
    ),
    droppable=frozenset({FN, READS, TRIGGER, VIEW}),
    unchecked=frozenset({FN, READS}),
)
CONFIG = SplitConfig(source_file="split.toml")
BOTH: dict[Target, Abilities | None] = {Target.PRIMARY: None, Target.DATA: None}


def _status(graph: ObjectGraph, config: SplitConfig) -> set[tuple[str, str, str]]:
    res = resolve(graph, config, BOTH)
    return {(f.dependent.qualname, f.referenced.qualname, f.status) for f in res.findings}


def test_copyable_objects_are_created_on_both_and_relations_block() -> None:
    res = resolve(GRAPH, CONFIG, BOTH)
    found = {(f.dependent.qualname, f.referenced.qualname, f.status) for f in res.findings}
    assert found == {
        ("customer.accounts", "workspace.state", "resolved"),
        ("customer.accounts.tg", "workspace.touch()", "resolved"),
        # The copied function's own dependency is resolved on PRIMARY too.
        ("workspace.touch()", "workspace.state", "resolved"),
        ("workspace.v", "customer.accounts", "blocked"),
        ("workspace.count_accounts()", "customer.accounts", "blocked"),
    }
    assert res.target(Target.PRIMARY).copies == (FN, ENUM)
    assert res.target(Target.PRIMARY).copy_schemas == ("workspace",)
    assert res.target(Target.PRIMARY).unchecked == (FN,)
    assert res.target(Target.DATA).unchecked == (READS, FN)
    assert [b.split(":")[0] for b in res.blockers] == [
        "function workspace.count_accounts() (DATA) uses table customer.accounts (PRIMARY)",
        "view workspace.v (DATA) uses table customer.accounts (PRIMARY)",
    ]
    assert "add 'workspace.v' to [resolve] drop" in res.blockers[1]


def test_drop_leaves_objects_out_and_a_kept_user_of_a_dropped_object_blocks() -> None:
    dropped = SplitConfig(source_file="split.toml", drop=("workspace.v", "workspace.touch"))
    found = _status(GRAPH, dropped)
    assert ("workspace.v", "customer.accounts", "dropped") in found
    # touch() is left out of DATA, but PRIMARY's trigger still gets its copy (it moves).
    assert ("customer.accounts.tg", "workspace.touch()", "resolved") in found
    res = resolve(GRAPH, dropped, BOTH)
    assert res.target(Target.DATA).drops == (FN, VIEW)
    assert res.target(Target.PRIMARY).copies == (FN, ENUM)

    users = ObjectGraph(
        edges=(Edge(Obj("trigger", "workspace", "tg", "jobs"), FN),),
        droppable=frozenset({FN}),
    )
    res = resolve(users, SplitConfig(source_file="f", drop=("workspace.touch()",)), BOTH)
    assert res.blockers == (
        "trigger workspace.jobs.tg (DATA) uses function workspace.touch() (DATA): [resolve]"
        " drop leaves 'workspace.touch()' out: add 'workspace.jobs.tg' to it too, or keep"
        " 'workspace.touch()'",
    )


def test_a_sequence_moves_unless_both_targets_use_it() -> None:
    alone = ObjectGraph(edges=(Edge(DEFAULT, SEQ),))
    assert _status(alone, CONFIG) == {("customer.accounts.n", "workspace.s", "resolved")}
    shared = ObjectGraph(edges=(Edge(DEFAULT, SEQ), Edge(JOBS_DEFAULT, SEQ)))
    assert _status(shared, CONFIG) == {("customer.accounts.n", "workspace.s", "blocked")}
    owned = ObjectGraph(
        edges=(Edge(DEFAULT, SEQ),), owned_by={SEQ: Obj("table", "workspace", "jobs")}
    )
    assert _status(owned, CONFIG) == {("customer.accounts.n", "workspace.s", "blocked")}


def test_abilities_block_what_the_target_user_cannot_create() -> None:
    icu = Obj("collation", "customer", "und")
    lang = Obj("function", "customer", "inc(integer)")
    graph = ObjectGraph(icu=frozenset({icu}), untrusted=frozenset({lang}))
    weak = Abilities(superuser=False, icu=False, available={"citext": True, "earth": False})
    res = resolve(
        graph,
        CONFIG,
        {Target.PRIMARY: weak},
        extension_needs={Target.PRIMARY: ["citext", "earth", "nosuch"]},
    )
    assert [b.split(",")[0] for b in res.blockers] == [
        "function customer.inc(integer) is in a language only a superuser may use",
        "collation customer.und uses the ICU provider",
        "extension 'earth' is needed on PRIMARY and is not trusted",
        "extension 'nosuch' is needed on PRIMARY",
    ]
    strong = Abilities(superuser=True, icu=True, available={"earth": False})
    assert resolve(graph, CONFIG, {Target.PRIMARY: strong}).blockers == ()


def test_an_unchecked_function_without_dependencies_is_still_reported() -> None:
    lonely = Obj("function", "workspace", "lonely()")
    graph = ObjectGraph(unchecked=frozenset({lonely}))
    assert resolve(graph, CONFIG, BOTH).target(Target.DATA).unchecked == (lonely,)
    assert resolve(graph, CONFIG, BOTH).target(Target.PRIMARY).unchecked == ()


def test_unknown_drop_entry_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match=r"resolve\.drop entry 'workspace\.nosuch' names no"):
        resolve(GRAPH, SplitConfig(source_file="split.toml", drop=("workspace.nosuch",)), BOTH)


def test_plan_carries_every_dependency_in_json_and_text() -> None:
    # The built-in routing (no split.toml): config and customer to PRIMARY.
    plan = build_plan(
        SOURCE, SplitConfig(), {Target.PRIMARY: EMPTY, Target.DATA: EMPTY}, graph=GRAPH
    )
    doc = plan.to_json()
    view = next(d for d in doc["dependencies"] if d["dependent"]["name"] == "workspace.v")
    assert view == {
        "kind": "view",
        "dependent": {"kind": "view", "name": "workspace.v"},
        "referenced": {"kind": "table", "name": "customer.accounts"},
        "found_by": "catalog",
        "target": "data",
        "referenced_on": "primary",
        "status": "blocked",
        "blocker": True,
        "action": "add 'workspace.v' to [resolve] drop in split.toml to leave it out of DATA,"
        " or route customer and workspace together",
    }
    assert doc["targets"]["primary"]["resolution"]["created_here_too"] == [
        {"kind": "function", "name": "workspace.touch()"},
        {"kind": "type", "name": "workspace.state"},
    ]
    assert doc["targets"]["primary"]["resolution"]["check_function_bodies_off"] == [
        "workspace.touch()"
    ]
    text = plan.render()
    assert "[BLOCKER] (view, by catalog) view workspace.v (DATA)" in text
    assert "created here too: workspace.touch(), workspace.state" in text
    # Targets whose tables the app's migrations made get nothing created: nothing to resolve.
    made = TargetState(catalog=SOURCE, tables_recorded=frozenset())
    app = build_plan(SOURCE, SplitConfig(), {Target.PRIMARY: made, Target.DATA: made}, graph=GRAPH)
    assert app.dependencies == ()


def test_tailor_keeps_own_entries_copies_and_checks_bodies_unless_reported() -> None:
    def e(type_: str, schema: str, name: str, text: str = "x;") -> Entry:
        return Entry(type_, name, schema, text + "\n")

    scripts = SchemaScripts(
        preamble="SET check_function_bodies = false;\n",
        pre_data=(
            e("TYPE", "workspace", "state"),
            e("FUNCTION", "workspace", "touch()", "CREATE FUNCTION touch"),
            e("FUNCTION", "workspace", "other()"),
            e("TABLE", "workspace", "jobs"),
            e("TABLE", "customer", "accounts"),
            e("VIEW", "customer", "gone"),
            e("COMMENT", "customer", "VIEW gone"),
            e("COMMENT", "customer", "COLUMN gone.a"),
        ),
        post_groups=(("workspace.jobs", (e("INDEX", "workspace", "jobs_idx"),)),),
        post_rest=(
            e("TRIGGER", "customer", "accounts tg"),
            e("TRIGGER", "customer", "accounts dropped_tg"),
            e("TRIGGER", "workspace", "jobs tg"),
        ),
    )
    res = resolve(GRAPH, SplitConfig(source_file="f"), {Target.PRIMARY: None}).target(
        Target.PRIMARY
    )
    res = type(res)(
        copies=res.copies,
        drops=(
            Obj("view", "customer", "gone"),
            Obj("trigger", "customer", "dropped_tg", "accounts"),
        ),
        unchecked=res.unchecked,
    )
    out = tailor(scripts, ["customer"], res)
    assert out.preamble == "SET check_function_bodies = true;\n"
    assert [(x.type, x.schema, x.name) for x in out.pre_data] == [
        ("TYPE", "workspace", "state"),
        ("FUNCTION", "workspace", "touch()"),
        ("TABLE", "customer", "accounts"),
    ]
    assert out.pre_data[1].sql == (
        "SET check_function_bodies = false;\nCREATE FUNCTION touch\n"
        "SET check_function_bodies = true;\n"
    )
    assert out.post_groups == ()
    assert [x.name for x in out.post_rest] == ["accounts tg"]


def test_resolve_drop_in_split_toml(tmp_path: Path) -> None:
    path = tmp_path / "split.toml"
    path.write_text('[resolve]\ndrop = ["a.v", "a.t.tg", "a.f(integer, a.t)"]\n')
    assert load_config(path).drop == ("a.v", "a.t.tg", "a.f(integer, a.t)")
    for text, message in (
        ("resolve = 1\n", "resolve must be a table, got 1"),
        ('[resolve]\ndrop = [""]\n', "resolve.drop must be a list of names, got ['']"),
        ('[resolve]\ndrop = ["a.b.c.d"]\n', "resolve.drop entry 'a.b.c.d' is not schema.name"),
        ('[resolve]\nkeep = ["a.b"]\n', "unknown key 'resolve.keep'"),
    ):
        path.write_text(text)
        with pytest.raises(ConfigError, match=re.escape(message)):
            load_config(path)

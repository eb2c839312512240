"""Foreign keys are added in groups that share no table, so groups can run at once."""

from __future__ import annotations

from dbsplit.catalog import ForeignKey
from dbsplit.finish import fk_groups


def fk(table: str, ref: str, name: str = "") -> ForeignKey:
    s, t = table.split(".")
    rs, rt = ref.split(".")
    return ForeignKey(
        s, t, name or f"{t}_{rt}_fkey", rs, rt, f"FOREIGN KEY (x) REFERENCES {ref}(id)"
    )


def tables(group: list[ForeignKey]) -> set[str]:
    return {fk.qualtable for fk in group} | {fk.qualref for fk in group}


def test_keys_sharing_a_table_are_in_one_group_and_groups_share_no_table() -> None:
    keys = [
        fk("reference.delivery_matrix", "reference.services"),
        fk("workspace.import_rows", "workspace.imports"),
        fk("reference.services", "reference.carriers"),
        fk("integration.events", "integration.runs"),
        fk("customer.contacts", "customer.customers"),
        fk("customer.addresses", "customer.customers"),
    ]
    groups = fk_groups(keys)
    assert sorted(len(g) for g in groups) == [1, 1, 2, 2]
    assert sum(len(g) for g in groups) == len(keys)
    for i, a in enumerate(groups):
        for b in groups[i + 1 :]:
            assert not tables(a) & tables(b)
    reference = next(g for g in groups if "reference.services" in tables(g))
    # the given order is kept within a group
    assert [k.table for k in reference] == ["delivery_matrix", "services"]


def test_cycles_and_self_references_stay_together() -> None:
    keys = [
        fk("a.x", "a.y"),
        fk("a.y", "a.x"),
        fk("a.z", "a.z"),
        fk("b.p", "b.q"),
        fk("b.r", "b.q"),
        fk("b.r", "a.z"),
    ]
    groups = fk_groups(keys)
    assert [tables(g) for g in groups] == [{"a.z", "b.p", "b.q", "b.r"}, {"a.x", "a.y"}]


def test_no_keys_no_groups() -> None:
    assert fk_groups([]) == []

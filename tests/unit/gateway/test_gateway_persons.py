"""Stable person ids across runs (pure)."""

from __future__ import annotations

from itertools import count

from gateway.persons import assign


def _fresh():
    n = count(100)
    return lambda: f"P{next(n)}"


def test_first_run_gives_every_cluster_a_new_id() -> None:
    out = assign([["a", "b"], ["c"]], {}, _fresh())
    assert out.person_ids == ["P100", "P101"] and out.new == ["P100", "P101"]
    assert not out.retired and not out.merges and not out.splits


def test_ids_survive_added_changed_and_removed_records() -> None:
    previous = {"a": "P1", "b": "P1", "c": "P2", "d": "P3"}
    out = assign([["a", "b", "e"], ["c"], ["f"]], previous, _fresh())
    assert out.person_ids == ["P1", "P2", "P100"]
    assert out.new == ["P100"] and out.retired == ["P3"]
    assert out.person_ids == assign([["f"], ["c"], ["a", "b", "e"]], previous, _fresh()).person_ids[::-1]


def test_merge_keeps_the_larger_share_and_records_it() -> None:
    previous = {"a": "P1", "b": "P1", "c": "P2"}
    out = assign([["a", "b", "c"]], previous, _fresh())
    assert out.person_ids == ["P1"]
    assert out.merges == [("P1", ["P2"])] and out.retired == ["P2"]


def test_split_keeps_the_id_on_the_larger_share() -> None:
    previous = {"a": "P1", "b": "P1", "c": "P1"}
    out = assign([["c"], ["a", "b"]], previous, _fresh())
    assert out.person_ids == ["P100", "P1"]
    assert out.splits == [("P1", ["P100"])] and not out.retired


def test_ties_go_to_the_smaller_id() -> None:
    out = assign([["a", "b"]], {"a": "P2", "b": "P1"}, _fresh())
    assert out.person_ids == ["P1"] and out.merges == [("P1", ["P2"])]

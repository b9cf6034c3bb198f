"""The harness's check of tsunagu-jp/2's blocking (``bench.attack.blocking_attack``): band keys of the view LSH."""

from __future__ import annotations

import dataclasses

import numpy as np

from bench import attack as ba
from bench import linkage as b


def _sides(children: int = 600, duplicate: bool = False):
    schema, _, _ = ba.variants()["tsunagu-jp/2"]
    victim = b.town_dataset(children, 21).sources["residents"]
    if duplicate:  # every child twice, under another record id: identical views, identical band keys
        victim = victim + [dataclasses.replace(r, record_id=r.record_id + "-copy") for r in victim]
    public = b.town_dataset(children, 22).sources["residents"]
    return schema, ba._side(victim, ba.VICTIM_SECRET, schema), ba._side(public, ba.ATTACKER_SECRET, schema)


def test_band_keys_give_no_names_and_no_dates_on_a_register() -> None:
    schema, victim, public = _sides()
    found = {(f.attack, f.field): f for f in ba.blocking_attack(victim, public, schema, 20, np.random.default_rng(7))}
    assert len(found) == 5
    for (attack, _fld), f in found.items():
        assert 0.0 <= f.precision <= 1.0
        assert f.recovered <= 0.01, attack  # chance level
    # /1 has no view LSH: its tokens are attacked by date_attack.
    v1, _, _ = ba.variants()["tsunagu-jp/1"]
    assert ba.blocking_attack(ba._side(victim.canonical[:50], ba.VICTIM_SECRET, v1), public, v1, 20,
                              np.random.default_rng(7)) == []


def test_the_date_check_finds_records_that_share_band_keys_with_a_known_child() -> None:
    # Identical records share every band key: the attacker then reads the known children's copies.
    schema, victim, public = _sides(300, duplicate=True)
    found = {f.attack: f for f in ba.blocking_attack(victim, public, schema, 20, np.random.default_rng(7))}
    date = found["date from view-LSH band keys (+ 20 known)"]
    n = len(victim.dates)
    assert date.recovered * n >= 15  # about one copy per known child (a few known children may be copies of each other)
    assert date.precision > 0.5

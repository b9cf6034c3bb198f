"""The synthetic stand-in agent gives a record the token a real agent gives it (one derivation, ``agents.core.token``)."""

from __future__ import annotations

from pathlib import Path

from agents.core.token import RecordTokeniser
from synthetic.agents import synthetic_agents
from keys.submission import read_submission

ROW = {"record_id": "S-000123", "family_name": "山田", "given_name": "花子", "family_name_kana": "ヤマダ",
       "given_name_kana": "ハナコ", "birth_date": "2016-04-01", "sex": "2", "postal_code": "310-0011", "address": "水戸市三の丸1-1"}


def test_synthetic_tokens_are_the_agents_tokens(tmp_path: Path) -> None:
    agent = synthetic_agents(["school"], tmp_path)["school"]
    records = read_submission(agent.submit("school", [ROW])).records
    assert [r.token for r in records] == [RecordTokeniser(agent.linkage.secret, "school").token("S-000123")]
    # one key per source: the same record id under another source is another token
    assert records[0].token != RecordTokeniser(agent.linkage.secret, "residents").token("S-000123")

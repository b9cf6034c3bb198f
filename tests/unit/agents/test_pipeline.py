"""A whole agent run: snapshots, sealing, policy, row reports, and delivery through the outbox (push and bundle)."""

from __future__ import annotations

import csv
import json
import random
import shutil
from pathlib import Path

import httpx
import pytest

from agents.core.config import load_config
from agents.core.deliver import DeliveryConfigError, Pusher
from agents.core.pipeline import check, run
from agents.core.token import RecordTokeniser
from keys import custody, enrolment, seal
from keys.submission import read_submission
from tests.support.server import free_port
from tests.support.agents import AGENT_PASSPHRASE, PRESETS, Municipality, enrol_agent, write_agent_toml

SCHOOL_MAPPING = PRESETS / "edu_network" / "mappings" / "school.toml"
SCHOOL_POLICY = PRESETS / "edu_network" / "policy.toml"
SCHOOL_SAMPLE = PRESETS / "edu_network" / "samples" / "school.csv"


@pytest.fixture
def edu(municipality: Municipality, tmp_path: Path) -> Path:
    home = tmp_path / "edu"
    home.mkdir()
    enrol_agent(municipality, home, "edu-1")
    shutil.copy(SCHOOL_SAMPLE, home / "school.csv")
    return home


class RecordingGateway:
    """An httpx transport that answers like the gateway's submission endpoint, for unit tests of delivery."""

    def __init__(self, answers: list[int] | None = None) -> None:
        self.answers = list(answers or [])
        self.stored: dict[tuple[str, int], bytes] = {}
        self.calls = 0

    def __call__(self, request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/submissions/state"):
            # Answers like a gateway without the state route (the agent then delivers without reconciling);
            # reconciling with the real gateway is covered in tests/integration/agents/test_delivery_state.py.
            return httpx.Response(404, json={"error": "not_found", "detail": "そのような URL はありません。"})
        self.calls += 1
        if self.answers:
            code = self.answers.pop(0)
            if code == 0:
                raise httpx.ConnectError("connection refused", request=request)
            if code != 200:
                return httpx.Response(code, json={"error": "refused", "detail": "テスト用の拒否"})
        body = request.read()
        manifest = read_submission(body).manifest
        key = (manifest["agent_id"], manifest["sequence"])
        if key in self.stored:
            status = "duplicate" if self.stored[key] == body else None
            if status is None:
                return httpx.Response(409, json={"error": "replay", "detail": "連番が使用済みです"})
        else:
            self.stored[key] = body
            status = "accepted"
        return httpx.Response(200, json={"status": status, "submission_id": f"s{len(self.stored)}",
                                         "accepted": manifest["record_count"], "refused": [], "sequence": manifest["sequence"]})


def config_for(home: Path, gateway: str | None = None):
    write_agent_toml(home, "edu-1", "edu", [(SCHOOL_MAPPING, home / "school.csv")], gateway=gateway, policy=SCHOOL_POLICY)
    return load_config(home / "agent.toml")


def school_rows(path: Path) -> tuple[list[str], list[list[str]]]:
    with path.open(encoding="cp932", newline="") as fh:
        rows = list(csv.reader(fh))
    return rows[0], rows[1:]


def test_record_token_is_stable_keyed_and_per_source() -> None:
    a, b = RecordTokeniser(b"k" * 32, "school"), RecordTokeniser(b"k" * 32, "school")
    assert a.token("S0000001") == b.token("S0000001") and len(a.token("S0000001")) == 32
    assert a.token("S0000001") != RecordTokeniser(b"k" * 32, "residents").token("S0000001")
    assert a.token("S0000001") != RecordTokeniser(b"j" * 32, "school").token("S0000001")


def test_bundle_is_a_signed_snapshot_with_sealed_identities_only(municipality: Municipality, edu: Path, tmp_path: Path) -> None:
    config = config_for(edu)
    result = run(config, AGENT_PASSPHRASE, bundle_out=tmp_path / "bundle")
    assert result.ok and result.outbox == 0
    _, rows = school_rows(edu / "school.csv")
    bundle = next((tmp_path / "bundle").glob("edu-1-0000000001-school.jsonl"))
    data = bundle.read_bytes()
    data.decode("utf-8")  # plain UTF-8 text
    submission = read_submission(data)
    submission.verify(enrolment.load_agent_keys(edu, AGENT_PASSPHRASE).signing_key.public_key())
    m = submission.manifest
    assert (m["agent_id"], m["network"], m["source"], m["mode"], m["sequence"]) == ("edu-1", "edu", "school", "snapshot", 1)
    assert m["escrow_key_id"] == municipality.ring.escrow_public().key_id
    assert m["linkage_key_id"] == municipality.ring.current_linkage_key_id
    assert len(submission.records) == len(rows)
    assert set().union(*(r.attributes for r in submission.records)) <= {"absence_days", "school_aid", "nurse_visits", "school_checkup"}
    text = data.decode("utf-8")
    for row in rows[:10]:
        for value in (row[0], row[3], row[4]):  # 学籍番号, 氏名, ふりがな never in plaintext
            assert value not in text
    escrow = custody.unseal(municipality.home / "keys" / "escrow-private.json",
                            [custody.ShareInput(p, f"custodian-pass-{i}") for i, p in
                             enumerate(sorted((municipality.home / "shares").glob("*/custodian-*.json")), start=1)])
    header = seal.BatchHeader.from_json(m["seal_header"])
    token = RecordTokeniser(enrolment.load_linkage_secret(edu, AGENT_PASSPHRASE).secret, "school").token(rows[0][0])
    first = next(r for r in submission.records if r.token == token)
    identity = seal.open_record(seal.derive_record_key(escrow, header, first.token), header, first.sealed)
    assert identity["record_id"] == rows[0][0] and identity["full_name"] == rows[0][3]
    status = json.loads((edu / "status.json").read_text(encoding="utf-8"))
    assert status["result"] == "ok" and status["sources"][0]["encoded"] == len(rows)
    # No side channel in the order: the records are in neither the file's order nor the order of names
    # (from which a curious gateway read family names), and every sealed identity has one padded size.
    assert len(rows) >= 20  # so that a random order equal to either by chance is out of the question
    tokeniser = RecordTokeniser(enrolment.load_linkage_secret(edu, AGENT_PASSPHRASE).secret, "school")
    file_order = [tokeniser.token(r[0]) for r in rows]
    name_order = [tokeniser.token(r[0]) for r in sorted(rows, key=lambda r: (r[3], r[0]))]
    sent = [r.token for r in submission.records]
    assert sorted(sent) == sorted(file_order) and sent != file_order and sent != name_order
    assert len({len(r.sealed) for r in submission.records}) == 1


def test_ten_percent_garbage_still_delivers_the_good_rows(edu: Path, tmp_path: Path) -> None:
    header, rows = school_rows(edu / "school.csv")
    rng = random.Random(4)
    bad = set(rng.sample(range(len(rows)), max(4, len(rows) // 10)))
    kinds = ["date", "formula", "duplicate", "sex"]
    expected_rows = set()
    for n, i in enumerate(sorted(bad)):
        kind = kinds[n % len(kinds)]
        if kind != "duplicate":
            expected_rows.add(i + 2)  # the header is row 1
        if kind == "date":
            rows[i][5] = "不明"
        elif kind == "formula":
            rows[i][8] = "=1+2"
        elif kind == "duplicate":
            rows[i][0] = rows[(i + 1) % len(rows)][0]
        else:
            rows[i][6] = "?"
    with (edu / "school.csv").open("w", encoding="cp932", newline="") as fh:
        csv.writer(fh).writerows([header, *rows])
    result = run(config_for(edu), AGENT_PASSPHRASE, bundle_out=tmp_path / "bundle")
    source = result.sources[0]
    # An unreadable birth date keeps its row (sent without the date, listed in the report): not a "row not sent".
    dates = sum(1 for n in range(len(bad)) if kinds[n % len(kinds)] == "date")
    assert source.status == "sent" and source.problems >= len(bad) - 1 - dates
    assert source.encoded + source.problems == len(rows)
    submission = read_submission(next((tmp_path / "bundle").glob("*.jsonl")).read_bytes())
    assert len(submission.records) == source.encoded
    with open(source.report, encoding="utf-8-sig", newline="") as fh:
        report = list(csv.DictReader(fh))
    kept = [r for r in report if "生年月日なしで送ります" in r["理由"]]
    assert len(kept) == dates and len(report) - len(kept) == source.problems
    assert {r["列"] for r in report} >= {"生年月日", "住所", "学籍番号", "性別"}
    assert {int(r["行"]) for r in report} >= expected_rows
    assert all(r["理由"] for r in report)


def test_check_sends_nothing_and_says_what_would_be_refused(edu: Path, tmp_path: Path) -> None:
    config = config_for(edu, gateway=f"http://127.0.0.1:{free_port()}")
    result = check(config)
    source = result.sources[0]
    assert source.status == "checked" and source.encoded == source.rows and source.ignored_columns == ["学年", "組"]
    assert not (edu / "outbox").exists() and not (edu / "state" / "sequence.json").exists()


def test_policy_refuses_attributes_the_network_may_not_send(municipality: Municipality, tmp_path: Path) -> None:
    home = tmp_path / "internet"
    home.mkdir()
    enrol_agent(municipality, home, "internet-1")
    sample = PRESETS / "internet_network" / "samples" / "npo.csv"
    write_agent_toml(home, "internet-1", "internet", [(PRESETS / "internet_network" / "mappings" / "npo.toml", sample)],
                     policy=PRESETS / "internet_network" / "policy.toml")
    result = run(load_config(home / "agent.toml"), AGENT_PASSPHRASE, bundle_out=tmp_path / "bundle")
    assert result.sources[0].attributes_sent == [] and "visits" in result.sources[0].attributes_refused
    submission = read_submission(next((tmp_path / "bundle").glob("*.jsonl")).read_bytes())
    assert all(r.attributes == {} for r in submission.records)


def test_gateway_down_keeps_the_submission_and_the_next_run_resends_the_same_bytes(edu: Path) -> None:
    config = config_for(edu, gateway=f"http://127.0.0.1:{free_port()}")  # nothing listens there
    first = run(config, AGENT_PASSPHRASE)
    assert not first.ok and first.outbox == 1 and first.deliveries[0].status == "pending"
    assert "接続できません" in first.deliveries[0].message
    waiting = (edu / "outbox" / "0000000001.jsonl").read_bytes()
    assert json.loads((edu / "status.json").read_text(encoding="utf-8"))["result"] == "failed"

    gateway = RecordingGateway()
    second = run(config, AGENT_PASSPHRASE, transport=httpx.MockTransport(gateway))
    assert second.ok and second.sources[0].status == "unchanged"
    assert gateway.stored == {("edu-1", 1): waiting}
    assert (edu / "sent" / "0000000001.json").exists() and not (edu / "outbox" / "0000000001.jsonl").exists()

    third = run(config, AGENT_PASSPHRASE, transport=httpx.MockTransport(gateway))
    assert third.ok and third.deliveries == [] and gateway.calls == 1


def test_answer_lost_after_the_gateway_stored_it_is_not_stored_twice(edu: Path) -> None:
    config = config_for(edu, gateway="http://127.0.0.1:9")
    gateway = RecordingGateway()

    def lose_answer(request: httpx.Request) -> httpx.Response:
        gateway(request)
        raise httpx.ReadTimeout("timed out", request=request)

    first = run(config, AGENT_PASSPHRASE, transport=httpx.MockTransport(lose_answer), sleep=lambda s: None)
    assert first.outbox == 1 and len(gateway.stored) == 1
    second = run(config, AGENT_PASSPHRASE, transport=httpx.MockTransport(gateway))
    assert second.ok and second.deliveries[0].response["status"] == "duplicate" and len(gateway.stored) == 1


def test_refusal_is_kept_and_reported_then_a_new_snapshot_is_made(edu: Path) -> None:
    config = config_for(edu, gateway="http://127.0.0.1:9")
    gateway = RecordingGateway(answers=[403])
    result = run(config, AGENT_PASSPHRASE, transport=httpx.MockTransport(gateway))
    assert not result.ok and result.deliveries[0].status == "refused" and "403" in result.deliveries[0].message
    assert "テスト用の拒否" in result.deliveries[0].message
    assert (edu / "refused" / "0000000001.jsonl").exists() and result.outbox == 0
    note = json.loads((edu / "refused" / "0000000001.json").read_text(encoding="utf-8"))
    assert note["http_status"] == 403 and note["error"]["detail"] == "テスト用の拒否"
    again = run(config, AGENT_PASSPHRASE, transport=httpx.MockTransport(gateway))
    assert again.ok and again.sources[0].sequence == 2 and list(gateway.stored) == [("edu-1", 2)]


def test_busy_gateway_is_retried_with_exponential_backoff(edu: Path) -> None:
    config = config_for(edu, gateway="http://127.0.0.1:9")
    waits: list[float] = []
    write_agent_toml(edu, "edu-1", "edu", [(SCHOOL_MAPPING, edu / "school.csv")], gateway="http://127.0.0.1:9", policy=SCHOOL_POLICY,
                     extra_gateway="attempts = 4\nbackoff_seconds = 0.5\n")
    config = load_config(edu / "agent.toml")
    gateway = RecordingGateway(answers=[503, 0, 503])
    result = run(config, AGENT_PASSPHRASE, transport=httpx.MockTransport(gateway), sleep=waits.append)
    assert result.ok and waits == [0.5, 1.0, 2.0] and len(gateway.stored) == 1


def test_sequence_is_monotonic_and_force_makes_a_new_snapshot(edu: Path, tmp_path: Path) -> None:
    config = config_for(edu)
    assert run(config, AGENT_PASSPHRASE, bundle_out=tmp_path / "b").sources[0].sequence == 1
    assert run(config, AGENT_PASSPHRASE, bundle_out=tmp_path / "b").sources[0].status == "unchanged"
    assert run(config, AGENT_PASSPHRASE, bundle_out=tmp_path / "b", force=True).sources[0].sequence == 2
    (edu / "school.csv").write_bytes((edu / "school.csv").read_bytes() + "S9999999,,,山田　一,やまだ　はじめ,H27.4.2,男,,,0,0,0,受診\r\n".encode("cp932"))
    assert run(config, AGENT_PASSPHRASE, bundle_out=tmp_path / "b").sources[0].sequence == 3
    assert sorted(p.name for p in (tmp_path / "b").glob("*.jsonl")) == [f"edu-1-000000000{i}-school.jsonl" for i in (1, 2, 3)]


def test_plain_http_only_to_loopback(edu: Path) -> None:
    write_agent_toml(edu, "edu-1", "edu", [(SCHOOL_MAPPING, edu / "school.csv")], gateway="http://gateway.example.lg.jp:8080")
    with pytest.raises(DeliveryConfigError, match="https://"):
        Pusher(load_config(edu / "agent.toml").gateway)


def test_a_source_that_fails_does_not_stop_the_others(municipality: Municipality, tmp_path: Path) -> None:
    home = tmp_path / "mynumber"
    home.mkdir()
    enrol_agent(municipality, home, "mynumber-1")
    preset = PRESETS / "mynumber_network"
    write_agent_toml(home, "mynumber-1", "mynumber",
                     [(preset / "mappings" / "residents.toml", home / "missing.csv"),
                      (preset / "mappings" / "maternal.toml", preset / "samples" / "maternal.tsv")],
                     policy=preset / "policy.toml", gaiji=preset / "samples" / "gaiji.toml")
    result = run(load_config(home / "agent.toml"), AGENT_PASSPHRASE, bundle_out=tmp_path / "b")
    assert [s.status for s in result.sources] == ["failed", "sent"] and not result.ok
    assert "ファイルが見つかりません" in result.sources[0].message


def test_a_file_with_no_usable_row_sends_no_snapshot(edu: Path, tmp_path: Path) -> None:
    header, rows = school_rows(edu / "school.csv")
    for row in rows:
        row[8] = "=1+2"  # a formula in every row: no row can be sent (an unreadable date alone would keep the row)
    with (edu / "school.csv").open("w", encoding="cp932", newline="") as fh:
        csv.writer(fh).writerows([header, *rows])
    result = run(config_for(edu), AGENT_PASSPHRASE, bundle_out=tmp_path / "bundle")
    source = result.sources[0]
    assert source.status == "failed" and source.problems == len(rows) and "1 行もありません" in source.message
    assert not result.ok and not list((tmp_path / "bundle").glob("*.jsonl")) and not (edu / "state" / "sequence.json").exists()


def test_a_source_the_policy_does_not_place_on_this_network_is_not_sent(edu: Path, tmp_path: Path) -> None:
    write_agent_toml(edu, "edu-1", "internet", [(SCHOOL_MAPPING, edu / "school.csv")], policy=SCHOOL_POLICY)
    result = run(load_config(edu / "agent.toml"), AGENT_PASSPHRASE, bundle_out=tmp_path / "b")
    assert result.sources[0].status == "failed" and "認められていません" in result.sources[0].message
    assert not list((tmp_path / "b").glob("*.jsonl"))


def test_a_gateway_5xx_reason_and_request_id_are_shown_and_the_submission_waits(edu: Path) -> None:
    config = config_for(edu, gateway="http://127.0.0.1:9")

    def down(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/submissions/state"):
            return httpx.Response(404, json={"error": "not_found", "detail": "そのような URL はありません。"})
        return httpx.Response(503, json={"error": "database_unavailable", "request_id": "abc123def456",
                                          "detail": "ゲートウェイのデータベースに接続できません。"})

    result = run(config, AGENT_PASSPHRASE, transport=httpx.MockTransport(down), sleep=lambda s: None)
    assert not result.ok and result.outbox == 1 and result.deliveries[0].status == "pending"
    message = result.deliveries[0].message
    assert "データベースに接続できません" in message and "問い合わせ番号 abc123def456" in message
    status = json.loads((edu / "status.json").read_text(encoding="utf-8"))
    assert status["result"] == "failed" and "abc123def456" in status["deliveries"][0]["message"]


def test_an_unexpected_error_is_recorded_in_status_json(edu: Path) -> None:
    config = config_for(edu, gateway="http://127.0.0.1:9")

    def broken(request: httpx.Request) -> httpx.Response:
        raise RuntimeError("a bug in the transport")

    (edu / "status.json").write_text('{"result": "ok"}', encoding="utf-8")
    with pytest.raises(RuntimeError):
        run(config, AGENT_PASSPHRASE, transport=httpx.MockTransport(broken), sleep=lambda s: None)
    status = json.loads((edu / "status.json").read_text(encoding="utf-8"))
    assert status["result"] == "failed" and "予期しないエラー" in status["message"] and "RuntimeError" in status["message"]


def test_a_salvaged_or_dropped_birth_date_is_sealed_as_the_department_wrote_it(municipality: Municipality, edu: Path,
                                                                              tmp_path: Path) -> None:
    # The record links on the usable parts of an impossible date (and without a future one); the escrow keeps what was written.
    header, rows = school_rows(edu / "school.csv")
    column = header.index("生年月日")
    rows[0][column], rows[1][column], rows[2][column] = "2015-02-30", "2099-01-01", "2015-02-01"
    with (edu / "school.csv").open("w", encoding="cp932", newline="") as fh:
        csv.writer(fh).writerows([header, *rows])
    result = run(config_for(edu), AGENT_PASSPHRASE, bundle_out=tmp_path / "bundle")
    assert result.ok and result.sources[0].encoded == len(rows)
    with open(result.sources[0].report, encoding="utf-8-sig", newline="") as fh:
        assert sorted(int(r["行"]) for r in csv.DictReader(fh) if r["列"] == "生年月日") == [2, 3]
    submission = read_submission(next((tmp_path / "bundle").glob("*.jsonl")).read_bytes())
    escrow = custody.unseal(municipality.home / "keys" / "escrow-private.json",
                            [custody.ShareInput(p, f"custodian-pass-{i}") for i, p in
                             enumerate(sorted((municipality.home / "shares").glob("*/custodian-*.json")), start=1)])
    seal_header = seal.BatchHeader.from_json(submission.manifest["seal_header"])
    tokeniser = RecordTokeniser(enrolment.load_linkage_secret(edu, AGENT_PASSPHRASE).secret, "school")
    by_token = {r.token: r for r in submission.records}
    impossible, future, valid = (by_token[tokeniser.token(rows[i][0])] for i in range(3))

    def sealed(record) -> dict:
        return seal.open_record(seal.derive_record_key(escrow, seal_header, record.token), seal_header, record.sealed)

    assert sealed(impossible)["birth_date"] == "2015-02-30"
    assert sealed(future)["birth_date"] == "2099-01-01"
    assert sealed(valid)["birth_date"] == "2015-02-01"
    # The linkage fields: the impossible date keeps year and month but no day, the future one nothing, the valid one all three.
    from linkage.encode import Present

    def parts(record) -> list[bool]:
        return [bool(record.present & p) for p in (Present.BIRTH_YEAR, Present.BIRTH_MONTH, Present.BIRTH_DAY)]

    assert parts(valid) == [True, True, True]
    assert parts(impossible) == [True, True, False]
    assert parts(future) == [False, False, False]

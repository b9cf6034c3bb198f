"""policy: loading, validation and decisions."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

import policy
from policy import PolicyError, default_policy, load_policy

DEFAULT_TEXT = (Path(policy.__file__).parent / "default_policy.toml").read_text(encoding="utf-8")


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "policy.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_default_policy_loads_and_names_the_five_roles() -> None:
    p = default_policy()
    assert {"admin", "caseworker", "approver", "custodian", "auditor"} <= set(p.roles)
    assert p.municipality_code == "000000"


def test_load_policy_reads_a_file(tmp_path: Path) -> None:
    p = load_policy(_write(tmp_path, DEFAULT_TEXT))
    assert p.document == default_policy().document
    assert str(tmp_path) in p.origin


@pytest.mark.parametrize(
    ("network", "source", "attribute", "allowed", "needle"),
    [
        ("edu", "school", "absence_days", True, "送信できます"),
        ("edu", "school", "checkup_missed", False, "checkup_missed"),
        ("edu", "residents", "moved_in_from", False, "residents"),
        ("lgwan", "school", "absence_days", False, "lgwan"),
        ("mynumber", "residents", "moved_in_from", True, "送信できます"),
        ("mynumber", "residents", "birth_date", False, "本人特定項目"),
        ("internet", "npo", "school_aid", False, "school_aid"),
    ],
)
def test_may_send(network: str, source: str, attribute: str, allowed: bool, needle: str) -> None:
    d = default_policy().may_send(network, source, attribute)
    assert d.allowed is allowed and bool(d) is allowed
    assert needle in d.reason


@pytest.mark.parametrize("name", ["個人番号", "マイナンバー", "my_number", "mynumber", "individual_number",
                                  "MyNumber", "ＭＹ＿ＮＵＭＢＥＲ", "my-number", "child_my_number", "保護者の個人番号"])
def test_my_number_is_never_sendable(name: str) -> None:
    d = default_policy().may_send("mynumber", "residents", name)
    assert not d.allowed and "個人番号" in d.reason


@pytest.mark.parametrize("name", ["個人番号", "my_number", "individual_number", "family_name", "address", "*"])
def test_a_file_allowing_my_number_or_identity_is_refused(tmp_path: Path, name: str) -> None:
    allowed = 'attributes = ["absence_days", "school_aid", "nurse_visits", "school_checkup"]'
    assert allowed in DEFAULT_TEXT
    text = DEFAULT_TEXT.replace(allowed, f'attributes = ["absence_days", "{name}"]')
    with pytest.raises(PolicyError) as err:
        load_policy(_write(tmp_path, text))
    assert "networks.edu.sources.school.attributes" in str(err.value)


@given(st.text(max_size=8), st.text(max_size=8), st.sampled_from(["個人番号", "マイナンバー", "mynumber", "my_number", "individual_number"]))
def test_my_number_inside_any_name_is_refused(prefix: str, suffix: str, core: str) -> None:
    assert not default_policy().may_send("edu", "school", prefix + core + suffix).allowed


def test_may_checks_role_and_permission() -> None:
    p = default_policy()
    assert p.may("caseworker", "persons.read").allowed
    d = p.may("auditor", "persons.read")
    assert not d.allowed and "監査担当" in d.reason
    assert not p.may("nobody", "persons.read").allowed
    assert "定義されていません" in p.may("admin", "launch.missiles").reason


def test_may_see_filters_attributes_by_role() -> None:
    p = default_policy()
    assert p.may_see("caseworker", "anything").allowed
    assert p.may_see("analyst", "absence_days").allowed
    assert not p.may_see("auditor", "absence_days").allowed


def test_purpose_and_legal_basis() -> None:
    p = default_policy()
    early = p.purpose("early_support")
    assert early.name == "early_support" and early.legal_basis == "61" and "第61条" in early.legal_basis_label
    assert early.approvals_required >= 1 and early.max_records_per_request >= 1
    urgent = p.purpose("child_protection")
    assert urgent.valid_until is not None
    assert p.may_use_purpose("child_protection", urgent.valid_until).allowed
    assert not p.may_use_purpose("child_protection", urgent.valid_until + dt.timedelta(days=1)).allowed
    with pytest.raises(PolicyError, match="利用目的「marketing」"):
        p.purpose("marketing")


def test_temporary_use_needs_an_end_date(tmp_path: Path) -> None:
    text = DEFAULT_TEXT.replace("valid_until = 2027-03-31\n", "")
    with pytest.raises(PolicyError, match="valid_until"):
        load_policy(_write(tmp_path, text))


def test_retention_days() -> None:
    p = default_policy()
    assert p.retention_days("npo") == 365
    assert p.retention_days("unknown") is None


@pytest.mark.parametrize(
    ("old", "new", "needle"),
    [
        ('"users.manage"', '"users.manage", "root"', "未知の権限 root"),
        ("[networks.edu]", "[networks.lgwan]\nlabel='x'\n[networks.edu]", "未知のネットワーク lgwan"),
        ("[networks.internet.sources.npo]", "[networks.internet.sources.school]", "school"),
        ('code = "000000"', 'code = "12"', "municipality.code"),
        ("version = 1", "version = 2", "version"),
        ("retention_days = 365", "retention_days = 0", "retention_days"),
        ("approvals_required = 1", "aprovals_required = 1", "未知の項目"),
    ],
)
def test_invalid_files_say_what_and_where(tmp_path: Path, old: str, new: str, needle: str) -> None:
    assert old in DEFAULT_TEXT
    with pytest.raises(PolicyError) as err:
        load_policy(_write(tmp_path, DEFAULT_TEXT.replace(old, new, 1)))
    assert needle in str(err.value)


def test_unreadable_files(tmp_path: Path) -> None:
    with pytest.raises(PolicyError, match="ありません"):
        load_policy(tmp_path / "missing.toml")
    with pytest.raises(PolicyError, match="TOML"):
        load_policy(_write(tmp_path, "version = = 1"))
    bad = tmp_path / "cp932.toml"
    bad.write_bytes("名前 = '見本'".encode("cp932"))
    with pytest.raises(PolicyError, match="UTF-8"):
        load_policy(bad)


def test_allowed_attributes_and_network_of() -> None:
    p = default_policy()
    assert p.allowed_attributes("edu", "school") == ("absence_days", "school_aid", "nurse_visits", "school_checkup")
    assert p.allowed_attributes("edu", "npo") == ()
    assert p.network_of("maternal") == "mynumber"
    assert p.network_of("x") is None

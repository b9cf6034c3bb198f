"""Read and validate: pinned encodings, 外字, CSV/TSV/Excel, mapping errors, and every kind of bad row."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
from openpyxl import Workbook

from agents.core.config import ConfigError, SourceMapping, load_config, load_mapping
from agents.core.read import GaijiTable, SourceError, read_table
from agents.core.validate import is_formula, neutralise, validate, write_report

HEADER = ["宛名番号", "氏名", "氏名カナ", "生年月日", "性別", "住所", "児童扶養手当"]
COLUMNS = {"record_id": "宛名番号", "full_name": "氏名", "full_name_kana": "氏名カナ", "birth_date": "生年月日",
           "sex": "性別", "address": "住所"}


def mapping(**overrides: object) -> SourceMapping:
    data = {"source": "residents", "format": "csv", "encoding": "cp932", "columns": COLUMNS,
            "attributes": {"child_support_allowance": "児童扶養手当"}, **overrides}
    return SourceMapping.model_validate(data)


def write(path: Path, rows: list[list[str]], encoding: str = "cp932", delimiter: str = ",", header: list[str] = HEADER) -> Path:
    with path.open("w", encoding=encoding, newline="") as fh:
        writer = csv.writer(fh, delimiter=delimiter)
        writer.writerow(header)
        writer.writerows(rows)
    return path


GOOD = [["0000000001", "山田　太郎", "ヤマダ　タロウ", "2015-04-01", "1", "つなぐ市泉1丁目1番1号", "受給"],
        ["0000000002", "鈴木　花子", "スズキ　ハナコ", "R02.05.06", "2", "", ""]]


def test_cp932_file_reads_with_pinned_encoding(tmp_path: Path) -> None:
    table = read_table(write(tmp_path / "r.csv", GOOD), mapping(), GaijiTable())
    assert table.header == HEADER and [r for r, _ in table.rows] == [2, 3]
    assert table.rows[0][1][1] == "山田　太郎"


def test_utf8_file_under_cp932_mapping_is_refused_not_garbled(tmp_path: Path) -> None:
    path = write(tmp_path / "r.csv", GOOD, encoding="utf-8")
    with pytest.raises(SourceError, match="UTF-8 のようです"):
        read_table(path, mapping(), GaijiTable())


def test_cp932_file_under_utf8_mapping_names_the_row(tmp_path: Path) -> None:
    path = write(tmp_path / "r.csv", GOOD, encoding="cp932")
    with pytest.raises(SourceError, match="CP932") as err:
        read_table(path, mapping(encoding="utf-8"), GaijiTable())
    assert err.value.row == 1


def test_utf8_bom_is_accepted_under_utf8(tmp_path: Path) -> None:
    path = write(tmp_path / "r.csv", GOOD, encoding="utf-8-sig")
    assert read_table(path, mapping(encoding="utf-8"), GaijiTable()).header[0] == "宛名番号"


def test_gaiji_table_resolves_private_use_and_unmapped_become_geta(tmp_path: Path) -> None:
    table_path = tmp_path / "gaiji.toml"
    table_path.write_text('[gaiji]\n"U+E000" = "𠮷"\n', encoding="utf-8")
    rows = [["0000000003", "\ue000田　\ue001子", "ヨシダ　ヨシコ", "2016-01-01", "2", "", ""]]
    path = tmp_path / "r.csv"
    path.write_bytes(("\r\n".join([",".join(HEADER), ",".join(rows[0])]) + "\r\n").encode("cp932"))
    assert b"\xf0\x40" in path.read_bytes()  # the 外字 area of CP932
    table = read_table(path, mapping(), GaijiTable.load(table_path))
    assert table.rows[0][1][1] == "𠮷田　〓子" and table.unmapped_gaiji == 1


def test_gaiji_csv_table_and_bad_entries(tmp_path: Path) -> None:
    good = tmp_path / "gaiji.csv"
    good.write_text("code_point,character\nU+E001,髙\n", encoding="utf-8")
    assert GaijiTable.load(good).mapping == {0xE001: "髙"}
    bad = tmp_path / "bad.csv"
    bad.write_text("code_point,character\nU+4E00,一\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="私用領域"):
        GaijiTable.load(bad)


def test_tsv(tmp_path: Path) -> None:
    path = write(tmp_path / "r.tsv", GOOD, encoding="utf-8", delimiter="\t")
    table = read_table(path, mapping(format="tsv", encoding="utf-8"), GaijiTable())
    assert table.rows[1][1][3] == "R02.05.06"


def test_xlsx_read_only_with_formula_cell_refused(tmp_path: Path) -> None:
    workbook = Workbook()
    sheet = workbook.active
    sheet.title = "名簿"
    sheet.append(HEADER)
    sheet.append([1, "山田　太郎", "ヤマダ　タロウ", "2015-04-01", 1, "", ""])
    sheet.append(["0000000002", "鈴木　花子", "スズキ　ハナコ", "2016-05-06", "2", '=HYPERLINK("http://x","y")', ""])
    path = tmp_path / "r.xlsx"
    workbook.save(path)
    m = mapping(format="xlsx", encoding=None, sheet="名簿")
    table = read_table(path, m, GaijiTable())
    assert table.rows[0][1][:2] == ["1", "山田　太郎"]
    result = validate(table, m)
    assert [r.record_id for r in result.records] == ["1"]
    assert result.problems[0].row == 3 and result.problems[0].column == "住所" and "数式" in result.problems[0].reason


def test_xlsx_missing_sheet_and_non_excel(tmp_path: Path) -> None:
    workbook = Workbook()
    workbook.active.append(HEADER)
    path = tmp_path / "r.xlsx"
    workbook.save(path)
    with pytest.raises(SourceError, match="シート「名簿」がありません"):
        read_table(path, mapping(format="xlsx", encoding=None, sheet="名簿"), GaijiTable())
    fake = tmp_path / "fake.xlsx"
    fake.write_text("not a zip", encoding="utf-8")
    with pytest.raises(SourceError, match="Excel ファイルとして読めません"):
        read_table(fake, mapping(format="xlsx", encoding=None), GaijiTable())


def test_empty_file_and_header_only_send_nothing(tmp_path: Path) -> None:
    empty = tmp_path / "empty.csv"
    empty.write_bytes(b"")
    with pytest.raises(SourceError, match="ファイルが空です"):
        read_table(empty, mapping(), GaijiTable())
    with pytest.raises(SourceError, match="データ行がありません"):
        read_table(write(tmp_path / "h.csv", []), mapping(), GaijiTable())


def test_missing_column_suggests_nearest_header(tmp_path: Path) -> None:
    header = ["宛名番号", "氏名", "氏名ｶﾅ", "生年月曰", "性別", "住所", "児童扶養手当"]  # 曰 for 日: a typo in the export
    table = read_table(write(tmp_path / "r.csv", GOOD, header=header), mapping(), GaijiTable())
    with pytest.raises(SourceError) as err:
        validate(table, mapping())
    message = str(err.value)
    assert "「生年月日」→ birth_date（ファイルの「生年月曰」の誤りではありませんか）" in message
    assert "氏名カナ" not in message.split("見出し")[0]  # half-width ｶﾅ matches after NFKC


def test_bad_rows_are_listed_and_good_rows_kept(tmp_path: Path) -> None:
    rows = [
        GOOD[0],
        ["0000000001", "山田　次郎", "ヤマダ　ジロウ", "2016-04-01", "1", "", ""],   # duplicate id
        ["", "名無し", "ナナシ", "2016-04-01", "1", "", ""],                       # empty id
        ["0000000004", "=cmd|' /C calc'!A0", "ア", "2016-04-01", "1", "", ""],     # formula
        ["0000000005", "佐藤　一", "サトウ　ハジメ", "2016-04-01"],                   # short row
        ["0000000006", "佐藤　二郎", "サトウ　ジロウ", "2016-04-01", "1", "", "-1"],  # a plain negative number is fine
    ]
    table = read_table(write(tmp_path / "r.csv", rows), mapping(), GaijiTable())
    result = validate(table, mapping())
    assert [r.record_id for r in result.records] == ["0000000001", "0000000006"]
    reasons = {p.row: p.reason for p in result.problems}
    assert "3 行目" not in reasons[3] and "2 行目と重複" in reasons[3]
    assert "空" in reasons[4] and "数式" in reasons[5] and "セルの数" in reasons[6]
    assert result.records[1].attributes == {"child_support_allowance": "-1"}


def test_report_is_neutralised_and_private(tmp_path: Path) -> None:
    from agents.core.validate import Problem

    report = tmp_path / "reports" / "r.csv"
    write_report(report, [Problem("=evil.csv", 2, "@列", "birth_date", "+理由")])
    text = report.read_text(encoding="utf-8-sig")
    assert "'=evil.csv" in text and "'@列" in text and "'+理由" in text
    assert report.stat().st_mode & 0o777 == 0o600


@pytest.mark.parametrize("cell,formula", [("=1+1", True), ("+81", True), ("@SUM(A1)", True), ("-2+3", True), ("\tx", True),
                                          ("-1", False), ("-", False), ("-1,200.5", False), ("山田", False), ("", False)])
def test_formula_detection(cell: str, formula: bool) -> None:
    assert is_formula(cell) is formula
    assert neutralise(cell).startswith("'") is (cell[:1] in ("=", "+", "@", "-", "\t"))


def test_mapping_errors_are_explained(tmp_path: Path) -> None:
    path = tmp_path / "m.toml"
    path.write_text('source = "school"\nencoding = "cp932"\n[columns]\nrecord_id = "学籍番号"\nfull_nmae = "氏名"\n', encoding="utf-8")
    with pytest.raises(ConfigError, match="「full_name」の誤りではありませんか"):
        load_mapping(path)
    path.write_text('source = "school"\nencoding = "cp932"\n[columns]\nrecord_id = "学籍番号"\nfull_name = "氏名"\n'
                    '[attributes]\nmy_number = "個人番号"\n', encoding="utf-8")
    with pytest.raises(ConfigError, match="個人番号"):
        load_mapping(path)
    path.write_text('source = "school"\nencodng = "cp932"\n[columns]\nrecord_id = "学籍番号"\nfull_name = "氏名"\n', encoding="utf-8")
    with pytest.raises(ConfigError, match="encodng: 未知の項目"):
        load_mapping(path)


def test_agent_config_resolves_paths_and_checks_network(tmp_path: Path) -> None:
    path = tmp_path / "agent.toml"
    path.write_text('[agent]\nid = "x"\nmunicipality = "000000"\nnetwork = "edu"\nescrow_public_key = "e.json"\n'
                    '[[sources]]\nmapping = "m.toml"\nfile = "d.csv"\n', encoding="utf-8")
    config = load_config(path)
    assert config.sources[0].file == tmp_path / "d.csv" and config.report_dir == tmp_path / "reports"
    path.write_text(path.read_text(encoding="utf-8").replace('"edu"', '"lgwan"'), encoding="utf-8")
    with pytest.raises(ConfigError, match="ネットワーク「lgwan」は使えません"):
        load_config(path)


def test_xlsx_trailing_empty_columns_are_dropped_but_stray_cells_reported(tmp_path: Path) -> None:
    workbook = Workbook()
    sheet = workbook.active
    sheet.append(HEADER + [None, None])
    sheet.append(["0000000001", "山田　太郎", "ヤマダ　タロウ", "2015-04-01", "1", "", "", None, None])
    sheet.append(["0000000002", "鈴木　花子", "スズキ　ハナコ", "2016-05-06", "2", "", "", None, "メモ"])
    path = tmp_path / "r.xlsx"
    workbook.save(path)
    m = mapping(format="xlsx", encoding=None)
    table = read_table(path, m, GaijiTable())
    assert table.header == HEADER
    result = validate(table, m)
    assert [r.record_id for r in result.records] == ["0000000001"] and "セルの数" in result.problems[0].reason


@pytest.mark.parametrize("byte", [0xA0, 0x80, 0xFD])
def test_a_byte_cp932_has_no_character_for_is_an_encoding_error_naming_row_and_column(tmp_path: Path, byte: int) -> None:
    path = write(tmp_path / "r.csv", GOOD)
    # 0xA0 inside the third row's address (Python's cp932 codec would decode it as U+F8F0, a "外字").
    data = path.read_bytes().replace("つなぐ市".encode("cp932"), "つなぐ".encode("cp932") + bytes([byte]) + "市".encode("cp932"))
    path.write_bytes(data)
    with pytest.raises(SourceError) as err:
        read_table(path, mapping(), GaijiTable({0xF8F0: "髙"}))
    assert err.value.row == 2 and "6 列目" in err.value.reason and f"0x{byte:02X}" in err.value.reason
    assert str(path) in str(err.value)


def test_impossible_future_and_ancient_birth_dates_are_reported_and_the_record_kept(tmp_path: Path) -> None:
    rows = [["0000000001", "山田　太郎", "ヤマダ　タロウ", "2099-01-01", "1", "つなぐ市泉1丁目1番1号", ""],
            ["0000000002", "鈴木　花子", "スズキ　ハナコ", "2015-02-30", "2", "つなぐ市泉1丁目2番1号", ""],
            ["0000000003", "佐藤　一郎", "サトウ　イチロウ", "1900-05-05", "1", "つなぐ市泉1丁目3番1号", ""],
            ["0000000004", "田中　次郎", "タナカ　ジロウ", "H27.4.2", "1", "つなぐ市泉1丁目4番1号", ""]]
    path = write(tmp_path / "r.csv", rows)
    validated = validate(read_table(path, mapping(), GaijiTable()), mapping())
    assert [r.record_id for r in validated.records] == ["0000000001", "0000000002", "0000000003", "0000000004"]
    # The impossible 2015-02-30 keeps its usable parts (as ``tsunagu link``'s salvage does); a future or
    # ancient date is not used at all.
    assert [r.birth_date for r in validated.records] == ["", "2015-02", "", "H27.4.2"]
    by_row = {p.row: p for p in validated.problems}
    assert set(by_row) == {2, 3, 4} and all(p.kept and p.file == str(path) and p.column == "生年月日" for p in by_row.values())
    assert "ファイルの作成日" in by_row[2].reason and "より後" in by_row[2].reason
    assert "120 年以上前" in by_row[4].reason
    assert "使える部分（2015年2月）" in by_row[3].reason


@pytest.mark.parametrize(("value", "kept", "said"), [("2015-13-01", "2015", "（2015年）"), ("19151131", "1915-11", "（1915年11月）"),
                                                   ("2099-02-30", "", "生年月日なしで送ります"), ("R06.02.30", "", "生年月日なしで送ります")])
def test_an_impossible_birth_date_keeps_the_parts_tsunagu_link_keeps(tmp_path: Path, value: str, kept: str, said: str) -> None:
    from linkage.record import CanonicalRecord
    from linkage.salvage import salvage_birth_dates

    path = write(tmp_path / "r.csv", [["0000000001", "山田　太郎", "ヤマダ　タロウ", value, "1", "つなぐ市泉1丁目1番1号", ""]])
    validated = validate(read_table(path, mapping(), GaijiTable()), mapping())
    assert [r.birth_date for r in validated.records] == [kept]
    assert validated.problems[0].kept and said in validated.problems[0].reason and validated.problems[0].row == 2
    if value != "2099-02-30":  # a future year is the agent's own rule (the file's date), not the salvage's
        linked, _notes = salvage_birth_dates([CanonicalRecord(record_id="1", full_name="山田太郎", birth_date=value)])
        assert linked[0].birth_date == kept


def test_duplicate_ids_are_found_across_blocks_with_the_ids_on_disk_not_in_memory(tmp_path: Path,
                                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    # Blocks of 3 rows: a duplicate of a row two blocks back is found in the SQLite file, one in the same block in the block.
    from agents.core import validate as validate_module
    from agents.core.validate import RowValidator

    monkeypatch.setattr(validate_module, "ID_BLOCK_ROWS", 3)
    ids = ["A1", "A2", "A3", "B1", "B2", "A2", "C1", "C1", "A3", "D1"]
    rows = [[i, "山田　太郎", "ヤマダ　タロウ", "2015-04-01", "1", "", ""] for i in ids]
    rows.insert(4, ["X9", "=山田", "ヤマダ　タロウ", "2015-04-01", "1", "", ""])  # refused: its id is not taken
    rows.append(["X9", "山田　太郎", "ヤマダ　タロウ", "2015-04-01", "1", "", ""])
    table = read_table(write(tmp_path / "r.csv", rows), mapping(), GaijiTable())
    work = tmp_path / "spool"
    out = list(RowValidator(table, mapping(), work).rows())
    kept = [record.record_id for _, record, _ in out if record is not None]
    assert kept == ["A1", "A2", "A3", "B1", "B2", "C1", "D1", "X9"]
    duplicates = {number: problem.reason for number, record, problem in out if record is None and problem.field == "record_id"}
    assert duplicates == {8: "記録番号が 3 行目と重複しています（先の行だけを送ります）。",
                          10: "記録番号が 9 行目と重複しています（先の行だけを送ります）。",
                          11: "記録番号が 4 行目と重複しています（先の行だけを送ります）。"}
    assert list(work.iterdir()) == []  # the ids' file is gone with the rows


def test_transferred_records_kept_on_disk_read_back_as_written(tmp_path: Path) -> None:
    from agents.core.package import RecordSpool
    from linkage.record import CanonicalRecord

    spool = RecordSpool(tmp_path / "t" / "x.sqlite")
    records = [CanonicalRecord(record_id=str(n), full_name="山田　太郎", attributes={"moved_in_from": "131016"}) for n in range(5)]
    for record in records:
        spool.append(record)
    assert len(spool) == 5 and bool(spool) and list(spool) == records and spool[3] == records[3] and spool[-1] == records[4]
    assert spool[1:3] == records[1:3] and (tmp_path / "t").stat().st_mode & 0o777 == 0o700
    with pytest.raises(IndexError):
        spool[5]
    spool.close()
    assert not (tmp_path / "t" / "x.sqlite").exists()

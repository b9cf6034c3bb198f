"""Reading canonical-column CSV files for ``tsunagu link``: header checks and row-level problems.

The bytes are read by the agents' reader (``agents.core.read``), so decoding,
encoding detection, the CP932 checks and the 外字 table are one code path.

Every row is either returned as a record or listed as a :class:`RowProblem`
naming file, row and column, so nothing is lost silently.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from pathlib import Path

from agents.core.read import GaijiTable, SourceError, detect_encoding, open_text
from linkage.errors import InputError
from linkage.record import IDENTITY_COLUMNS, CanonicalRecord

_NAME_COLUMNS = ("family_name", "given_name", "full_name", "family_name_kana", "given_name_kana", "full_name_kana")
_ENCODING_NAMES = {"utf-8": "utf-8", "utf8": "utf-8", "utf-8-sig": "utf-8-sig", "cp932": "cp932", "sjis": "cp932",
                   "shift-jis": "cp932", "windows-31j": "cp932"}


@dataclass(slots=True)
class RowProblem:
    """A row that was not linked, and why (Japanese, for the person holding the file)."""

    file: str
    row: int
    column: str
    reason: str


@dataclass(slots=True)
class SourceFile:
    """The usable records of one file, with their row numbers, and the problems found."""

    name: str
    path: Path
    encoding: str
    records: list[CanonicalRecord]
    rows: list[int]
    problems: list[RowProblem]


def read_source(path: Path, encoding: str | None = None, gaiji: GaijiTable | None = None) -> SourceFile:
    """Read one canonical-column CSV; the source name is the file name without extension.

    The bytes are read by the agents' reader (``agents.core.read.open_text``): the same decoding, CP932
    checks and 外字 table (``gaiji``; without one every 外字 becomes 〓, unknown). Without ``encoding`` it is
    detected (a BOM, else UTF-8 if every byte is, else CP932).
    """
    path = Path(path)
    if encoding:
        enc = _ENCODING_NAMES.get(encoding.lower().replace("_", "-"))
        if enc is None:
            raise InputError(str(path), f"文字コード「{encoding}」は使えません。utf-8、utf-8-sig、cp932 のいずれかを指定してください")
    else:
        enc = detect_encoding(path)
    try:
        table = open_text(path, enc, gaiji or GaijiTable(), fix=_FIX, require_rows=False)
        header = [h.strip() for h in table.header]
        _check_header(path, header)
        records: list[CanonicalRecord] = []
        rows: list[int] = []
        problems: list[RowProblem] = []
        seen: dict[str, int] = {}
        for row, values in table.rows:
            if len(values) != len(header):
                problems.append(RowProblem(str(path), row, "", f"列の数が見出し（{len(header)} 列）と違います（{len(values)} 列）"))
                continue
            mapping = dict(zip(header, values))
            rid = mapping["record_id"].strip()
            if not rid:
                problems.append(RowProblem(str(path), row, "record_id", "record_id が空です"))
                continue
            if rid in seen:
                problems.append(RowProblem(str(path), row, "record_id", f"record_id が {seen[rid]} 行目と重複しています"))
                continue
            seen[rid] = row
            mapping["record_id"] = rid
            records.append(CanonicalRecord.from_mapping(mapping))
            rows.append(row)
    except SourceError as exc:
        raise InputError(exc.file, exc.reason, row=exc.row) from None
    return SourceFile(path.stem, path, table.encoding, records, rows, problems)


#: Where a user of ``tsunagu link`` sets the encoding (named in the reader's error messages).
_FIX = "--encoding の指定"


def _check_header(path: Path, header: list[str]) -> None:
    known = set(IDENTITY_COLUMNS)
    missing = []
    if "record_id" not in header:
        missing.append("record_id")
    if not any(c in header for c in _NAME_COLUMNS):
        missing.append("氏名の列（family_name / given_name / full_name / *_kana のいずれか）")
    if not missing:
        return
    hints = []
    for col in header:
        if col not in known:
            close = difflib.get_close_matches(col, IDENTITY_COLUMNS, n=1, cutoff=0.6)
            if close:
                hints.append(f"「{col}」は「{close[0]}」の誤りではありませんか")
    hint = ("。" + "、".join(hints)) if hints else ""
    raise InputError(str(path), f"必須の列がありません: {', '.join(missing)}{hint}", row=1)

"""Reading canonical-column CSV files: encoding detection, header checks, row-level problems.

Every row is either returned as a record or listed as a :class:`RowProblem`
naming file, row and column, so nothing is lost silently.
"""

from __future__ import annotations

import csv
import difflib
import io
from dataclasses import dataclass
from pathlib import Path

from linkage.errors import InputError
from linkage.record import IDENTITY_COLUMNS, CanonicalRecord

#: Encodings tried, in order, when none is given.
DETECT_ORDER = ("utf-8-sig", "cp932")

_NAME_COLUMNS = ("family_name", "given_name", "full_name", "family_name_kana", "given_name_kana", "full_name_kana")
_ENCODING_NAMES = {"utf-8": "utf-8", "utf8": "utf-8", "utf-8-sig": "utf-8-sig", "cp932": "cp932", "sjis": "cp932", "shift_jis": "cp932"}


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


def _decode(path: Path, data: bytes, encoding: str | None) -> tuple[str, str]:
    if encoding:
        enc = _ENCODING_NAMES.get(encoding.lower().replace("_", "-"), encoding)
        try:
            return data.decode(enc), enc
        except LookupError:
            raise InputError(str(path), f"文字コード「{encoding}」は使えません。utf-8、utf-8-sig、cp932 のいずれかを指定してください") from None
        except UnicodeDecodeError as exc:
            row = data[: exc.start].count(b"\n") + 1
            raise InputError(
                str(path),
                f"{enc} として読めないバイトがあります（{exc.start} バイト目）。--encoding で正しい文字コードを指定してください",
                row=row,
            ) from None
    first_error: UnicodeDecodeError | None = None
    for enc in DETECT_ORDER:
        try:
            return data.decode(enc), enc
        except UnicodeDecodeError as exc:
            first_error = first_error or exc
    assert first_error is not None
    row = data[: first_error.start].count(b"\n") + 1
    raise InputError(
        str(path),
        "文字コードを判定できません（UTF-8 でも CP932 でも読めないバイトがあります）。"
        "ファイルを UTF-8 で保存し直すか、--encoding で文字コードを指定してください",
        row=row,
    )


def read_source(path: Path, encoding: str | None = None) -> SourceFile:
    """Read one canonical-column CSV; the source name is the file name without extension."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise InputError(str(path), "ファイルが見つかりません") from None
    text, enc = _decode(path, data, encoding)
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = [h.strip() for h in next(reader)]
    except StopIteration:
        raise InputError(str(path), "ファイルが空です（見出し行もありません）") from None
    _check_header(path, header)
    records: list[CanonicalRecord] = []
    rows: list[int] = []
    problems: list[RowProblem] = []
    seen: dict[str, int] = {}
    for values in reader:
        row = reader.line_num
        if not any(v.strip() for v in values):
            continue
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
    return SourceFile(path.stem, path, enc, records, rows, problems)


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

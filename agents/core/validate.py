"""Validate: map a department's columns to canonical ones and check each row; every row is kept or listed with its reason.

A mapped column missing from the file stops the whole file (with the nearest
header named, since a typo is the usual cause). A bad row stops only that
row: wrong number of cells, an empty or repeated record id, or a cell that a
spreadsheet would run as a formula (CSV injection: = + - @ tab CR at the
start). A birth date that cannot be right — impossible (2月30日), after
the day the file was written, or more than :data:`MAX_AGE_YEARS` before it —
is reported for its row, and the record is kept: an impossible date keeps its
usable parts (year and month, or the year: the same salvage as ``tsunagu
link``, :mod:`linkage.salvage`), a date after the file's or too far before it
is dropped; the record links on what it has (name, address, …), and its
sealed identity keeps the date as written (:attr:`Problem.written`). Other
values the normaliser cannot read are reported later, by
:mod:`agents.core.normalise`, in the same report.
"""

from __future__ import annotations

import csv
import difflib
import os
import re
import sqlite3
import tempfile
import unicodedata
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Iterator

from agents.core.config import SourceMapping
from agents.core.read import SourceError, Table
from linkage.errors import FieldError
from linkage.normalise.dates import parse_birth_date
from linkage.record import CanonicalRecord
from linkage.salvage import usable_parts

_FORMULA_START = frozenset("=+-@\t\r")
_PLAIN_NUMBER = re.compile(r"-|-?[0-9][0-9,]*(?:\.[0-9]+)?")
_REPORT_HEADER = ("ファイル", "行", "列", "項目", "理由")
#: A birth date further back than this before the file's date is taken for a typo.
MAX_AGE_YEARS = 120
_KEPT = "この行は生年月日なしで送ります（氏名・住所などで名寄せします）。元のデータを直してください。"


@dataclass(slots=True)
class Problem:
    """A row that is not sent, and why (Japanese, for the department that holds the file)."""

    file: str
    row: int
    column: str
    field: str
    reason: str
    #: the row is still sent (without the value named); False: the row is not sent
    kept: bool = False
    #: for a kept row, the value of ``field`` as the department wrote it: the record links on another one
    #: (a salvaged or dropped birth date), but its sealed identity holds this one
    written: str = ""


@dataclass(slots=True)
class Validated:
    """The rows of one file that passed validation, as canonical records, and the problems found."""

    records: list[CanonicalRecord]
    rows: list[int]
    problems: list[Problem] = field(default_factory=list)
    ignored_columns: list[str] = field(default_factory=list)


def is_formula(cell: str) -> bool:
    """True if a spreadsheet would treat ``cell`` as a formula (a plain number such as -1 is not)."""
    return bool(cell) and cell[0] in _FORMULA_START and not _PLAIN_NUMBER.fullmatch(cell)


def neutralise(cell: str) -> str:
    """``cell`` made safe to open in a spreadsheet: a leading formula character is quoted with '."""
    return "'" + cell if cell and cell[0] in _FORMULA_START else cell


def _key(name: str) -> str:
    return unicodedata.normalize("NFKC", name).strip()


def locate_columns(table: Table, mapping: SourceMapping) -> tuple[dict[str, int], list[str]]:
    """The header position of each mapped department column, and the header columns the mapping ignores.

    Raises :class:`SourceError` naming every missing column and the nearest header for each.
    """
    positions: dict[str, int] = {}
    duplicated = []
    for index, name in enumerate(table.header):
        key = _key(name)
        if key in positions:
            duplicated.append(name)
        positions.setdefault(key, index)
    wanted = mapping.department_columns()
    present_keys = list(positions)
    missing = []
    for column, target in wanted.items():
        if _key(column) not in positions:
            close = difflib.get_close_matches(_key(column), present_keys, n=1, cutoff=0.5)
            hint = f"（ファイルの「{close[0]}」の誤りではありませんか）" if close else ""
            missing.append(f"「{column}」→ {target}{hint}")
    if missing:
        raise SourceError(
            table.path,
            f"対応表（データ元 {mapping.source}）の列が見出しにありません: {'、'.join(missing)}。"
            f"見出し: {'、'.join(table.header)}",
            row=mapping.header_row,
        )
    clash = [c for c in duplicated if _key(c) in {_key(w) for w in wanted}]
    if clash:
        raise SourceError(table.path, f"見出しに同じ名前の列が複数あります: {'、'.join(clash)}。どちらを使うか決められません。", row=mapping.header_row)
    located = {column: positions[_key(column)] for column in wanted}
    used = set(located.values())
    ignored = [name for index, name in enumerate(table.header) if index not in used and name.strip()]
    return located, ignored


def validate(table: Table, mapping: SourceMapping) -> Validated:
    """Turn the rows of ``table`` into canonical records; a row that fails a check is listed instead."""
    stream = RowValidator(table, mapping)
    records: list[CanonicalRecord] = []
    rows: list[int] = []
    problems: list[Problem] = []
    for number, record, problem in stream.rows():
        if problem is not None:
            problems.append(problem)
        if record is not None:
            records.append(record)
            rows.append(number)
    return Validated(records, rows, problems, stream.ignored_columns)


class RowValidator:
    """Validates a table's rows as they are read (what it keeps across rows: the record ids seen, on disk)."""

    def __init__(self, table: Table, mapping: SourceMapping, work_dir: Path | None = None) -> None:
        """Locate the mapped columns (raises :class:`SourceError` if one is missing); ``work_dir`` holds :class:`SeenIds`."""
        located, self.ignored_columns = locate_columns(table, mapping)
        self._table, self._mapping, self._work_dir = table, mapping, work_dir
        self._identity = [(canonical, located[column], column) for canonical, column in mapping.columns.items()]
        self._attributes = [(name, located[column], column) for name, column in mapping.attributes.items()]
        self._id = (located[mapping.columns["record_id"]], mapping.columns["record_id"])

    def rows(self) -> Iterator[tuple[int, CanonicalRecord | None, Problem | None]]:
        """Per data row: its number, its record (None: not sent) and its problem (None: none; a kept one has both).

        Rows are checked in blocks of :data:`ID_BLOCK_ROWS`; the record ids already seen are looked up once per
        block in :class:`SeenIds` (on disk), so memory stays bounded whatever the file's size. A
        :class:`SourceError` met while reading is raised after the rows before it have been yielded.
        """
        with SeenIds(self._work_dir) as seen:
            block: list[tuple[int, list[str]]] = []
            rows = iter(self._table.rows)
            while True:
                failure: SourceError | None = None
                try:
                    for item in rows:
                        block.append(item)
                        if len(block) >= ID_BLOCK_ROWS:
                            break
                except SourceError as exc:
                    failure = exc
                if not block and failure is None:
                    return
                yield from self._block(block, seen)
                block = []
                if failure is not None:
                    raise failure

    def _block(self, block: list[tuple[int, list[str]]], seen: "SeenIds") -> Iterator[tuple[int, CanonicalRecord | None, Problem | None]]:
        table, mapping = self._table, self._mapping
        file = str(table.path)
        identity, attributes = self._identity, self._attributes
        checked = identity + attributes
        id_index, id_column = self._id
        width = len(table.header)
        formula_start, plain_number = _FORMULA_START, _PLAIN_NUMBER.fullmatch
        # First the checks of a row on its own; then the record ids against the ones of earlier blocks, in one look-up.
        candidates: list[tuple[int, list[str], str]] = []
        outcome: list[tuple[int, Problem] | tuple[int, list[str], str]] = []
        for number, values in block:
            if len(values) != width:
                outcome.append((number, Problem(file, number, "", "", f"セルの数が見出し（{width} 列）と違います（{len(values)} 列）。区切り文字や改行の入ったセルを確認してください。")))
                continue
            formula = None
            for _, index, column in checked:
                cell = values[index]
                if cell and cell[0] in formula_start and not plain_number(cell):
                    formula = column
                    break
            if formula is not None:
                outcome.append((number, Problem(file, number, formula, "", "数式として実行されるおそれのある値（= + - @ などで始まる）は受け付けません。値を直してください。")))
                continue
            record_id = values[id_index].strip()
            if not record_id.isascii():
                record_id = unicodedata.normalize("NFKC", record_id).strip()
            if not record_id:
                outcome.append((number, Problem(file, number, id_column, "record_id", "記録番号が空です。")))
                continue
            candidate = (number, values, record_id)
            candidates.append(candidate)
            outcome.append(candidate)
        earlier = seen.rows_of([c[2] for c in candidates])
        new: dict[str, int] = {}
        for entry in outcome:
            if len(entry) == 2:
                yield entry[0], None, entry[1]  # type: ignore[misc]
                continue
            number, values, record_id = entry  # type: ignore[misc]
            first = new.get(record_id, earlier.get(record_id))
            if first is not None:
                yield number, None, Problem(file, number, id_column, "record_id", f"記録番号が {first} 行目と重複しています（先の行だけを送ります）。")
                continue
            coded, unknown = _coded(mapping, attributes, values)
            if unknown is not None:
                yield number, None, Problem(file, number, *unknown)
                continue
            new[record_id] = number
            fields = {canonical: values[index] for canonical, index, _ in identity}
            fields["record_id"] = record_id
            problem = None
            if fields.get("birth_date"):
                kept, why = checked_birth_date(fields["birth_date"], table.file_date)
                if why:
                    problem = Problem(file, number, mapping.columns["birth_date"], "birth_date", why, kept=True,
                                      written=fields["birth_date"])
                    fields["birth_date"] = kept
            yield number, CanonicalRecord(**fields, attributes=coded), problem
        seen.add(new)


#: Rows checked together: their record ids are looked up among the earlier rows' in one query.
ID_BLOCK_ROWS = 4096


class SeenIds:
    """The record ids of a file's rows kept so far and the row each is on, in a SQLite file (bounded memory).

    A city's file has a million ids (about 160 MB as a Python dict); on disk, with SQLite's page cache
    capped, the validator's memory no longer grows with the file. The file lives in a private temporary
    folder (0700) under ``work_dir`` — the agent's ``state/spool/`` in a run — and is removed when the rows are done.
    """

    def __init__(self, work_dir: Path | None = None) -> None:
        """Prepare (nothing is created until the context is entered)."""
        self._work_dir = work_dir
        self._folder: tempfile.TemporaryDirectory[str] | None = None
        self._db: sqlite3.Connection | None = None

    def __enter__(self) -> "SeenIds":
        if self._work_dir is not None:
            self._work_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        self._folder = tempfile.TemporaryDirectory(prefix="ids-", dir=self._work_dir, ignore_cleanup_errors=True)
        self._db = sqlite3.connect(Path(self._folder.name) / "ids.sqlite", isolation_level=None)
        # Scratch data, rebuilt from the file on every run: no journal, no fsync; a page cache of 8 MiB.
        self._db.executescript("PRAGMA journal_mode=OFF; PRAGMA synchronous=OFF; PRAGMA cache_size=-8192;"
                               "CREATE TABLE ids (id TEXT PRIMARY KEY, row INTEGER NOT NULL) WITHOUT ROWID;")
        return self

    def __exit__(self, *exc: object) -> None:
        if self._db is not None:
            self._db.close()
        if self._folder is not None:
            self._folder.cleanup()

    def rows_of(self, ids: list[str]) -> dict[str, int]:
        """The row of each of ``ids`` already added (ids not seen are left out)."""
        assert self._db is not None
        found: dict[str, int] = {}
        for start in range(0, len(ids), 900):  # under SQLite's oldest limit of 999 parameters per statement
            part = ids[start:start + 900]
            found.update(self._db.execute(f"SELECT id, row FROM ids WHERE id IN ({','.join('?' * len(part))})", part))
        return found

    def add(self, rows: dict[str, int]) -> None:
        """Record the ids of rows kept (each first seen on its row)."""
        assert self._db is not None
        self._db.execute("BEGIN")
        self._db.executemany("INSERT INTO ids VALUES (?, ?)", rows.items())
        self._db.execute("COMMIT")


def checked_birth_date(value: str, file_date: date | None) -> tuple[str, str]:
    """The birth date to link on and, if it is not ``value`` as given, why (Japanese, for the report).

    An impossible date (2月30日, month 13) keeps its usable parts, as ``tsunagu link`` does
    (``linkage.salvage``): year and month, or the year. A date after the file's date or more than
    :data:`MAX_AGE_YEARS` before it is not used at all (its year is what is wrong).
    """
    why = birth_date_problem(value, file_date)
    if not why:
        return value, ""
    try:
        parse_birth_date(value)
    except FieldError:
        kept = usable_parts(value)
        if kept and not birth_date_problem(kept, file_date):
            label = f"{kept[:4]}年{int(kept[5:])}月" if len(kept) == 7 else f"{kept}年"
            return kept, f"{why}この行は生年月日のうち使える部分（{label}）と氏名・住所などで送ります。元のデータを直してください。"
    return "", f"{why}{_KEPT}"


def birth_date_problem(value: str, file_date: date | None) -> str:
    """Why ``value`` cannot be a real birth date for a file written on ``file_date`` ("" if it can)."""
    try:
        year, month, day = parse_birth_date(value)
    except FieldError as exc:
        return f"{exc.reason}。"
    if year is None or file_date is None:
        return ""
    earliest = (year, month or 1, day or 1)
    if earliest > (file_date.year, file_date.month, file_date.day):
        return f"生年月日「{value}」がファイルの作成日（{file_date.isoformat()}）より後です。"
    if year < file_date.year - MAX_AGE_YEARS:
        return f"生年月日「{value}」はファイルの作成日から {MAX_AGE_YEARS} 年以上前で、ありえません。"
    return ""


def _coded(mapping: SourceMapping, attributes: list[tuple[str, int, str]],
           values: list[str]) -> tuple[dict[str, str], tuple[str, str, str] | None]:
    """A row's attributes with the department's words turned into canonical codes (``[values.<name>]``).

    Blank stays blank ("no data"). A word the mapping does not list is refused with the column and the
    words it knows, so a new word in the department's system is noticed instead of silently screening no one.
    """
    out = {}
    for name, index, column in attributes:
        value = values[index].strip()
        words = mapping.values.get(name)
        if words is not None and value:
            if value not in words:
                known = "、".join(f"「{w}」" for w in words)
                return out, (column, name, f"値「{value}」は対応表の [values.{name}] にありません（あるのは {known}）。"
                                           "対応表に正規の値との対応を書き足してください。")
            value = words[value]
        out[name] = value
    return out, None


def department_column(mapping: SourceMapping, canonical: str) -> str:
    """The department's name for a canonical column (for reports); the canonical name if unmapped."""
    return mapping.columns.get(canonical, canonical)


def write_report(path: Path, problems: list[Problem]) -> None:
    """Write the row report as UTF-8 CSV with BOM (opens in Excel), every cell neutralised; mode 0600."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with open(fd, "w", encoding="utf-8-sig", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(_REPORT_HEADER)
        for p in problems:
            writer.writerow([neutralise(p.file), p.row, neutralise(p.column), p.field, neutralise(p.reason)])



class ReportWriter:
    """The row report written as problems come (a file of any size, in bounded memory): counts and the first few kept."""

    def __init__(self, path: Path, samples: int = 5) -> None:
        """Create ``path`` (UTF-8 CSV with BOM, mode 0600) with its header row."""
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        self._handle = open(fd, "w", encoding="utf-8-sig", newline="")
        self._writer = csv.writer(self._handle)
        self._writer.writerow(_REPORT_HEADER)
        self._limit = samples
        #: problems written; of them, rows not sent
        self.count = self.not_sent = 0
        self.samples: list[Problem] = []

    def add(self, p: Problem) -> None:
        """Write one problem (callers give them in row order)."""
        self._writer.writerow([neutralise(p.file), p.row, neutralise(p.column), p.field, neutralise(p.reason)])
        self.count += 1
        self.not_sent += not p.kept
        if len(self.samples) < self._limit:
            self.samples.append(p)

    def close(self) -> None:
        """Flush and close the report."""
        self._handle.close()

"""Read: a department file (CSV, TSV or Excel) as a header and rows of text, 外字 (gaiji) resolved.

The encoding of a CSV/TSV file is pinned per source in its mapping, never
guessed: a guess that is wrong for one file in a hundred silently corrupts
names. What is checked instead is that the bytes really are in the pinned
encoding — including UTF-8 bytes that happen to decode as CP932 mojibake.

外字: CP932's user-defined area (0xF040–0xF9FC) decodes to private-use code
points (U+E000–U+E757); what each means is the municipality's own. The 外字
table maps a private-use code point to the character it stands for, or to 〓
(geta) when there is none; an unmapped one becomes 〓 as well, which the
normaliser treats as unknown (it neither agrees nor disagrees).

This is the one reader of department files: ``tsunagu link`` reads its
files through :func:`open_text` too (``tsunagu.csvinput``), the encoding
detected there (:func:`detect_encoding`) where an agent's is pinned.
"""

from __future__ import annotations

import codecs
import csv
import datetime as dt
import os
import re
import tomllib
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Generator, Iterable, Iterator

from agents.core.config import ConfigError, SourceMapping

GETA = "\u3013"
_PRIVATE_USE = re.compile("[\ue000-\uf8ff]")
_UTF8_BOM = b"\xef\xbb\xbf"
#: Single bytes CP932 has no character for; Python's codec still decodes them (to U+0080, U+F8F0–U+F8F3),
#: and U+F8F0–U+F8F3 would otherwise pass for 外字.
_STRAY_BYTES = {"\x80": 0x80, "\uf8f0": 0xA0, "\uf8f1": 0xFD, "\uf8f2": 0xFE, "\uf8f3": 0xFF}
_NOT_CP932 = re.compile("[\x80\uf8f0-\uf8f3]")


class SourceError(Exception):
    """A whole file cannot be used (missing, wrong encoding, empty, header wrong): nothing from it is sent."""

    def __init__(self, file: Path | str, reason: str, row: int | None = None):
        self.file = str(file)
        self.row = row
        self.reason = reason
        where = f"{file} {row} 行目" if row is not None else str(file)
        super().__init__(f"{where}: {reason}")


@dataclass(slots=True)
class GaijiTable:
    """The municipality's 外字 table: private-use code point -> character (or 〓)."""

    mapping: dict[int, str] = field(default_factory=dict)

    @classmethod
    def load(cls, path: Path) -> "GaijiTable":
        """Read a TOML (``[gaiji]`` ``"U+E000" = "髙"``) or CSV (``code_point,character``) table."""
        try:
            if path.suffix.lower() == ".csv":
                with path.open(encoding="utf-8-sig", newline="") as fh:
                    pairs = [(row.get("code_point", ""), row.get("character", "")) for row in csv.DictReader(fh)]
            else:
                pairs = list((tomllib.loads(path.read_text(encoding="utf-8")).get("gaiji") or {}).items())
        except FileNotFoundError:
            raise ConfigError(f"外字表 {path} がありません。") from None
        except (UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
            raise ConfigError(f"外字表 {path} が読めません（UTF-8 の TOML か CSV にしてください）: {exc}") from None
        mapping: dict[int, str] = {}
        for number, (code, char) in enumerate(pairs, start=1):
            match = re.fullmatch(r"(?:U\+|0x)?([0-9A-Fa-f]{4,5})", str(code).strip())
            point = int(match.group(1), 16) if match else -1
            if not 0xE000 <= point <= 0xF8FF:
                raise ConfigError(f"外字表 {path} の {number} 件目「{code}」は私用領域（U+E000〜U+F8FF）の符号位置ではありません。")
            if not isinstance(char, str) or not 1 <= len(char) <= 2 or _PRIVATE_USE.search(char):
                raise ConfigError(f"外字表 {path} の {code} の文字「{char}」が不正です（1 文字か 〓 を書いてください）。")
            mapping[point] = char
        return cls(mapping)

    def apply(self, text: str) -> tuple[str, int]:
        """``text`` with every private-use character resolved; also how many had no entry (became 〓)."""
        if not _PRIVATE_USE.search(text):
            return text, 0
        unmapped = 0

        def resolve(match: re.Match[str]) -> str:
            nonlocal unmapped
            char = self.mapping.get(ord(match.group()))
            if char is None:
                unmapped += 1
                return GETA
            return char

        return _PRIVATE_USE.sub(resolve, text), unmapped


@dataclass(slots=True)
class Table:
    """A file as text: the header, then each data row with its row number (as a spreadsheet shows it).

    From :func:`open_table` ``rows`` is an iterator that reads the file as it is consumed (bounded memory,
    whatever the file's size; a problem found on the way raises :class:`SourceError` from it, and
    ``unmapped_gaiji`` counts as rows are read); from :func:`read_table` it is a list.
    """

    path: Path
    header: list[str]
    rows: Iterable[tuple[int, list[str]]]
    encoding: str
    unmapped_gaiji: int = 0
    #: the day the file was written (its modification time): no one in it can be born later
    file_date: dt.date | None = None
    #: lines in the file (CSV/TSV) or the sheet's rows (Excel): an upper bound on the data rows
    size_hint: int = 0


def read_table(path: Path, mapping: SourceMapping, gaiji: GaijiTable) -> Table:
    """Read all of ``path`` as ``mapping`` describes it; raises :class:`SourceError` when the file cannot be used."""
    table = open_table(path, mapping, gaiji)
    table.rows = list(table.rows)
    return table


def open_table(path: Path, mapping: SourceMapping, gaiji: GaijiTable) -> Table:
    """Open ``path`` for reading row by row: the header is read now, the rows as ``Table.rows`` is iterated.

    Raises :class:`SourceError` when the file cannot be used: at once for what the start of the file
    shows, from the row iterator for what comes later (an undecodable byte, a UTF-8 file under ``cp932``,
    no data rows). A caller must therefore consume every row before using any of them.
    """
    fmt = mapping.format or _format_from_suffix(path)
    if not path.is_file():
        raise SourceError(path, "ファイルが見つかりません。agent.toml の file とファイルの置き場所を確認してください。")
    if fmt == "xlsx":
        header, rows, unmapped = _read_xlsx(path, mapping, gaiji)
        if not rows:
            raise SourceError(path, _NO_ROWS)
        return Table(path, header, rows, "xlsx", unmapped, dt.date.fromtimestamp(path.stat().st_mtime), len(rows))
    if mapping.encoding is None:
        raise SourceError(path, f"対応表（データ元 {mapping.source}）に encoding（utf-8・utf-8-sig・cp932）を指定してください。")
    return open_text(path, mapping.encoding, gaiji, header_row=mapping.header_row, delimiter="\t" if fmt == "tsv" else ",")


#: Where a reader's user sets the encoding, named in its error messages (an agent's mapping; ``tsunagu link --encoding``).
MAPPING_ENCODING = "対応表の encoding"


def open_text(path: Path, encoding: str, gaiji: GaijiTable, *, header_row: int = 1, delimiter: str = ",",
              fix: str = MAPPING_ENCODING, require_rows: bool = True) -> Table:
    """Open a CSV/TSV file in ``encoding`` (utf-8, utf-8-sig or cp932) row by row, 外字 resolved: the one text reader.

    Agents (through :func:`open_table`) and ``tsunagu link`` (``tsunagu.csvinput``) both read department files
    here, so decoding, the CP932 checks and the 外字 table are the same for both; ``fix`` names where the
    user sets the encoding in the error messages. ``require_rows``: a file with a header only is refused
    (an agent's empty snapshot would delete every record). Errors as :func:`open_table`.
    """
    if not path.is_file():
        raise SourceError(path, "ファイルが見つかりません。ファイルの置き場所と名前を確認してください。")
    file_date = dt.date.fromtimestamp(path.stat().st_mtime)
    try:
        handle = path.open("rb")
    except PermissionError:
        raise SourceError(path, "ファイルを読む権限がありません。エージェントを動かす利用者に読み取り権限を与えてください。") from None
    with handle:
        first = handle.read(len(_UTF8_BOM))
        if not first:
            raise SourceError(path, "ファイルが空です（0 バイト）。書き出しに失敗していないか確認してください。")
        if first == _UTF8_BOM:
            if encoding == "cp932":
                raise SourceError(path, _looks_utf8(fix))
            encoding = "utf-8-sig"
        size_hint = 1
        for block in iter(lambda: handle.read(1 << 20), b""):
            size_hint += block.count(b"\n")
    table = Table(path, [], iter(()), encoding, 0, file_date, size_hint)
    lines = _decoded_lines(path, encoding, gaiji, table, delimiter, fix)
    reader = csv.reader(lines, delimiter=delimiter)
    number = 0
    for values in reader:
        number += 1
        if number == header_row:
            table.header = values
            break
    else:
        lines.close()
        raise SourceError(path, f"見出し行（{header_row} 行目）がありません。ファイルが空です。")
    table.rows = _csv_rows(path, reader, lines, number, require_rows)
    return table


def detect_encoding(path: Path) -> str:
    """``utf-8-sig`` (a BOM), ``utf-8`` (every byte valid UTF-8) or ``cp932``: for readers that may guess (``tsunagu link``).

    Agents never guess (their mapping pins the encoding); a file that is neither is refused by
    :func:`open_text` under ``cp932``, naming the row and column of the first bad byte.
    """
    decoder = codecs.getincrementaldecoder("utf-8")()
    try:
        with path.open("rb") as handle:
            if handle.read(len(_UTF8_BOM)) == _UTF8_BOM:
                return "utf-8-sig"
            handle.seek(0)
            for block in iter(lambda: handle.read(1 << 20), b""):
                decoder.decode(block)
            decoder.decode(b"", final=True)
    except UnicodeDecodeError:
        return "cp932"
    except OSError:
        return "utf-8"  # open_text says what is wrong with the file
    return "utf-8"


_NO_ROWS = "データ行がありません（見出しだけです）。空の提出は前回の記録をすべて消すため、送りません。"


def _looks_utf8(fix: str) -> str:
    return f"文字コードが UTF-8 のようですが、cp932 として読むよう指定されています。{fix}を utf-8 にするか、CP932 で書き出し直してください。"


def _decoded_lines(path: Path, encoding: str, gaiji: GaijiTable, table: Table, delimiter: str, fix: str) -> Iterator[str]:
    """The file's lines as text, decoded and with 外字 resolved, one at a time.

    The file is split on the byte 0x0A, which is a line feed in UTF-8 and CP932 alike (it is never part of a
    two-byte CP932 character), so each line decodes on its own and a bad byte is named by its line.
    A CP932 file whose non-ASCII lines all decode as UTF-8 is a UTF-8 file under the wrong setting.
    """
    codec = "cp932" if encoding == "cp932" else "utf-8"
    utf8_so_far = encoding == "cp932"
    non_ascii = False
    with path.open("rb") as handle:
        for number, raw in enumerate(handle, start=1):
            if number == 1 and raw.startswith(_UTF8_BOM):
                raw = raw[len(_UTF8_BOM):]
            if utf8_so_far and not raw.isascii():
                non_ascii = True
                utf8_so_far = _is_utf8(raw)
            try:
                text = raw.decode(codec)
            except UnicodeDecodeError as exc:
                if utf8_so_far:
                    raise SourceError(path, _looks_utf8(fix)) from None
                other = "UTF-8" if encoding == "cp932" else "CP932（Shift_JIS）"
                raise SourceError(
                    path, f"{encoding} として読めないバイトがあります（この行の {exc.start + 1} バイト目）。{other} で保存されていないか"
                    f"確認し、{fix}か書き出しの設定を直してください。", row=number) from None
            if encoding == "cp932" and _NOT_CP932.search(text):
                _refuse_stray_byte(path, text, number, delimiter)
            text, unmapped = gaiji.apply(text)
            table.unmapped_gaiji += unmapped
            yield text
    if utf8_so_far and non_ascii:
        raise SourceError(path, _looks_utf8(fix))


def _csv_rows(path: Path, reader: Iterator[list[str]], lines: Generator[str, None, None],
              header_row: int, require_rows: bool) -> Iterator[tuple[int, list[str]]]:
    """Data rows numbered as a spreadsheet shows them (a record with line breaks in a cell is one row); empty rows skipped."""
    any_rows = False
    try:
        for number, values in enumerate(reader, start=header_row + 1):
            if "".join(values).strip():
                any_rows = True
                yield number, values
    finally:
        lines.close()
    if require_rows and not any_rows:
        raise SourceError(path, _NO_ROWS)


def _refuse_stray_byte(path: Path, line: str, number: int, delimiter: str) -> None:
    """Name the line and position of a byte that CP932 has no character for (Python maps them to U+0080 and U+F8F0–F8F3)."""
    match = _NOT_CP932.search(line)
    assert match is not None
    byte = _STRAY_BYTES[match.group()]
    column = len(next(csv.reader([line[: match.start()] + "x"], delimiter=delimiter)))
    raise SourceError(
        path, f"{column} 列目（この行の {match.start() + 1} 文字目）に、CP932（Shift_JIS）の文字ではないバイト 0x{byte:02X} があります"
        "（外字でもありません）。書き出し元のシステムで、その行のその項目を確認して直してください。", row=number)


def _format_from_suffix(path: Path) -> str:
    suffix = path.suffix.lower()
    if suffix in (".csv", ".txt"):
        return "csv"
    if suffix == ".tsv":
        return "tsv"
    if suffix == ".xlsx":
        return "xlsx"
    raise SourceError(path, f"拡張子「{suffix}」の形式は読めません。CSV・TSV・Excel（.xlsx）で書き出すか、対応表に format を指定してください。")


def _is_utf8(data: bytes) -> bool:
    try:
        data.decode("utf-8")
        return True
    except UnicodeDecodeError:
        return False


def _split_header(path: Path, records: list[list[str]], header_row: int) -> tuple[list[str], list[tuple[int, list[str]]]]:
    if len(records) < header_row:
        raise SourceError(path, f"見出し行（{header_row} 行目）がありません。ファイルが空です。")
    header = records[header_row - 1]
    rows = [(n, values) for n, values in enumerate(records[header_row:], start=header_row + 1) if "".join(values).strip()]
    return header, rows


def _read_xlsx(path: Path, mapping: SourceMapping, gaiji: GaijiTable) -> tuple[list[str], list[tuple[int, list[str]]], int]:
    from openpyxl import load_workbook
    from openpyxl.utils.exceptions import InvalidFileException

    if path.suffix.lower() != ".xlsx":
        raise SourceError(path, "Excel は .xlsx だけを読みます（.xls・マクロ付きの .xlsm は、.xlsx で保存し直してください）。")
    if path.stat().st_size == 0:
        raise SourceError(path, "ファイルが空です（0 バイト）。書き出しに失敗していないか確認してください。")
    if not os.access(path, os.R_OK):
        raise SourceError(path, "ファイルを読む権限がありません。エージェントを動かす利用者に読み取り権限を与えてください。")
    try:
        # data_only=False: a formula cell reads as its formula ("=…"), which validation refuses,
        # rather than as a cached value nobody can check.
        workbook = load_workbook(path, read_only=True, data_only=False)
    except (InvalidFileException, zipfile.BadZipFile, KeyError, OSError) as exc:
        raise SourceError(path, f"Excel ファイルとして読めません（{type(exc).__name__}）。Excel で開けるか確認してください。") from None
    try:
        if mapping.sheet is not None:
            if mapping.sheet not in workbook.sheetnames:
                raise SourceError(path, f"シート「{mapping.sheet}」がありません（あるシート: {', '.join(workbook.sheetnames)}）。")
            sheet = workbook[mapping.sheet]
        else:
            sheet = workbook.worksheets[0]
        unmapped = 0
        records = []
        for values in sheet.iter_rows(values_only=True):
            cells = []
            for value in values:
                text, missing = gaiji.apply(_cell_text(value))
                unmapped += missing
                cells.append(text)
            records.append(cells)
    finally:
        workbook.close()
    header, rows = _split_header(path, records, mapping.header_row)
    # A sheet's rows come as wide as its widest row: empty columns after the header's last name are
    # dropped; a row with text out there keeps it, so that validation reports its width.
    width = len(header)
    while width and not header[width - 1].strip():
        width -= 1
    fitted = []
    for number, values in rows:
        if not any(v.strip() for v in values[width:]):
            values = values[:width] + [""] * (width - len(values))
        fitted.append((number, values))
    return header[:width], fitted, unmapped


def _cell_text(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, dt.datetime):
        return value.date().isoformat() if value.time() == dt.time() else value.isoformat()
    if isinstance(value, dt.date):
        return value.isoformat()
    return str(value)

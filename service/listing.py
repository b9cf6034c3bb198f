"""Lists as staff take them away: CSV (UTF-8 with BOM, so Excel opens it) and Excel (.xlsx), Japanese headers.

A cell that a spreadsheet would run as a formula (= + - @ first) is written as
text with a leading apostrophe, so an exported list can never execute anything.
"""

from __future__ import annotations

import csv
import io
from typing import Iterable, Sequence

from fastapi.responses import Response
from openpyxl import Workbook

_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def _safe(value: object) -> object:
    if isinstance(value, str) and value.startswith(_FORMULA_START) and not _is_number(value):
        return "'" + value
    return value


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def to_csv(headers: Sequence[str], rows: Iterable[Sequence[object]]) -> bytes:
    """The list as CSV, UTF-8 with a byte-order mark, CRLF line ends."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(headers)
    for row in rows:
        writer.writerow([_safe(v) for v in row])
    return buffer.getvalue().encode("utf-8-sig")


def to_xlsx(headers: Sequence[str], rows: Iterable[Sequence[object]], sheet: str) -> bytes:
    """The list as one Excel sheet named ``sheet`` (31 characters at most), header row first."""
    workbook = Workbook(write_only=True)
    ws = workbook.create_sheet(sheet[:31])
    ws.append(list(headers))
    for row in rows:
        ws.append([_safe(v) for v in row])
    buffer = io.BytesIO()
    workbook.save(buffer)
    return buffer.getvalue()


CSV_TYPE = "text/csv; charset=utf-8"
XLSX_TYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


def download(headers: Sequence[str], rows: Iterable[Sequence[object]], kind: str, filename: str, sheet: str) -> Response:
    """The list as a download: CSV when ``kind`` is ``"csv"``, else Excel (sheet ``sheet``); ``filename`` without
    its extension; never cached (lists are casework data)."""
    data = to_csv(headers, rows) if kind == "csv" else to_xlsx(headers, rows, sheet)
    return Response(data, media_type=CSV_TYPE if kind == "csv" else XLSX_TYPE,
                    headers={"Content-Disposition": f'attachment; filename="{filename}.{kind}"', "Cache-Control": "no-store"})

"""Intake: rows of the Google Sheet (or a CSV file with the same columns) → search queries.

Header names are matched case-insensitively after trimming, in any order. Each row is processed
and committed on its own (a bad row gets `error` + `last_error`, the others go on); results are
written back per row by header name in one `batch_update` of single-cell ranges.
"""

from __future__ import annotations

import csv
import io
import logging
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Protocol

from sqlalchemy.exc import InterfaceError, OperationalError, ProgrammingError, SQLAlchemyError
from sqlalchemy.orm import Session

from leadgen.config import Settings
from leadgen.models import SearchBatchLog
from leadgen.search.errors import IntakeError
from leadgen.search.queries import InputRow, RowError, bounds, clean_cell, generate_queries, plan_and_insert

log = logging.getLogger(__name__)

INPUT_COLUMNS = ("niche", "city", "country", "batch_tag", "status")
SERVICE_COLUMNS = ("status", "generated_count", "db_inserted_count", "db_duplicate_count",
                   "db_first_scheduled_for", "db_last_scheduled_for", "last_error")
MAX_ERROR_CHARS = 500


@dataclass
class RowResult:
    row_number: int
    status: str  # done | error | skipped
    generated: int = 0
    inserted: int = 0
    duplicates: int = 0
    first_scheduled_for: datetime | None = None
    last_scheduled_for: datetime | None = None
    error: str | None = None

    def cells(self) -> dict[str, Any]:
        def iso(moment: datetime | None) -> str:
            return moment.astimezone(timezone.utc).isoformat() if moment else ""

        return {
            "status": self.status, "generated_count": self.generated,
            "db_inserted_count": self.inserted, "db_duplicate_count": self.duplicates,
            "db_first_scheduled_for": iso(self.first_scheduled_for),
            "db_last_scheduled_for": iso(self.last_scheduled_for),
            "last_error": (self.error or "")[:MAX_ERROR_CHARS],
        }


@dataclass
class SyncSummary:
    sync_id: str
    source: str
    total_rows: int = 0
    processed_rows: int = 0
    skipped_rows: int = 0  # already done, other batch tag, blank
    error_rows: int = 0
    generated_queries: int = 0
    inserted_queries: int = 0
    duplicate_queries: int = 0
    first_scheduled_for: datetime | None = None
    last_scheduled_for: datetime | None = None
    created_columns: list[str] = field(default_factory=list)
    writeback_error: str | None = None
    results: list[RowResult] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        data = {k: v for k, v in self.__dict__.items() if k != "results"}
        for key in ("first_scheduled_for", "last_scheduled_for"):
            data[key] = data[key].isoformat() if data[key] else None
        data["errors"] = [f"row {r.row_number}: {r.error}" for r in self.results if r.status == "error"]
        return data


class RowSource(Protocol):
    name: str

    def read(self) -> list[list[str]]: ...

    def add_columns(self, names: Sequence[str], first_column: int) -> None: ...

    def write_back(self, updates: list[tuple[int, int, Any]]) -> None: ...


# --- sources ----------------------------------------------------------------------------------


class SheetSource:
    """A gspread worksheet: read with one call, written with one `batch_update`."""

    name = "sheet"

    def __init__(self, worksheet: Any) -> None:
        self.worksheet = worksheet

    def read(self) -> list[list[str]]:
        try:
            return self.worksheet.get_all_values()
        except Exception as exc:  # gspread APIError, transport errors
            raise IntakeError(f"cannot read sheet {self.worksheet.title!r}: {exc}") from exc

    def add_columns(self, names: Sequence[str], first_column: int) -> None:
        """Append header cells at 1-based column `first_column`, growing the grid if needed."""
        from gspread.utils import rowcol_to_a1

        needed = first_column + len(names) - 1
        if needed > self.worksheet.col_count:
            # appendDimension: the plain Sheets API request for "more columns at the end".
            self.worksheet.spreadsheet.batch_update({"requests": [{"appendDimension": {
                "sheetId": self.worksheet.id, "dimension": "COLUMNS",
                "length": needed - self.worksheet.col_count}}]})
        self.worksheet.batch_update(
            [{"range": rowcol_to_a1(1, first_column + i), "values": [[name]]}
             for i, name in enumerate(names)],
            value_input_option="RAW",
        )

    def write_back(self, updates: list[tuple[int, int, Any]]) -> None:
        from gspread.utils import rowcol_to_a1

        if not updates:
            return
        self.worksheet.batch_update(
            [{"range": rowcol_to_a1(row, col), "values": [[value]]} for row, col, value in updates],
            value_input_option="RAW",  # a value like "=…" stays text
        )


class CsvSource:
    """A CSV file with the sheet's columns (`,`, `;` or tab; UTF-8 or cp1251). Read only."""

    name = "csv"

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    def read(self) -> list[list[str]]:
        try:
            raw = self.path.read_bytes()
        except OSError as exc:
            raise IntakeError(f"cannot read CSV {self.path}: {exc.strerror or exc}") from exc
        try:
            text = raw.decode("utf-8-sig")
        except UnicodeDecodeError:
            text = raw.decode("cp1251")
        try:
            dialect = csv.Sniffer().sniff(text[:4096], delimiters=",;\t")
        except csv.Error:
            dialect = csv.excel
        return [list(row) for row in csv.reader(io.StringIO(text), dialect)]

    def add_columns(self, names: Sequence[str], first_column: int) -> None:
        return None  # the file is input only; results are in search_batch_logs

    def write_back(self, updates: list[tuple[int, int, Any]]) -> None:
        return None


def sheet_source(settings: Settings) -> SheetSource:
    from leadgen.sheets_client import open_worksheet

    if not settings.google_sheet_id:
        raise IntakeError("GOOGLE_SHEET_ID is empty (or use `leadgen sync --csv FILE`)")
    try:
        return SheetSource(open_worksheet(settings))
    except IntakeError:
        raise
    except Exception as exc:
        raise IntakeError(f"cannot open sheet {settings.google_sheet_id!r} tab "
                          f"{settings.google_sheet_tab!r}: {type(exc).__name__}: {exc}") from exc


# --- sync -------------------------------------------------------------------------------------


def header_map(header: Sequence[str]) -> dict[str, int]:
    """Normalised header name → 0-based column (the first one wins)."""
    columns: dict[str, int] = {}
    for index, name in enumerate(header):
        key = clean_cell(name).lower()
        if key:
            columns.setdefault(key, index)
    return columns


def _ensure_service_columns(source: RowSource, values: list[list[str]],
                            columns: dict[str, int]) -> list[str]:
    missing = [name for name in SERVICE_COLUMNS if name not in columns]
    if not missing or source.name == "csv":
        return []
    width = max(len(row) for row in values)
    try:
        source.add_columns(missing, width + 1)
    except Exception as exc:
        raise IntakeError(f"the sheet lacks service columns {', '.join(missing)} and they could not "
                          f"be created ({type(exc).__name__}: {exc}); add them to the header row")
    for offset, name in enumerate(missing):
        columns[name] = width + offset
    return missing


def _cell(row: Sequence[str], columns: dict[str, int], name: str) -> str:
    index = columns.get(name)
    return row[index] if index is not None and index < len(row) else ""


def sync(session: Session, settings: Settings, source: RowSource | str | Path | None = None,
         batch_tag: str | None = None, now: datetime | None = None) -> SyncSummary:
    """One intake pass; commits per row. `source` None = the configured Google Sheet."""
    if source is None:
        source = sheet_source(settings)
    elif isinstance(source, (str, Path)):
        source = CsvSource(source)
    now = now or datetime.now(timezone.utc)
    wanted_tag = clean_cell(batch_tag if batch_tag is not None else settings.sheet_sync_batch_tag)
    summary = SyncSummary(sync_id=uuid.uuid4().hex, source=source.name)

    values = source.read()
    if not values or not any(clean_cell(cell) for cell in values[0]):
        raise IntakeError(f"the {source.name} has no header row (expected columns "
                          f"{', '.join(INPUT_COLUMNS[:4])})")
    columns = header_map(values[0])
    if "niche" not in columns:
        raise IntakeError(f"no 'niche' column in the header row: {values[0]!r}")
    summary.created_columns = _ensure_service_columns(source, values, columns)

    for offset, cells in enumerate(values[1:]):
        row_number = offset + 2
        if not any(clean_cell(cell) for cell in cells):
            continue
        summary.total_rows += 1
        row = InputRow(niche=_cell(cells, columns, "niche"), city=_cell(cells, columns, "city"),
                       country=_cell(cells, columns, "country"),
                       batch_tag=_cell(cells, columns, "batch_tag"),
                       status=_cell(cells, columns, "status"), row_number=row_number)
        if clean_cell(row.status).lower() == "done" or (
                wanted_tag and clean_cell(row.batch_tag).casefold() != wanted_tag.casefold()):
            summary.skipped_rows += 1
            continue
        result = process_row(session, settings, row, summary.sync_id, source.name, now)
        summary.results.append(result)
        summary.processed_rows += 1
        summary.error_rows += result.status == "error"
        summary.generated_queries += result.generated
        summary.inserted_queries += result.inserted
        summary.duplicate_queries += result.duplicates
        for moment in (result.first_scheduled_for, result.last_scheduled_for):
            if moment is not None:
                summary.first_scheduled_for = min(filter(None, (summary.first_scheduled_for, moment)))
                summary.last_scheduled_for = max(filter(None, (summary.last_scheduled_for, moment)))

    updates = [(result.row_number, columns[name] + 1, value)
               for result in summary.results for name, value in result.cells().items()
               if name in columns]
    try:
        source.write_back(updates)
    except Exception as exc:
        summary.writeback_error = f"{type(exc).__name__}: {exc}"
        log.error("sync %s: write-back to the %s failed: %s", summary.sync_id, source.name, exc)
    log.info("sync %s (%s): %d rows processed, %d queries inserted, %d duplicates, %d errors",
             summary.sync_id, source.name, summary.processed_rows, summary.inserted_queries,
             summary.duplicate_queries, summary.error_rows)
    return summary


def process_row(session: Session, settings: Settings, row: InputRow, sync_id: str, source: str,
                now: datetime) -> RowResult:
    """Queries of one row, inserted with its batch-log line in one transaction."""
    result = RowResult(row_number=row.row_number or 0, status="done")
    try:
        planned = generate_queries(row, settings, now)
        result.generated = len(planned)
        if not planned:
            result.status = "skipped"
        inserted, result.duplicates = plan_and_insert(session, planned, settings, now)
        result.inserted = len(inserted)
        result.first_scheduled_for, result.last_scheduled_for = bounds(inserted)
        warnings = sorted({q.region_warning for q in planned if q.region_warning})
        if warnings and result.status == "done":
            result.error = "warning: " + "; ".join(warnings)  # shown so the user can fix the place
        _log_row(session, row, result, sync_id, source)
        session.commit()
    except (OperationalError, ProgrammingError, InterfaceError):
        session.rollback()  # the database itself is unusable: stop the pass, not just this row
        raise
    except (RowError, ValueError, SQLAlchemyError) as exc:
        session.rollback()
        result = RowResult(row_number=row.row_number or 0, status="error",
                           error=f"{exc}" if isinstance(exc, RowError) else f"{type(exc).__name__}: {exc}")
        if not isinstance(exc, RowError):
            log.exception("row %s failed", row.row_number)
        _log_row(session, row, result, sync_id, source)
        session.commit()
    return result


def _log_row(session: Session, row: InputRow, result: RowResult, sync_id: str, source: str) -> None:
    session.add(SearchBatchLog(
        sync_id=sync_id, source=source, row_number=row.row_number,
        niche=clean_cell(row.niche)[:1000] or None, city=clean_cell(row.city)[:200] or None,
        country=clean_cell(row.country)[:200] or None,
        batch_tag=clean_cell(row.batch_tag)[:200] or None, generated_count=result.generated,
        inserted_count=result.inserted, duplicate_count=result.duplicates,
        first_scheduled_for=result.first_scheduled_for,
        last_scheduled_for=result.last_scheduled_for, status=result.status,
        error=(result.error or None) and result.error[:MAX_ERROR_CHARS],
    ))

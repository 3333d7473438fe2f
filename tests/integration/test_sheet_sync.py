"""Sheet sync through real gspread + google-auth against the sandbox Sheets emulator."""

from __future__ import annotations

from datetime import datetime

import pytest
from sqlalchemy import func, select

from leadgen.config import get_settings, reset_settings
from leadgen.models import SerpQuery
from leadgen.sandbox.keys import google_service_account_key
from leadgen.sandbox.sheets import SheetsEmulator
from leadgen.search.errors import IntakeError
from leadgen.search.intake import SheetSource, sync
from leadgen.tasks.intake import sync_sheet

# Service columns shuffled, not adjacent, three of them missing; a user column in between.
HEADER = ["last_error", " Niche ", "notes", "STATUS", "City", "db_inserted_count", "owner",
          "Country", "generated_count", "batch_tag"]
ROWS = [
    ["", "Стоматология", "keep me", "", "Москва", "", "Anna", "", "", "b1"],
    ["", "Окна ПВХ", "", "done", "Казань", "", "", "", "", "b1"],
    ["", "", "no niche here", "", "Москва", "", "", "", "", "b1"],
    ["", "=SUM(A1:A2)", "", "", "Москва", "", "", "", "", "b1"],
    ["", "Юристы", "", "", "Минск", "", "", "Беларусь", "", "b2"],
]


@pytest.fixture
def sheets(monkeypatch, tmp_path):
    emulator = SheetsEmulator(per_minute_quota=None)
    emulator.start()
    key_path = tmp_path / "google.json"
    emulator.add_service_account(google_service_account_key(key_path, token_uri=emulator.token_url))
    book = emulator.create("Leads", {"NICHES_INPUT": [HEADER, *ROWS]})
    monkeypatch.setenv("GOOGLE_SHEET_ID", book)
    monkeypatch.setenv("GOOGLE_SA_KEY_FILE", str(key_path))
    monkeypatch.setenv("GOOGLE_SHEETS_BASE_URL", emulator.base_url)
    reset_settings()
    yield emulator
    emulator.stop()


def by_header(values: list[list[str]]) -> list[dict[str, str]]:
    header = [h.strip().lower() for h in values[0]]
    return [dict(zip(header, row + [""] * (len(header) - len(row)))) for row in values[1:]]


def test_sheet_sync_writes_back_by_header_name(session, sheets) -> None:
    summary = sync(session, get_settings())
    assert summary.created_columns == ["db_duplicate_count", "db_first_scheduled_for",
                                       "db_last_scheduled_for"]
    values = sheets.values("NICHES_INPUT")
    assert values[0][:len(HEADER)] == HEADER  # existing header untouched, new ones appended
    rows = by_header(values)
    first, done, no_niche, formula, minsk = rows
    assert (first["status"], first["generated_count"], first["db_inserted_count"],
            first["db_duplicate_count"], first["last_error"]) == ("done", "1", "1", "0", "")
    assert first["notes"] == "keep me" and first["owner"] == "Anna" and first["niche"] == "Стоматология"
    assert datetime.fromisoformat(first["db_first_scheduled_for"]).tzinfo is not None
    assert done["status"] == "done" and done["generated_count"] == ""  # skipped, untouched
    assert no_niche["status"] == "error" and "niche is empty" in no_niche["last_error"]
    assert no_niche["notes"] == "no niche here"
    assert formula["status"] == "error" and "formula" in formula["last_error"]
    assert minsk["status"] == "done" and minsk["city"] == "Минск"

    # A second pass: rows already `done` are skipped; the error rows are retried; no duplicates.
    again = sync(session, get_settings())
    assert again.inserted_queries == 0 and again.created_columns == []
    assert session.scalar(select(func.count()).select_from(SerpQuery)) == 2


def test_batch_tag_filter_and_task(session, sheets) -> None:
    result = sync_sheet.delay("b2").get()
    assert result["processed_rows"] == 1 and result["inserted_queries"] == 1
    rows = by_header(sheets.values("NICHES_INPUT"))
    assert rows[4]["status"] == "done" and rows[0]["status"] == ""


def test_missing_sheet_is_a_clear_error(session, sheets, monkeypatch) -> None:
    monkeypatch.setenv("GOOGLE_SHEET_ID", "1doesnotexist")
    reset_settings()
    with pytest.raises(IntakeError, match="cannot open sheet"):
        sync(session, get_settings())
    assert "error" in sync_sheet.delay().get()


class ReadOnlySheet:
    title = "NICHES_INPUT"
    col_count = 100

    def get_all_values(self):
        return [["niche", "city", "status"], ["Окна", "Москва", ""]]


    def batch_update(self, *a, **k):
        raise PermissionError("protected range")


def test_service_columns_that_cannot_be_created_are_reported(session) -> None:
    with pytest.raises(IntakeError, match="lacks service columns generated_count.*could not be created.*protected range"):
        sync(session, get_settings(), SheetSource(ReadOnlySheet()))
    assert session.scalar(select(func.count()).select_from(SerpQuery)) == 0


def test_full_width_sheet_is_resized_for_new_columns(session, sheets) -> None:
    header = ["niche", "city"] + [f"col{i}" for i in range(24)]  # all 26 grid columns used
    book = sheets.create("Wide", {"NICHES_INPUT": [header, ["Окна", "Москва"]]})
    settings = get_settings().model_copy(update={"google_sheet_id": book})
    summary = sync(session, settings)
    assert len(summary.created_columns) == 7
    values = sheets.values("NICHES_INPUT", book)
    assert values[0][26:] == list(summary.created_columns)
    row = by_header(values)[0]
    assert row["status"] == "done" and row["db_inserted_count"] == "1"

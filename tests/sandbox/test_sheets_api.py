"""Sheets emulator driven by the real gspread 6 + google-auth through leadgen.sheets_client."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import gspread
import pytest
import requests
from google.auth.exceptions import RefreshError

from leadgen.config import ConfigError, load_settings
from leadgen.sandbox.http import BadRequest
from leadgen.sandbox.keys import google_service_account_key
from leadgen.sandbox.runner import SAMPLE_SHEET
from leadgen.sandbox.sheets import SheetsEmulator, Spreadsheet, parse_range
from leadgen.sheets_client import open_client, open_worksheet

TAB = "NICHES_INPUT"


@pytest.fixture(scope="module")
def emulator() -> Iterator[SheetsEmulator]:
    sheets = SheetsEmulator(per_minute_quota=None)
    sheets.start()
    yield sheets
    sheets.stop()


@pytest.fixture(scope="module")
def key_file(emulator: SheetsEmulator, tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("keys") / "sa.json"
    emulator.add_service_account(google_service_account_key(path, token_uri=emulator.token_url))
    return path


@pytest.fixture
def sheet_id(emulator: SheetsEmulator) -> str:
    return emulator.load_csv(SAMPLE_SHEET, tab=TAB)


def settings(emulator: SheetsEmulator, key_file: Path, sheet_id: str, **extra):
    return load_settings(google_sa_key_file=str(key_file), google_sheet_id=sheet_id,
                         google_sheets_base_url=emulator.base_url, **extra)


def csv_rows() -> list[list[str]]:
    import csv

    with SAMPLE_SHEET.open(encoding="utf-8") as handle:
        return [[cell for cell in row] for row in csv.reader(handle)]


def test_gspread_reads_the_seeded_sheet(emulator, key_file, sheet_id) -> None:
    worksheet = open_worksheet(settings(emulator, key_file, sheet_id))
    assert worksheet.title == TAB
    rows = csv_rows()
    expected = [row[: max(i + 1 for i, v in enumerate(row) if v)] for row in rows]
    assert worksheet.get_all_values() == [row + [""] * (4 - len(row)) for row in expected]
    records = worksheet.get_all_records()
    assert records[0] == {"niche": "стоматология", "city": "Москва", "country": "Россия",
                          "batch_tag": "demo-1"}
    counts = emulator.server.counts()
    assert counts["oauth.token"] >= 1 and counts["spreadsheets.get"] >= 2


def test_gspread_writes_come_back(emulator, key_file, sheet_id) -> None:
    worksheet = open_worksheet(settings(emulator, key_file, sheet_id))
    worksheet.update([["status", "generated_count"]], "E1")
    worksheet.batch_update([
        {"range": "E2:F2", "values": [["queued", 3]]},
        {"range": "E3", "values": [["error"]]},
    ])
    worksheet.update_acell("F3", "0")
    worksheet.append_row(["клининг", "Сочи", "Россия", "demo-9"])
    values = emulator.values(TAB, sheet_id)
    assert values[0][4:] == ["status", "generated_count"]
    assert values[1][4:] == ["queued", "3"] and values[2][4:] == ["error", "0"]
    assert values[-1] == ["клининг", "Сочи", "Россия", "demo-9"]
    unformatted = worksheet.get("F2:F3", value_render_option="UNFORMATTED_VALUE")
    assert unformatted == [[3], [0]]  # RAW keeps the int, USER_ENTERED parses "0"
    worksheet.batch_clear(["E2:F3"])
    worksheet.clear()
    assert emulator.values(TAB, sheet_id) == []


def test_structural_updates(emulator, key_file, sheet_id) -> None:
    client = open_client(settings(emulator, key_file, sheet_id))
    book = client.open_by_key(sheet_id)
    added = book.add_worksheet("Отчёт за май", rows=5, cols=3)
    added.update([["a", "b", "c"]], "A1")
    added.add_cols(2)
    added.update([["d"]], "D1")
    added.resize(rows=2)
    assert [w.title for w in book.worksheets()] == [TAB, "Отчёт за май"]
    assert emulator.values("Отчёт за май", sheet_id) == [["a", "b", "c", "d"]]
    with pytest.raises(gspread.exceptions.APIError) as error:
        added.update([["x"]], "A3")  # the sheet has 2 rows now
    assert "exceeds grid limits" in str(error.value)
    with pytest.raises(gspread.exceptions.APIError):
        book.add_worksheet("Отчёт за май", rows=1, cols=1)
    book.del_worksheet(added)
    with pytest.raises(gspread.exceptions.WorksheetNotFound):
        book.worksheet("Отчёт за май")


def test_missing_spreadsheet_and_inline_key(emulator, key_file, sheet_id) -> None:
    inline = settings(emulator, key_file, "1missingSpreadsheet",
                      google_sa_key_json=key_file.read_text())
    with pytest.raises(gspread.exceptions.SpreadsheetNotFound):
        open_worksheet(inline.model_copy(update={"google_sa_key_file": ""}))


def test_unknown_key_cannot_get_a_token(emulator, sheet_id, tmp_path) -> None:
    rogue = tmp_path / "rogue.json"
    google_service_account_key(rogue, token_uri=emulator.token_url)
    with pytest.raises(RefreshError):
        open_worksheet(settings(emulator, rogue, sheet_id))


def test_revoked_token_is_refreshed_once_on_401(emulator, key_file, sheet_id) -> None:
    worksheet = open_worksheet(settings(emulator, key_file, sheet_id))
    before = emulator.server.counts()["oauth.token"]
    emulator.tokens.revoke_all()
    assert worksheet.acell("A1").value == "niche"
    assert emulator.server.counts()["oauth.token"] == before + 1


def test_bad_settings_are_config_errors(tmp_path) -> None:
    with pytest.raises(ConfigError):
        open_worksheet(load_settings(google_sheet_id="x"))
    with pytest.raises(ConfigError):
        open_worksheet(load_settings(google_sheet_id="x", google_sa_key_json="{broken"))
    (tmp_path / "k.json").write_text(json.dumps({"type": "service_account"}))
    with pytest.raises(ConfigError):
        open_worksheet(load_settings(google_sheet_id="x", google_sa_key_file=str(tmp_path / "k.json")))


def test_raw_requests_auth_and_encoded_ranges(emulator, sheet_id) -> None:
    base = f"{emulator.base_url}/v4/spreadsheets/{sheet_id}"
    assert requests.get(base, timeout=5).status_code == 401
    bad = requests.get(base, headers={"Authorization": "Bearer ya29.nope"}, timeout=5)
    assert bad.status_code == 401 and bad.json()["error"]["status"] == "UNAUTHENTICATED"
    token, _ = emulator.tokens.issue("t@x", 60, lambda: "ya29.test-token")
    emulator._scopes[token] = {"https://www.googleapis.com/auth/spreadsheets"}
    headers = {"Authorization": f"Bearer {token}"}
    url = f"{base}/values/%27{TAB}%27%21A2%3AB3"
    got = requests.get(url, headers=headers, timeout=5).json()
    assert got == {"range": f"{TAB}!A2:B3", "majorDimension": "ROWS",
                   "values": [["стоматология", "Москва"], ["ремонт квартир", "Санкт-Петербург"]]}
    appended = requests.post(f"{base}/values/%27{TAB}%27%21A1:append",
                             params={"valueInputOption": "RAW", "insertDataOption": "INSERT_ROWS",
                                     "includeValuesInResponse": "False"},
                             json={"values": [["x", "y"]]}, headers=headers, timeout=5).json()
    assert appended["tableRange"] == f"{TAB}!A1:D12"
    assert appended["updates"]["updatedRange"] == f"{TAB}!A13:B13"
    missing_option = requests.put(url, json={"values": [["a"]]}, headers=headers, timeout=5)
    assert missing_option.status_code == 400
    too_many = requests.put(url, params={"valueInputOption": "RAW"},
                            json={"values": [["a"], ["b"], ["c"]]}, headers=headers, timeout=5)
    assert too_many.status_code == 400 and "tried writing to row" in too_many.json()["error"]["message"]


@pytest.mark.parametrize("spec, expected", [
    ("Data", (0, 0, 1000, 26)),
    ("'Data'", (0, 0, 1000, 26)),
    ("Data!A1:D4", (0, 0, 4, 4)),
    ("'My ''quoted'' tab'!B2", (1, 1, 2, 2)),
    ("A1:B2", (0, 0, 2, 2)),
    ("Data!A:C", (0, 0, 1000, 3)),
    ("Data!2:3", (1, 0, 3, 26)),
    ("Data!A5:C", (4, 0, 1000, 3)),
    ("Data!C3:A1", (0, 0, 3, 3)),
    ("'My ''quoted'' tab'", (0, 0, 1000, 26)),
])
def test_a1_parsing(spec: str, expected: tuple[int, int, int, int]) -> None:
    sheets = SheetsEmulator()
    book_id = sheets.create("t", {"Data": [], "My 'quoted' tab": []})
    grid = parse_range(sheets.books[book_id], spec)
    assert (grid.row0, grid.col0, grid.end_row, grid.end_col) == expected


@pytest.mark.parametrize("spec", ["Nope!A1", "Data!1A", "Data!A1:B2:C3", "Data!A1001",
                                  "Data!AA1", "'Data!A1", "Data!A:3", "Data!*"])
def test_a1_parsing_rejects(spec: str) -> None:
    sheets = SheetsEmulator()
    book = sheets.books[sheets.create("t", {"Data": []})]
    assert isinstance(book, Spreadsheet)
    with pytest.raises(BadRequest) as error:
        parse_range(book, spec)
    assert error.value.status == 400

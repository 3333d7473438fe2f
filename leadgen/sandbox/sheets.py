"""Google Sheets API v4 emulator (the subset gspread 6 uses) plus the OAuth token endpoint.

Paths arrive as gspread sends them: `/v4/spreadsheets/{id}/values/%27Sheet1%27%21A1:append`; the
literal `:` after the still-encoded range starts the method suffix, then the range is decoded.
"""

from __future__ import annotations

import csv
import re
import secrets
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote

import jwt
from cryptography.hazmat.primitives import serialization

from leadgen.sandbox.faults import Faults
from leadgen.sandbox.http import BadRequest, JsonServer, Request, Response
from leadgen.sandbox.iam import TokenRegistry
from leadgen.sandbox.keys import public_key_of

GOOGLE_TOKEN_AUD = "https://oauth2.googleapis.com/token"
JWT_BEARER = "urn:ietf:params:oauth:grant-type:jwt-bearer"
SCOPE_RW = {"https://www.googleapis.com/auth/spreadsheets", "https://www.googleapis.com/auth/drive",
            "https://www.googleapis.com/auth/drive.file"}
SCOPE_RO = SCOPE_RW | {"https://www.googleapis.com/auth/spreadsheets.readonly",
                       "https://www.googleapis.com/auth/drive.readonly"}
STATUS_NAMES = {400: "INVALID_ARGUMENT", 401: "UNAUTHENTICATED", 403: "PERMISSION_DENIED",
                404: "NOT_FOUND", 409: "ALREADY_EXISTS", 429: "RESOURCE_EXHAUSTED",
                500: "INTERNAL", 503: "UNAVAILABLE"}
ACKNOWLEDGED_REQUESTS = {  # formatting and the like: accepted, no state kept
    "repeatCell", "updateCells", "updateBorders", "mergeCells", "unmergeCells",
    "updateDimensionProperties", "autoResizeDimensions", "setBasicFilter", "clearBasicFilter",
    "addConditionalFormatRule", "deleteConditionalFormatRule", "setDataValidation",
    "addProtectedRange", "deleteProtectedRange", "updateProtectedRange", "sortRange",
    "addNamedRange", "deleteNamedRange", "updateSpreadsheetProperties", "addFilterView",
}
_NUMBER = re.compile(r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$")
_SIMPLE_TITLE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_CELL = re.compile(r"^([A-Za-z]{0,3})(\d*)$")


def google_error(status: int, message: str) -> Response:
    return Response(status, {"error": {"code": status, "message": message,
                                       "status": STATUS_NAMES.get(status, "UNKNOWN")}})


def column_letter(index: int) -> str:
    """0 → A, 25 → Z, 26 → AA."""
    letters = ""
    index += 1
    while index:
        index, rem = divmod(index - 1, 26)
        letters = chr(65 + rem) + letters
    return letters


def column_index(letters: str) -> int:
    value = 0
    for char in letters.upper():
        value = value * 26 + ord(char) - 64
    return value - 1


def quote_title(title: str) -> str:
    if _SIMPLE_TITLE.match(title) and not re.fullmatch(r"[A-Za-z]{1,3}\d+", title):
        return title
    return "'" + title.replace("'", "''") + "'"


def formatted(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() else repr(value)
    return str(value)


def user_entered(value: Any) -> Any:
    """How the Sheets UI parses typed input (numbers, booleans, a leading apostrophe)."""
    if not isinstance(value, str):
        return value
    if value.startswith("'"):
        return value[1:]
    stripped = value.strip()
    if _NUMBER.match(stripped):
        number = float(stripped)
        return int(number) if number.is_integer() and "e" not in stripped.lower() else number
    if stripped.upper() in ("TRUE", "FALSE"):
        return stripped.upper() == "TRUE"
    return value


@dataclass
class Sheet:
    sheet_id: int
    title: str
    index: int
    row_count: int = 1000
    column_count: int = 26
    cells: list[list[Any]] = field(default_factory=list)

    def get(self, row: int, col: int) -> Any:
        if row < len(self.cells) and col < len(self.cells[row]):
            return self.cells[row][col]
        return None

    def set(self, row: int, col: int, value: Any) -> None:
        while len(self.cells) <= row:
            self.cells.append([])
        line = self.cells[row]
        while len(line) <= col:
            line.append(None)
        line[col] = None if value == "" else value

    def last_row(self) -> int:
        """Index after the last row that has a value."""
        for index in range(len(self.cells) - 1, -1, -1):
            if any(value not in (None, "") for value in self.cells[index]):
                return index + 1
        return 0

    def properties(self) -> dict[str, Any]:
        return {"sheetId": self.sheet_id, "title": self.title, "index": self.index,
                "sheetType": "GRID",
                "gridProperties": {"rowCount": self.row_count, "columnCount": self.column_count}}


@dataclass
class GridRange:
    sheet: Sheet
    row0: int
    col0: int
    row1: int | None  # exclusive; None = to the end of the grid
    col1: int | None
    anchor: bool = False  # a single cell: writes start there and may extend past it

    @property
    def end_row(self) -> int:
        return self.sheet.row_count if self.row1 is None else self.row1

    @property
    def end_col(self) -> int:
        return self.sheet.column_count if self.col1 is None else self.col1

    def a1(self, row1: int | None = None, col1: int | None = None) -> str:
        end_row = self.end_row if row1 is None else row1
        end_col = self.end_col if col1 is None else col1
        start = f"{column_letter(self.col0)}{self.row0 + 1}"
        end = f"{column_letter(max(end_col - 1, self.col0))}{max(end_row, self.row0 + 1)}"
        name = quote_title(self.sheet.title)
        return f"{name}!{start}" if start == end else f"{name}!{start}:{end}"


@dataclass
class Spreadsheet:
    id: str
    title: str
    sheets: list[Sheet] = field(default_factory=list)
    created: float = field(default_factory=time.time)
    modified: float = field(default_factory=time.time)

    def sheet(self, title: str) -> Sheet | None:
        for sheet in self.sheets:
            if sheet.title.lower() == title.lower():
                return sheet
        return None

    def by_id(self, sheet_id: Any) -> Sheet:
        for sheet in self.sheets:
            if sheet.sheet_id == sheet_id:
                return sheet
        raise BadRequest(400, f"No grid with id: {sheet_id}")

    def metadata(self) -> dict[str, Any]:
        return {
            "spreadsheetId": self.id,
            "properties": {"title": self.title, "locale": "ru_RU", "autoRecalc": "ON_CHANGE",
                           "timeZone": "Europe/Moscow",
                           "defaultFormat": {"backgroundColor": {"red": 1, "green": 1, "blue": 1},
                                             "verticalAlignment": "BOTTOM", "wrapStrategy":
                                             "OVERFLOW_CELL", "textFormat": {"fontFamily": "arial",
                                                                             "fontSize": 10}}},
            "sheets": [{"properties": sheet.properties()}
                       for sheet in sorted(self.sheets, key=lambda s: s.index)],
            "spreadsheetUrl": f"https://docs.google.com/spreadsheets/d/{self.id}/edit",
        }


def split_sheet(spec: str) -> tuple[str | None, str]:
    """`'My ''Sheet'''!A1:B2` → ("My 'Sheet'", "A1:B2"); `A1:B2` → (None, "A1:B2")."""
    if spec.startswith("'"):
        index, title = 1, []
        while index < len(spec):
            char = spec[index]
            if char == "'":
                if spec[index + 1:index + 2] == "'":
                    title.append("'")
                    index += 2
                    continue
                rest = spec[index + 1:]
                if rest and not rest.startswith("!"):
                    raise BadRequest(400, f"Unable to parse range: {spec}")
                return "".join(title), rest[1:]
            title.append(char)
            index += 1
        raise BadRequest(400, f"Unable to parse range: {spec}")
    if "!" in spec:
        title, _, a1 = spec.partition("!")
        return title, a1
    return None, spec


def parse_range(book: Spreadsheet, spec: str) -> GridRange:
    """A1 notation against a spreadsheet: whole sheets, cells, row-only and column-only ranges."""
    spec = spec.strip()
    title, a1 = split_sheet(spec)
    if title is None:
        whole = book.sheet(a1)
        if whole is not None:
            return GridRange(whole, 0, 0, None, None)
        sheet = sorted(book.sheets, key=lambda s: s.index)[0]
    else:
        found = book.sheet(title)
        if found is None:
            raise BadRequest(400, f"Unable to parse range: {spec}")
        sheet = found
    if not a1:
        return GridRange(sheet, 0, 0, None, None)
    left, sep, right = a1.partition(":")
    start, end = _CELL.match(left), _CELL.match(right) if sep else None
    if start is None or (sep and end is None) or not (start.group(1) or start.group(2)):
        raise BadRequest(400, f"Unable to parse range: {spec}")
    c0 = column_index(start.group(1)) if start.group(1) else 0
    r0 = int(start.group(2)) - 1 if start.group(2) else 0
    if not sep:
        if not (start.group(1) and start.group(2)):
            raise BadRequest(400, f"Unable to parse range: {spec}")
        grid = GridRange(sheet, r0, c0, r0 + 1, c0 + 1, anchor=True)
    else:
        assert end is not None
        if not (end.group(1) or end.group(2)):
            raise BadRequest(400, f"Unable to parse range: {spec}")
        c1 = column_index(end.group(1)) + 1 if end.group(1) else None
        r1 = int(end.group(2)) if end.group(2) else None
        if start.group(2) == "" and end.group(1) == "":  # "A:3" is not A1 notation
            raise BadRequest(400, f"Unable to parse range: {spec}")
        if r1 is not None and r1 <= r0:
            r0, r1 = r1 - 1, r0 + 1
        if c1 is not None and c1 <= c0:
            c0, c1 = c1 - 1, c0 + 1
        grid = GridRange(sheet, r0, c0, r1, c1)
    if r0 < 0 or grid.end_row > sheet.row_count or grid.end_col > sheet.column_count \
            or r0 >= sheet.row_count or c0 >= sheet.column_count:
        raise BadRequest(400, f"Range ({quote_title(sheet.title)}!{a1}) exceeds grid limits. "
                              f"Max rows: {sheet.row_count}, max columns: {sheet.column_count}")
    return grid


class _Window:
    def __init__(self, limit: int | None) -> None:
        self.limit = limit
        self.stamps: deque[float] = deque()

    def allow(self, now: float) -> bool:
        if self.limit is None:
            return True
        while self.stamps and self.stamps[0] <= now - 60:
            self.stamps.popleft()
        if len(self.stamps) >= self.limit:
            return False
        self.stamps.append(now)
        return True


class SheetsEmulator:
    """Spreadsheets in memory, served like sheets.googleapis.com; `/token` like oauth2.googleapis.com."""

    def __init__(self, *, faults: Faults | None = None, token_lifetime_s: float = 3600,
                 per_minute_quota: int | None = 60,
                 clock: Callable[[], float] = time.time) -> None:
        self.tokens = TokenRegistry(clock)
        self.token_lifetime_s = token_lifetime_s
        self.clock = clock
        self.books: dict[str, Spreadsheet] = {}
        self.keys: dict[str, tuple[str, Any]] = {}  # private_key_id -> (client_email, public key)
        self._scopes: dict[str, set[str]] = {}
        self._lock = threading.RLock()
        self._quota = {"read": _Window(per_minute_quota), "write": _Window(per_minute_quota)}
        server = self.server = JsonServer("sheets", faults=faults, error_formatter=google_error)
        server.add_route("POST", r"/token", self.token, name="oauth.token", fault_key="oauth")
        book = r"/v4/spreadsheets/(?P<book_id>[A-Za-z0-9_-]+)"
        server.add_route("GET", book, self.get_spreadsheet, name="spreadsheets.get")
        server.add_route("POST", book + r":batchUpdate", self.batch_update, name="batchUpdate")
        server.add_route("GET", book + r"/values:batchGet", self.values_batch_get,
                         name="values.batchGet")
        server.add_route("POST", book + r"/values:batchUpdate", self.values_batch_update,
                         name="values.batchUpdate")
        server.add_route("POST", book + r"/values:batchClear", self.values_batch_clear,
                         name="values.batchClear")
        server.add_route("GET", book + r"/values/(?P<rng>[^/:]+)", self.values_get,
                         name="values.get")
        server.add_route("PUT", book + r"/values/(?P<rng>[^/:]+)", self.values_update,
                         name="values.update")
        server.add_route("POST", book + r"/values/(?P<rng>[^/:]+):append", self.values_append,
                         name="values.append")
        server.add_route("POST", book + r"/values/(?P<rng>[^/:]+):clear", self.values_clear,
                         name="values.clear")
        server.add_route("GET", r"/drive/v3/files/(?P<book_id>[A-Za-z0-9_-]+)", self.drive_file,
                         name="drive.files.get")

    # --- lifecycle and test helpers -----------------------------------------------------------
    def start(self) -> int:
        return self.server.start()

    def stop(self) -> None:
        self.server.stop()

    @property
    def base_url(self) -> str:
        return self.server.url

    @property
    def token_url(self) -> str:
        return self.server.url + "/token"

    def add_service_account(self, key: dict[str, Any]) -> None:
        public = serialization.load_pem_public_key(public_key_of(key["private_key"]).encode())
        self.keys[key["private_key_id"]] = (key["client_email"], public)

    def create(self, title: str = "Leads", sheets: dict[str, list[list[Any]]] | None = None,
               spreadsheet_id: str | None = None) -> str:
        book_id = spreadsheet_id or "1" + secrets.token_urlsafe(32)[:43]
        book = Spreadsheet(book_id, title)
        for index, (name, rows) in enumerate((sheets or {"Sheet1": []}).items()):
            sheet_id = 0 if index == 0 else secrets.randbelow(2**31 - 1) + 1
            sheet = Sheet(sheet_id, name, index, row_count=max(1000, len(rows)),
                          column_count=max([26] + [len(row) for row in rows]))
            for r, row in enumerate(rows):
                for c, value in enumerate(row):
                    if value not in (None, ""):
                        sheet.set(r, c, value)
            book.sheets.append(sheet)
        with self._lock:
            self.books[book_id] = book
        return book_id

    def load_csv(self, path: Path, *, tab: str = "NICHES_INPUT", title: str = "Leadgen input",
                 spreadsheet_id: str | None = None) -> str:
        with Path(path).open(encoding="utf-8-sig", newline="") as handle:
            rows = [row for row in csv.reader(handle)]
        return self.create(title, {tab: rows}, spreadsheet_id)

    def values(self, sheet_title: str, spreadsheet_id: str | None = None) -> list[list[str]]:
        """The sheet as the UI shows it (formatted strings), trailing empties trimmed."""
        with self._lock:
            book = self.books[spreadsheet_id] if spreadsheet_id else next(iter(self.books.values()))
            sheet = book.sheet(sheet_title)
            if sheet is None:
                raise KeyError(sheet_title)
            return _trim([[formatted(v) for v in row] for row in sheet.cells])

    def records(self, sheet_title: str, spreadsheet_id: str | None = None) -> list[dict[str, str]]:
        rows = self.values(sheet_title, spreadsheet_id)
        if not rows:
            return []
        header = rows[0]
        return [{name: (row[i] if i < len(row) else "") for i, name in enumerate(header)}
                for row in rows[1:]]

    # --- OAuth --------------------------------------------------------------------------------
    def token(self, request: Request) -> Response:
        form = {k: v[0] for k, v in parse_qs(request.body.decode("utf-8", "replace")).items()}
        if form.get("grant_type") != JWT_BEARER:
            return _oauth_error("unsupported_grant_type", "Invalid grant_type: "
                                + form.get("grant_type", ""))
        assertion = form.get("assertion", "")
        try:
            header = jwt.get_unverified_header(assertion)
        except jwt.PyJWTError:
            return _oauth_error("invalid_request", "Invalid JWT: malformed assertion")
        key = self.keys.get(header.get("kid", ""))
        if header.get("alg") != "RS256" or key is None:
            return _oauth_error("invalid_grant", "Invalid JWT Signature.")
        email, public = key
        try:
            claims = jwt.decode(assertion, public, algorithms=["RS256"],
                                audience=[GOOGLE_TOKEN_AUD, self.token_url],
                                options={"require": ["iss", "aud", "iat", "exp"]}, leeway=5)
        except jwt.InvalidSignatureError:
            return _oauth_error("invalid_grant", "Invalid JWT Signature.")
        except jwt.PyJWTError as exc:
            return _oauth_error("invalid_grant", f"Invalid JWT: {exc}. Token must be a short-lived "
                                "token (60 minutes) and in a reasonable timeframe.")
        if claims["iss"] != email:
            return _oauth_error("invalid_grant", "Invalid JWT Signature.")
        if claims["exp"] - claims["iat"] > 3600:
            return _oauth_error("invalid_grant", "Invalid JWT: Token must be a short-lived token "
                                "(60 minutes) and in a reasonable timeframe.")
        scopes = set(str(claims.get("scope", "")).split())
        if not scopes & SCOPE_RO:
            return _oauth_error("invalid_scope", "Invalid OAuth scope or ID token audience provided.")
        token, _ = self.tokens.issue(email, self.token_lifetime_s,
                                     lambda: "ya29.c." + secrets.token_urlsafe(96))
        with self._lock:
            self._scopes[token] = scopes
        return Response(200, {"access_token": token, "expires_in": int(self.token_lifetime_s) - 1,
                              "token_type": "Bearer"})

    # --- API plumbing -------------------------------------------------------------------------
    def _auth(self, request: Request, write: bool) -> None:
        scheme, _, token = request.authorization.partition(" ")
        if scheme.lower() != "bearer" or not token:
            raise BadRequest(401, "Request is missing required authentication credential. Expected "
                                  "OAuth 2 access token, login cookie or other valid authentication "
                                  "credential.")
        if self.tokens.bearer(token.strip()) is None:
            raise BadRequest(401, "Request had invalid authentication credentials. Expected OAuth 2 "
                                  "access token, login cookie or other valid authentication "
                                  "credential.")
        with self._lock:
            scopes = self._scopes.get(token.strip(), set())
        if not scopes & (SCOPE_RW if write else SCOPE_RO):
            raise BadRequest(403, "Request had insufficient authentication scopes.")
        with self._lock:
            allowed = self._quota["write" if write else "read"].allow(self.clock())
        if not allowed:
            kind = "Write" if write else "Read"
            raise BadRequest(429, f"Quota exceeded for quota metric '{kind} requests' and limit "
                                  f"'{kind} requests per minute per user' of service "
                                  "'sheets.googleapis.com'.")

    def _book(self, request: Request, book_id: str, write: bool = False) -> Spreadsheet:
        self._auth(request, write)
        book = self.books.get(book_id)
        if book is None:
            raise BadRequest(404, "Requested entity was not found.")
        return book

    @staticmethod
    def _input_option(request: Request, body: dict[str, Any] | None = None) -> str:
        option = (body or {}).get("valueInputOption") or request.param("valueInputOption")
        if not option:
            raise BadRequest(400, "'valueInputOption' is required but not specified")
        if option not in ("RAW", "USER_ENTERED"):
            raise BadRequest(400, f"Invalid value at 'value_input_option' ({option})")
        return option

    @staticmethod
    def _body(request: Request) -> dict[str, Any]:
        body = request.json()
        if body is None:
            return {}
        if not isinstance(body, dict):
            raise BadRequest(400, "Invalid JSON payload received. Expected an object.")
        return body

    def _read(self, grid: GridRange, render: str, major: str) -> dict[str, Any]:
        rows = []
        for r in range(grid.row0, min(grid.end_row, len(grid.sheet.cells))):
            row = []
            for c in range(grid.col0, grid.end_col):
                value = grid.sheet.get(r, c)
                row.append(formatted(value) if render == "FORMATTED_VALUE" or value is None
                           else value)
            rows.append(row)
        if major == "COLUMNS":
            width = max((len(row) for row in rows), default=0)
            rows = [[row[c] if c < len(row) else "" for row in rows] for c in range(width)]
        result: dict[str, Any] = {"range": grid.a1(), "majorDimension": major}
        trimmed = _trim(rows)
        if trimmed:
            result["values"] = trimmed
        return result

    def _write(self, grid: GridRange, values: Any, major: str | None, option: str,
               bounded: bool = True) -> dict[str, Any]:
        if not isinstance(values, list) or not all(isinstance(row, list) for row in values):
            raise BadRequest(400, "Invalid values: expected a list of lists")
        if major == "COLUMNS":
            height = max((len(col) for col in values), default=0)
            values = [[col[r] if r < len(col) else None for col in values] for r in range(height)]
        elif major not in (None, "ROWS", "DIMENSION_UNSPECIFIED"):
            raise BadRequest(400, f"Invalid value at 'data.major_dimension' ({major})")
        height = len(values)
        width = max((len(row) for row in values), default=0)
        bounded = bounded and not grid.anchor
        if bounded and grid.row1 is not None and grid.row0 + height > grid.row1:
            raise BadRequest(400, f"Requested writing within range [{grid.a1()}], but tried writing "
                                  f"to row [{grid.row0 + height}]")
        if bounded and grid.col1 is not None and grid.col0 + width > grid.col1:
            raise BadRequest(400, f"Requested writing within range [{grid.a1()}], but tried writing "
                                  f"to column [{column_letter(grid.col0 + width - 1)}]")
        sheet = grid.sheet
        if grid.row0 + height > sheet.row_count or grid.col0 + width > sheet.column_count:
            raise BadRequest(400, f"Range ({grid.a1(grid.row0 + height, grid.col0 + width)}) "
                                  f"exceeds grid limits. Max rows: {sheet.row_count}, max columns: "
                                  f"{sheet.column_count}")
        cells = 0
        for r, row in enumerate(values):
            for c, value in enumerate(row):
                if value is None:
                    continue
                if isinstance(value, (dict, list)):
                    raise BadRequest(400, "Invalid values: cells must be strings, numbers or booleans")
                sheet.set(grid.row0 + r, grid.col0 + c, user_entered(value)
                          if option == "USER_ENTERED" else value)
                cells += 1
        result: dict[str, Any] = {"updatedRange": grid.a1(grid.row0 + max(height, 1),
                                                          grid.col0 + max(width, 1))}
        if cells:
            result.update(updatedRows=height, updatedColumns=width, updatedCells=cells)
        return result

    # --- endpoints ----------------------------------------------------------------------------
    def get_spreadsheet(self, request: Request, book_id: str) -> Response:
        with self._lock:
            book = self._book(request, book_id)
            data = book.metadata()
            if (request.param("includeGridData") or "").lower() == "true":
                for entry, sheet in zip(data["sheets"], sorted(book.sheets, key=lambda s: s.index)):
                    entry["data"] = [{"startRow": 0, "startColumn": 0, "rowData": [
                        {"values": [{"formattedValue": formatted(v)} for v in row]}
                        for row in sheet.cells]}]
            return Response(200, data)

    def values_get(self, request: Request, book_id: str, rng: str) -> Response:
        with self._lock:
            book = self._book(request, book_id)
            grid = parse_range(book, unquote(rng))
            render = request.param("valueRenderOption") or "FORMATTED_VALUE"
            major = request.param("majorDimension") or "ROWS"
            return Response(200, self._read(grid, render, major))

    def values_batch_get(self, request: Request, book_id: str) -> Response:
        with self._lock:
            book = self._book(request, book_id)
            render = request.param("valueRenderOption") or "FORMATTED_VALUE"
            major = request.param("majorDimension") or "ROWS"
            ranges = [self._read(parse_range(book, spec), render, major)
                      for spec in request.query.get("ranges", [])]
            return Response(200, {"spreadsheetId": book.id, "valueRanges": ranges})

    def values_update(self, request: Request, book_id: str, rng: str) -> Response:
        with self._lock:
            book = self._book(request, book_id, write=True)
            option = self._input_option(request)
            body = self._body(request)
            grid = parse_range(book, unquote(rng))
            if body.get("range") and parse_range(book, body["range"]).a1() != grid.a1():
                raise BadRequest(400, "Requested range and the body range do not match")
            result = self._write(grid, body.get("values") or [], body.get("majorDimension"), option)
            book.modified = time.time()
            return Response(200, {"spreadsheetId": book.id, **result})

    def values_batch_update(self, request: Request, book_id: str) -> Response:
        with self._lock:
            book = self._book(request, book_id, write=True)
            body = self._body(request)
            option = self._input_option(request, body)
            data = body.get("data") or []
            grids = [parse_range(book, str(item.get("range", ""))) for item in data]
            snapshot = {s.sheet_id: [list(row) for row in s.cells] for s in book.sheets}
            responses = []
            try:
                for grid, item in zip(grids, data):
                    responses.append({"spreadsheetId": book.id, **self._write(
                        grid, item.get("values") or [], item.get("majorDimension"), option)})
            except BadRequest:  # all or nothing, like the real API
                for sheet in book.sheets:
                    sheet.cells = snapshot[sheet.sheet_id]
                raise
            book.modified = time.time()
            result: dict[str, Any] = {"spreadsheetId": book.id}
            if responses:
                result.update(
                    totalUpdatedRows=sum(r.get("updatedRows", 0) for r in responses),
                    totalUpdatedColumns=max(r.get("updatedColumns", 0) for r in responses),
                    totalUpdatedCells=sum(r.get("updatedCells", 0) for r in responses),
                    totalUpdatedSheets=len({g.sheet.sheet_id for g in grids}),
                    responses=responses)
            return Response(200, result)

    def values_append(self, request: Request, book_id: str, rng: str) -> Response:
        with self._lock:
            book = self._book(request, book_id, write=True)
            option = self._input_option(request)
            body = self._body(request)
            values = body.get("values") or []
            grid = parse_range(book, unquote(rng))
            if grid.anchor:  # the table is searched from that cell on
                grid = GridRange(grid.sheet, grid.row0, grid.col0, None, None)
            sheet = grid.sheet
            last, first_col, last_col = grid.row0, None, None
            for r in range(grid.row0, len(sheet.cells)):
                for c in range(grid.col0, min(grid.end_col, len(sheet.cells[r]))):
                    if sheet.cells[r][c] not in (None, ""):
                        last = r + 1
                        first_col = c if first_col is None else min(first_col, c)
                        last_col = c + 1 if last_col is None else max(last_col, c + 1)
            result: dict[str, Any] = {"spreadsheetId": book.id}
            start_col = grid.col0
            if first_col is not None and last_col is not None:
                table = GridRange(sheet, grid.row0, first_col, last, last_col)
                result["tableRange"] = table.a1()
                start_col = first_col
            height = len(values)
            width = max((len(row) for row in values), default=0)
            insert = (request.param("insertDataOption") or "OVERWRITE") == "INSERT_ROWS"
            if insert and height:
                sheet.cells[last:last] = [[] for _ in range(height)]
                sheet.row_count += height
            sheet.row_count = max(sheet.row_count, last + height)
            sheet.column_count = max(sheet.column_count, start_col + width)
            target = GridRange(sheet, last, start_col, last + height, start_col + width)
            updates = {"spreadsheetId": book.id,
                       **self._write(target, values, body.get("majorDimension"), option)}
            if (request.param("includeValuesInResponse") or "").lower() == "true":
                updates["updatedData"] = self._read(target, "FORMATTED_VALUE", "ROWS")
            result["updates"] = updates
            book.modified = time.time()
            return Response(200, result)

    def _clear(self, grid: GridRange) -> str:
        for r in range(grid.row0, min(grid.end_row, len(grid.sheet.cells))):
            row = grid.sheet.cells[r]
            for c in range(grid.col0, min(grid.end_col, len(row))):
                row[c] = None
        return grid.a1()

    def values_clear(self, request: Request, book_id: str, rng: str) -> Response:
        with self._lock:
            book = self._book(request, book_id, write=True)
            cleared = self._clear(parse_range(book, unquote(rng)))
            return Response(200, {"spreadsheetId": book.id, "clearedRange": cleared})

    def values_batch_clear(self, request: Request, book_id: str) -> Response:
        with self._lock:
            book = self._book(request, book_id, write=True)
            grids = [parse_range(book, str(spec)) for spec in self._body(request).get("ranges", [])]
            return Response(200, {"spreadsheetId": book.id,
                                  "clearedRanges": [self._clear(grid) for grid in grids]})

    def batch_update(self, request: Request, book_id: str) -> Response:
        with self._lock:
            book = self._book(request, book_id, write=True)
            body = self._body(request)
            requests = body.get("requests")
            if not isinstance(requests, list) or not requests:
                raise BadRequest(400, "Must specify at least one request.")
            replies = [self._structural(book, index, item) for index, item in enumerate(requests)]
            book.modified = time.time()
            result: dict[str, Any] = {"spreadsheetId": book.id, "replies": replies}
            if body.get("includeSpreadsheetInResponse"):
                result["updatedSpreadsheet"] = book.metadata()
            return Response(200, result)

    def _structural(self, book: Spreadsheet, index: int, item: Any) -> dict[str, Any]:
        if not isinstance(item, dict) or len(item) != 1:
            raise BadRequest(400, f"Invalid requests[{index}]: exactly one kind of request expected")
        kind, spec = next(iter(item.items()))
        if kind == "addSheet":
            props = spec.get("properties", {})
            title = props.get("title") or f"Sheet{len(book.sheets) + 1}"
            if book.sheet(title) is not None:
                raise BadRequest(400, f'Invalid requests[{index}].addSheet: A sheet with the name '
                                      f'"{title}" already exists. Please enter another name.')
            grid = props.get("gridProperties", {})
            sheet = Sheet(props.get("sheetId") or secrets.randbelow(2**31 - 1) + 1, title,
                          props.get("index", len(book.sheets)), grid.get("rowCount", 1000),
                          grid.get("columnCount", 26))
            for other in book.sheets:
                if other.index >= sheet.index:
                    other.index += 1
            book.sheets.append(sheet)
            return {"addSheet": {"properties": sheet.properties()}}
        if kind == "deleteSheet":
            sheet = book.by_id(spec.get("sheetId"))
            if len(book.sheets) == 1:
                raise BadRequest(400, f"Invalid requests[{index}].deleteSheet: You can't remove all "
                                      "the sheets in a document.")
            book.sheets.remove(sheet)
            for position, other in enumerate(sorted(book.sheets, key=lambda s: s.index)):
                other.index = position
            return {}
        if kind == "appendDimension":
            sheet = book.by_id(spec.get("sheetId"))
            length = int(spec.get("length", 0))
            if length < 1:
                raise BadRequest(400, f"Invalid requests[{index}].appendDimension: length must be > 0")
            if spec.get("dimension") == "COLUMNS":
                sheet.column_count += length
            elif spec.get("dimension") == "ROWS":
                sheet.row_count += length
            else:
                raise BadRequest(400, f"Invalid requests[{index}].appendDimension: bad dimension")
            return {}
        if kind in ("insertDimension", "deleteDimension"):
            rng = spec.get("range", {})
            sheet = book.by_id(rng.get("sheetId"))
            start, end = int(rng.get("startIndex", 0)), int(rng.get("endIndex", 0))
            if end <= start:
                raise BadRequest(400, f"Invalid requests[{index}].{kind}: empty range")
            rows = rng.get("dimension") == "ROWS"
            if kind == "insertDimension":
                if rows:
                    sheet.cells[start:start] = [[] for _ in range(end - start)] \
                        if start <= len(sheet.cells) else []
                    sheet.row_count += end - start
                else:
                    for line in sheet.cells:
                        if start <= len(line):
                            line[start:start] = [None] * (end - start)
                    sheet.column_count += end - start
            else:
                if rows:
                    del sheet.cells[start:end]
                    sheet.row_count -= min(end, sheet.row_count) - start
                else:
                    for line in sheet.cells:
                        del line[start:end]
                    sheet.column_count -= min(end, sheet.column_count) - start
            return {}
        if kind == "updateSheetProperties":
            props = spec.get("properties", {})
            sheet = book.by_id(props.get("sheetId"))
            fields = [f.strip().replace("/", ".")  # gspread writes gridProperties/rowCount
                      for f in str(spec.get("fields", "")).split(",") if f.strip()]
            if not fields:
                raise BadRequest(400, f"Invalid requests[{index}].updateSheetProperties: "
                                      "At least one field must be updated, but none was specified.")
            grid = props.get("gridProperties", {})
            for name in fields:
                if name == "title":
                    sheet.title = props["title"]
                elif name == "gridProperties.rowCount":
                    sheet.row_count = int(grid["rowCount"])
                    del sheet.cells[sheet.row_count:]
                elif name == "gridProperties.columnCount":
                    sheet.column_count = int(grid["columnCount"])
                    for line in sheet.cells:
                        del line[sheet.column_count:]
                elif name == "index":
                    sheet.index = int(props["index"])
            return {}
        if kind in ACKNOWLEDGED_REQUESTS:
            return {}
        raise BadRequest(400, f'Invalid JSON payload received. Unknown name "{kind}" at '
                              f"'requests[{index}]': Cannot find field.")

    def drive_file(self, request: Request, book_id: str) -> Response:
        book = self._book(request, book_id)
        iso = lambda ts: datetime.fromtimestamp(ts, timezone.utc).strftime(  # noqa: E731
            "%Y-%m-%dT%H:%M:%S.000Z")
        return Response(200, {"kind": "drive#file", "id": book.id, "name": book.title,
                              "mimeType": "application/vnd.google-apps.spreadsheet",
                              "createdTime": iso(book.created), "modifiedTime": iso(book.modified)})


def _oauth_error(error: str, description: str) -> Response:
    return Response(400, {"error": error, "error_description": description})


def _trim(rows: list[list[Any]]) -> list[list[Any]]:
    out = []
    for row in rows:
        row = list(row)
        while row and row[-1] in (None, ""):
            row.pop()
        out.append(row)
    while out and not out[-1]:
        out.pop()
    return out

"""Open the intake worksheet with gspread and a service-account key.

Production talks to Google; with GOOGLE_SHEETS_BASE_URL set (the sandbox) the same gspread code
runs over a session that rewrites the Google API hosts to that base URL, and the key's `token_uri`
decides where OAuth tokens come from.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import gspread
from google.auth.transport.requests import AuthorizedSession
from google.oauth2.service_account import Credentials

from leadgen.config import ConfigError, Settings

GOOGLE_HOSTS = ("https://sheets.googleapis.com", "https://www.googleapis.com")


class RedirectingSession(AuthorizedSession):
    """An AuthorizedSession that sends Google API calls to another base URL."""

    def __init__(self, credentials: Credentials, base_url: str) -> None:
        super().__init__(credentials)
        self.base_url = base_url.rstrip("/")

    def request(self, method: str, url: str, *args: Any, **kwargs: Any) -> Any:  # type: ignore[override]
        for prefix in GOOGLE_HOSTS:
            if url.startswith(prefix):
                url = self.base_url + url[len(prefix):]
                break
        return super().request(method, url, *args, **kwargs)


def service_account_info(settings: Settings) -> dict[str, Any]:
    """The key from GOOGLE_SA_KEY_JSON (inline) or GOOGLE_SA_KEY_FILE."""
    if settings.google_sa_key_json.strip():
        try:
            info = json.loads(settings.google_sa_key_json)
        except json.JSONDecodeError as exc:
            raise ConfigError(f"GOOGLE_SA_KEY_JSON is not valid JSON: {exc}") from None
    elif settings.google_sa_key_file:
        path = Path(settings.google_sa_key_file)
        if not path.is_file():
            raise ConfigError(f"GOOGLE_SA_KEY_FILE {path} is not a file")
        try:
            info = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as exc:
            raise ConfigError(f"GOOGLE_SA_KEY_FILE {path}: {exc}") from None
    else:
        raise ConfigError("GOOGLE_SA_KEY_FILE or GOOGLE_SA_KEY_JSON is needed to read the sheet")
    if not isinstance(info, dict):
        raise ConfigError("the Google service-account key must be a JSON object")
    missing = [k for k in ("client_email", "private_key", "token_uri") if not info.get(k)]
    if missing:
        raise ConfigError(f"the Google service-account key lacks {', '.join(missing)}")
    return info


def open_client(settings: Settings, *, readonly: bool = False) -> gspread.Client:
    info = service_account_info(settings)
    scopes = gspread.auth.READONLY_SCOPES if readonly else gspread.auth.DEFAULT_SCOPES
    try:
        credentials = Credentials.from_service_account_info(info, scopes=scopes)
    except ValueError as exc:
        raise ConfigError(f"the Google service-account key is invalid: {exc}") from None
    if settings.google_sheets_base_url:
        session = RedirectingSession(credentials, settings.google_sheets_base_url)
        return gspread.Client(auth=credentials, session=session)
    return gspread.authorize(credentials)


def open_worksheet(settings: Settings, tab: str | None = None) -> gspread.Worksheet:
    """The GOOGLE_SHEET_TAB (default NICHES_INPUT) worksheet of GOOGLE_SHEET_ID."""
    if not settings.google_sheet_id:
        raise ConfigError("GOOGLE_SHEET_ID is empty")
    client = open_client(settings)
    return client.open_by_key(settings.google_sheet_id).worksheet(tab or settings.google_sheet_tab)


def open_spreadsheet(settings: Settings) -> gspread.Spreadsheet:
    """The whole GOOGLE_SHEET_ID spreadsheet (to add tabs such as REPORT)."""
    if not settings.google_sheet_id:
        raise ConfigError("GOOGLE_SHEET_ID is empty")
    return open_client(settings).open_by_key(settings.google_sheet_id)

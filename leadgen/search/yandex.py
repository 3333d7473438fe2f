"""Yandex Search API v2 deferred mode over one keep-alive `httpx.Client`.

`search_async` → operation id; `get_operation` → OperationResult. Errors are mapped to what
the caller should do: TransientError (429, 5xx, network: retry later with backoff),
PermanentError (other 4xx: fail with the google.rpc.Status message), OperationGone (404 on an
operation). A 401 refreshes the IAM token and retries once.
"""

from __future__ import annotations

import base64
import binascii
import logging
from dataclasses import dataclass
from typing import Any

import httpx

from leadgen.config import Settings
from leadgen.search.auth import Credentials, build_credentials
from leadgen.search.errors import AuthError, OperationGone, PermanentError, TransientError

log = logging.getLogger(__name__)

REGION_SEARCH_TYPES = {"SEARCH_TYPE_RU", "SEARCH_TYPE_TR"}  # `region` is honoured only there


@dataclass(frozen=True)
class OperationResult:
    done: bool
    raw_xml: str | None = None
    error: str | None = None


def _rpc_status(response: httpx.Response) -> tuple[int | None, str]:
    """(gRPC code, message) of a google.rpc.Status error body, tolerating anything else."""
    try:
        body = response.json()
    except ValueError:
        return None, (response.text.strip()[:300] or response.reason_phrase)
    if isinstance(body, dict) and isinstance(body.get("error"), dict):
        body = body["error"]
    if isinstance(body, dict):
        code = body.get("code")
        return (code if isinstance(code, int) else None), str(body.get("message") or body)[:500]
    return None, str(body)[:300]


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("retry-after")
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None


def decode_raw_data(raw: Any) -> str:
    """base64 `rawData` → XML text; ValueError with a clear message when it is not that."""
    if not isinstance(raw, str) or not raw.strip():
        raise ValueError("response.rawData is missing or empty")
    try:
        data = base64.b64decode(raw.strip(), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ValueError(f"response.rawData is not valid base64 ({exc})") from exc
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ValueError(f"response.rawData is not UTF-8 text ({exc})") from exc


def parse_operation(body: Any) -> OperationResult:
    """An Operation JSON → OperationResult (a missing `done` means not done)."""
    if not isinstance(body, dict):
        raise TransientError(f"operation answer is not a JSON object: {str(body)[:200]!r}")
    error = body.get("error")
    if error:  # may come before done=true while the service rolls back; final either way
        if isinstance(error, dict):
            return OperationResult(True, error=f"operation error (code {error.get('code')}): "
                                                f"{error.get('message') or error}")
        return OperationResult(True, error=f"operation error: {error}")
    if not body.get("done"):
        return OperationResult(False)
    response = body.get("response")
    if not isinstance(response, dict):
        return OperationResult(True, error="operation done without response or error")
    try:
        return OperationResult(True, raw_xml=decode_raw_data(response.get("rawData")))
    except ValueError as exc:
        return OperationResult(True, error=f"bad payload: {exc}")


class YandexSearchClient:
    def __init__(self, settings: Settings, *, transport: httpx.BaseTransport | None = None,
                 credentials: Credentials | None = None) -> None:
        self.settings = settings
        self.http = httpx.Client(timeout=settings.yandex_http_timeout_seconds, transport=transport,
                                 headers={"Accept": "application/json"})
        self.credentials = credentials or build_credentials(settings, self.http)
        self.search_url = settings.yandex_search_url.rstrip("/") + "/v2/web/searchAsync"
        self.operations_url = settings.yandex_operations_url.rstrip("/") + "/operations/"

    def close(self) -> None:
        self.http.close()

    def __enter__(self) -> YandexSearchClient:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    # --- requests -----------------------------------------------------------------------------
    def request_body(self, query_text: str, region: int | None, page: int) -> dict[str, Any]:
        settings = self.settings
        body: dict[str, Any] = {
            "query": {
                "searchType": settings.yandex_search_type,
                "queryText": query_text,
                "familyMode": "FAMILY_MODE_MODERATE",
                "page": str(int(page)),
                "fixTypoMode": "FIX_TYPO_MODE_ON",
            },
            "sortSpec": {"sortMode": "SORT_MODE_BY_RELEVANCE", "sortOrder": "SORT_ORDER_DESC"},
            "groupSpec": {"groupMode": "GROUP_MODE_DEEP",
                          "groupsOnPage": str(settings.yandex_groups_on_page), "docsInGroup": "1"},
            "maxPassages": str(settings.yandex_max_passages),
            "l10n": settings.yandex_l10n,
            "folderId": settings.yandex_cloud_folder_id,
            "responseFormat": "FORMAT_XML",
        }
        if region is not None and settings.yandex_search_type in REGION_SEARCH_TYPES:
            body["region"] = str(int(region))
        return body

    def search_async(self, query_text: str, region: int | None, page: int = 0) -> str:
        """Start a deferred search; returns the operation id."""
        response = self._send("POST", self.search_url, json=self.request_body(query_text, region, page))
        body = self._json(response)
        operation_id = body.get("id") if isinstance(body, dict) else None
        if not isinstance(operation_id, str) or not operation_id:
            raise TransientError(f"searchAsync answered without an operation id: {response.text[:200]!r}")
        return operation_id

    def get_operation(self, operation_id: str) -> OperationResult:
        response = self._send("GET", self.operations_url + operation_id, operation=True)
        return parse_operation(self._json(response))

    # --- plumbing -----------------------------------------------------------------------------
    @staticmethod
    def _json(response: httpx.Response) -> Any:
        try:
            return response.json()
        except ValueError as exc:
            raise TransientError(f"HTTP {response.status_code} answer is not JSON: "
                                 f"{response.text[:200]!r}", status=response.status_code) from exc

    def _send(self, method: str, url: str, *, operation: bool = False, **kwargs: Any) -> httpx.Response:
        refreshed = False
        while True:
            headers = self.credentials.headers()
            try:
                response = self.http.request(method, url, headers=headers, **kwargs)
            except httpx.TransportError as exc:
                raise TransientError(f"{method} {url}: {type(exc).__name__}: {exc}") from exc
            status = response.status_code
            if status < 400:
                return response
            code, message = _rpc_status(response)
            if status == 401 and not refreshed and self.credentials.invalidate():
                refreshed = True
                log.info("Yandex answered 401 (%s): refreshing the IAM token", message)
                continue
            if status == 401:
                raise AuthError(f"Yandex rejected the credentials (HTTP 401): {message}",
                                status=status, code=code)
            if status in (408, 429) or status >= 500:
                raise TransientError(f"HTTP {status} from {url}: {message}", status=status,
                                     retry_after=_retry_after(response))
            if status == 404 and operation:
                raise OperationGone(f"operation not found (HTTP 404): {message}")
            raise PermanentError(f"HTTP {status}: {message}", status=status, code=code)

"""Yandex Search API v2 emulator: deferred `searchAsync` plus the Operations host.

Validation follows the REST reference (camelCase, unknown fields rejected, enums, ranges,
int64 as string or number). Results come from the synthetic world's `search_xml`.
"""

from __future__ import annotations

import base64
import re
import secrets
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Protocol
from xml.sax.saxutils import escape

from leadgen.sandbox.faults import Faults
from leadgen.sandbox.http import BadRequest, JsonServer, Request, Response
from leadgen.sandbox.iam import TokenRegistry, rfc3339, rpc_error

RESPONSE_TYPE = "type.googleapis.com/yandex.cloud.searchapi.v2.WebSearchResponse"
_ID_ALPHABET = "abcdefghijklmnopqrstuv0123456789"

SEARCH_TYPES = {"SEARCH_TYPE_RU", "SEARCH_TYPE_TR", "SEARCH_TYPE_COM", "SEARCH_TYPE_KK",
                "SEARCH_TYPE_BE", "SEARCH_TYPE_UZ"}
FAMILY_MODES = {"FAMILY_MODE_UNSPECIFIED", "FAMILY_MODE_NONE", "FAMILY_MODE_MODERATE",
                "FAMILY_MODE_STRICT"}
FIX_TYPO_MODES = {"FIX_TYPO_MODE_UNSPECIFIED", "FIX_TYPO_MODE_ON", "FIX_TYPO_MODE_OFF"}
SORT_MODES = {"SORT_MODE_UNSPECIFIED", "SORT_MODE_BY_RELEVANCE", "SORT_MODE_BY_TIME"}
SORT_ORDERS = {"SORT_ORDER_UNSPECIFIED", "SORT_ORDER_DESC", "SORT_ORDER_ASC"}
GROUP_MODES = {"GROUP_MODE_UNSPECIFIED", "GROUP_MODE_DEEP", "GROUP_MODE_FLAT"}
LOCALIZATIONS = {"LOCALIZATION_UNSPECIFIED", "LOCALIZATION_RU", "LOCALIZATION_UK",
                 "LOCALIZATION_BE", "LOCALIZATION_KK", "LOCALIZATION_TR", "LOCALIZATION_EN"}
FORMATS = {"FORMAT_UNSPECIFIED", "FORMAT_XML", "FORMAT_HTML"}

XML_ERRORS = {
    55: "Количество запросов, отправленных в течение секунды (RPS), превысило допустимое значение",
    32: "Лимит запросов исчерпан",
}


class World(Protocol):
    def search_xml(self, query_text: str, region: int, page: int = 0, groups_on_page: int = 100,
                   max_passages: int = 3, now: datetime | None = None) -> str: ...


# --- request validation ---------------------------------------------------------------------------
Validator = Callable[[Any, str], Any]


def _invalid(message: str) -> BadRequest:
    return BadRequest(400, message)


def _enum(values: set[str]) -> Validator:
    def check(value: Any, path: str) -> str:
        if not isinstance(value, str) or value not in values:
            raise _invalid(f"invalid value for enum field {path}: {value!r}")
        return value
    return check


def _int64(low: int | None = None, high: int | None = None) -> Validator:
    def check(value: Any, path: str) -> int:
        if isinstance(value, bool):
            raise _invalid(f"invalid value for int64 field {path}: {value!r}")
        if isinstance(value, str) and value.strip().lstrip("-").isdigit():
            number = int(value)
        elif isinstance(value, int):
            number = value
        elif isinstance(value, float) and value.is_integer():
            number = int(value)
        else:
            raise _invalid(f"invalid value for int64 field {path}: {value!r}")
        if (low is not None and number < low) or (high is not None and number > high):
            raise _invalid(f"{path}: value {number} is out of range [{low}, {high}]")
        return number
    return check


def _string(max_len: int) -> Validator:
    def check(value: Any, path: str) -> str:
        if not isinstance(value, str):
            raise _invalid(f"invalid value for string field {path}: {value!r}")
        if len(value) > max_len:
            raise _invalid(f"{path}: length must be <= {max_len}")
        return value
    return check


def _object(fields: dict[str, Validator], required: tuple[str, ...] = ()) -> Validator:
    def check(value: Any, path: str) -> dict[str, Any]:
        if not isinstance(value, dict):
            raise _invalid(f"invalid value for message field {path or 'body'}: expected an object")
        result = {}
        for key, item in value.items():
            where = f"{path}.{key}" if path else key
            if key not in fields:
                raise _invalid(f"unknown field {where!r}")
            if item is not None:  # proto3 JSON: null means the default
                result[key] = fields[key](item, where)
        for key in required:
            if key not in result:
                raise _invalid(f"{path}.{key}: field is required" if path else f"{key}: field is required")
        return result
    return check


def _metadata_fields(value: Any, path: str) -> dict[str, str]:
    if not isinstance(value, dict) or len(value) > 64:
        raise _invalid(f"{path}: expected a map of at most 64 entries")
    for key, item in value.items():
        if not re.fullmatch(r"[a-z][-_0-9a-z]{0,62}", key) or not isinstance(item, str) \
                or not re.fullmatch(r"[-_0-9a-z]{0,63}", item):
            raise _invalid(f"{path}: invalid entry {key!r}: {item!r}")
    return value


def _query_text(value: Any, path: str) -> str:
    text = _string(400)(value, path)
    if not text.strip():
        raise _invalid(f"{path}: must not be empty")
    return text


_LOCALIZATION = _enum(LOCALIZATIONS)
BODY = _object({
    "query": _object({
        "searchType": _enum(SEARCH_TYPES),
        "queryText": _query_text,
        "familyMode": _enum(FAMILY_MODES),
        "page": _int64(0, None),
        "fixTypoMode": _enum(FIX_TYPO_MODES),
    }, required=("searchType", "queryText")),
    "sortSpec": _object({"sortMode": _enum(SORT_MODES), "sortOrder": _enum(SORT_ORDERS)}),
    "groupSpec": _object({"groupMode": _enum(GROUP_MODES), "groupsOnPage": _int64(1, 100),
                          "docsInGroup": _int64(1, 3)}),
    "maxPassages": _int64(1, 5),
    "region": _string(100),
    "l10n": _LOCALIZATION,
    "l10N": _LOCALIZATION,
    "folderId": _string(50),
    "responseFormat": _enum(FORMATS),
    "userAgent": _string(300),
    "metadata": _object({"fields": _metadata_fields}),
}, required=("query",))


def validate_search_body(body: Any) -> dict[str, Any]:
    """The normalised request, or BadRequest(400) as the real API would answer."""
    return BODY(body, "")


# --- operations -----------------------------------------------------------------------------------
@dataclass
class Operation:
    id: str
    created_at: float
    created_by: str
    done_at: float
    query_text: str
    region: int
    page: int
    groups_on_page: int
    max_passages: int
    fault: str | None = None  # "error" | "xml_55" | "xml_32" | "cancelled"
    raw_xml: str | None = None

    def envelope(self, now: float) -> dict[str, Any]:
        body: dict[str, Any] = {"id": self.id, "description": "WEB search async",
                                "createdAt": rfc3339(self.created_at), "createdBy": self.created_by}
        if now < self.done_at and self.fault != "cancelled":
            body["modifiedAt"] = rfc3339(self.created_at)  # proto3 JSON omits done=false
            return body
        body["modifiedAt"] = rfc3339(self.done_at)
        body["done"] = True
        if self.fault == "error":
            body["error"] = {"code": 13, "message": "Internal error while processing the search",
                             "details": []}
        elif self.fault == "cancelled":
            body["error"] = {"code": 1, "message": "Operation cancelled", "details": []}
        else:
            body["response"] = {"@type": RESPONSE_TYPE,
                                "rawData": base64.b64encode(self.raw_xml.encode("utf-8")).decode()}
        return body


@dataclass
class _RateWindow:
    limit: int
    seconds: float
    stamps: deque[float] = field(default_factory=deque)

    def allow(self, now: float) -> bool:
        while self.stamps and self.stamps[0] <= now - self.seconds:
            self.stamps.popleft()
        if len(self.stamps) >= self.limit:
            return False
        self.stamps.append(now)
        return True


def xml_error(code: int, text: str, now: float) -> str:
    date = datetime.fromtimestamp(now, timezone.utc).strftime("%Y%m%dT%H%M%S")
    reqid = f"{int(now * 1e6)}-{secrets.randbelow(10**20)}-sandbox-XML"
    return ('<?xml version="1.0" encoding="utf-8"?>\n<yandexsearch version="1.0">'
            f'<response date="{date}"><error code="{code}">{escape(text)}</error>'
            f"<reqid>{reqid}</reqid></response></yandexsearch>")


class YandexSearchEmulator:
    """Two servers: the search host (`searchAsync`, `search`) and the operations host."""

    def __init__(self, world: World, registry: TokenRegistry, folder_id: str, *,
                 faults: Faults | None = None, operation_delay_s: float = 0.0,
                 retention_s: float = 12 * 3600, rps: int = 10, hourly_quota: int = 35_000,
                 clock: Callable[[], float] = time.time) -> None:
        self.world = world
        self.registry = registry
        self.folder_id = folder_id
        self.faults = faults or Faults()
        self.operation_delay_s = operation_delay_s
        self.retention_s = retention_s
        self.clock = clock
        self.operations: dict[str, Operation] = {}
        self.submitted: list[dict[str, Any]] = []  # every accepted searchAsync body (normalised)
        self._lock = threading.Lock()
        self._windows = {"searchAsync": _RateWindow(rps, 1.0), "search": _RateWindow(rps, 1.0),
                         "operations.get": _RateWindow(rps, 1.0),
                         "searchAsync.hour": _RateWindow(hourly_quota, 3600.0)}
        self.search_server = JsonServer("yandex", faults=self.faults, error_formatter=rpc_error)
        self.search_server.add_route("POST", r"/v2/web/searchAsync", self.search_async,
                                     name="searchAsync")
        self.search_server.add_route("POST", r"/v2/web/search", self.search_sync, name="search")
        self.operations_server = JsonServer("operations", faults=self.faults,
                                            error_formatter=rpc_error)
        self.operations_server.add_route("GET", r"/operations/(?P<op_id>[^/:]+)", self.get_operation,
                                         name="operations.get")
        self.operations_server.add_route("POST", r"/operations/(?P<op_id>[^/:]+):cancel",
                                         self.cancel_operation, name="operations.cancel")

    # --- lifecycle ----------------------------------------------------------------------------
    def start(self) -> tuple[int, int]:
        return self.search_server.start(), self.operations_server.start()

    def stop(self) -> None:
        self.search_server.stop()
        self.operations_server.stop()

    @property
    def search_url(self) -> str:
        return self.search_server.url

    @property
    def operations_url(self) -> str:
        return self.operations_server.url

    @property
    def search_async_calls(self) -> int:
        """searchAsync requests received (accepted or not)."""
        return self.search_server.counts()["searchAsync"]

    # --- handlers -----------------------------------------------------------------------------
    def _admit(self, request: Request, method: str) -> tuple[str, dict[str, Any]]:
        subject = self.registry.yandex_subject(request.authorization)
        body = validate_search_body(request.json())
        folder = body.get("folderId")
        if not folder:
            raise BadRequest(400, "folderId: field is required")
        if folder != self.folder_id:
            raise BadRequest(403, f"Permission denied to resource-manager.folder {folder}")
        self._throttle(method)
        if method == "searchAsync":
            self._throttle("searchAsync.hour")
        return subject, body

    def _throttle(self, window: str) -> None:
        with self._lock:
            allowed = self._windows[window].allow(self.clock())
        if not allowed:
            what = "hourly quota" if window.endswith(".hour") else "requests per second limit"
            raise BadRequest(429, f"Quota limit exceeded: {what} for {window.split('.')[0]}")

    def _params(self, body: dict[str, Any]) -> dict[str, Any]:
        query = body["query"]
        region = body.get("region", "")
        return {
            "query_text": query["queryText"],
            "region": int(region) if region.strip().isdigit() else 225,
            "page": query.get("page", 0),
            "groups_on_page": body.get("groupSpec", {}).get("groupsOnPage", 20),
            "max_passages": body.get("maxPassages", 4),
        }

    def search_async(self, request: Request) -> Response:
        subject, body = self._admit(request, "searchAsync")
        now = self.clock()
        fault = self.faults.choose("yandex", ["operation_error", "xml_55", "xml_32"])
        operation = Operation(
            id="sp" + "".join(secrets.choice(_ID_ALPHABET) for _ in range(18)),
            created_at=now, created_by=subject, done_at=now + self.operation_delay_s,
            fault="error" if fault == "operation_error" else fault, **self._params(body),
        )
        with self._lock:
            self.operations[operation.id] = operation
            self.submitted.append(body)
        created = rfc3339(now)
        return Response(200, {"done": False, "id": operation.id, "description": "WEB search async",
                              "createdAt": created, "createdBy": subject, "modifiedAt": created})

    def search_sync(self, request: Request) -> Response:
        _, body = self._admit(request, "search")
        params = self._params(body)
        xml = self.world.search_xml(params["query_text"], params["region"], params["page"],
                                    params["groups_on_page"], params["max_passages"])
        return Response(200, {"rawData": base64.b64encode(xml.encode("utf-8")).decode()})

    def _find(self, op_id: str) -> Operation:
        now = self.clock()
        with self._lock:
            operation = self.operations.get(op_id)
            if operation is not None and now > operation.created_at + self.retention_s:
                del self.operations[op_id]
                operation = None
        if operation is None:
            raise BadRequest(404, f"Operation {op_id} not found")
        return operation

    def get_operation(self, request: Request, op_id: str) -> Response:
        self.registry.yandex_subject(request.authorization)
        self._throttle("operations.get")
        operation = self._find(op_id)
        now = self.clock()
        if now >= operation.done_at and operation.raw_xml is None and operation.fault in (
                None, "xml_55", "xml_32"):
            operation.raw_xml = self._render(operation)
        return Response(200, operation.envelope(now))

    def cancel_operation(self, request: Request, op_id: str) -> Response:
        self.registry.yandex_subject(request.authorization)
        operation = self._find(op_id)
        now = self.clock()
        if now < operation.done_at:
            operation.fault, operation.done_at = "cancelled", now
        elif operation.raw_xml is None and operation.fault in (None, "xml_55", "xml_32"):
            operation.raw_xml = self._render(operation)
        return Response(200, operation.envelope(now))

    def _render(self, operation: Operation) -> str:
        if operation.fault in ("xml_55", "xml_32"):
            code = int(operation.fault[4:])
            return xml_error(code, XML_ERRORS[code], operation.done_at)
        return self.world.search_xml(
            operation.query_text, operation.region, operation.page, operation.groups_on_page,
            operation.max_passages, now=datetime.fromtimestamp(operation.done_at, timezone.utc),
        )

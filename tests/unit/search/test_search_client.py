import base64
import json

import httpx
import pytest

from leadgen.config import load_settings
from leadgen.search.auth import StaticIamToken
from leadgen.search.errors import AuthError, OperationGone, PermanentError, TransientError
from leadgen.search.yandex import YandexSearchClient, parse_operation


class RefreshingToken:
    def __init__(self) -> None:
        self.generation = 1

    def headers(self):
        return {"Authorization": f"Bearer t1.gen{self.generation}"}

    def invalidate(self) -> bool:
        self.generation += 1
        return True


def client(handler, credentials=None, **overrides) -> YandexSearchClient:
    settings = load_settings(yandex_cloud_folder_id="b1gfolder", yandex_groups_on_page=50,
                             yandex_search_url="http://search.test", yandex_operations_url="http://ops.test",
                             **overrides)
    return YandexSearchClient(settings, transport=httpx.MockTransport(handler),
                              credentials=credentials or StaticIamToken("t1.static"))


def test_search_async_body_is_camel_case_with_int64_strings() -> None:
    seen = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json={"done": False, "id": "sprf5i17o5rbl4ebpes0"})

    assert client(handler).search_async("окна пвх", 43, 2) == "sprf5i17o5rbl4ebpes0"
    request = seen[0]
    assert str(request.url) == "http://search.test/v2/web/searchAsync"
    assert request.headers["authorization"] == "Bearer t1.static"
    body = json.loads(request.content)
    assert body == {
        "query": {"searchType": "SEARCH_TYPE_RU", "queryText": "окна пвх",
                  "familyMode": "FAMILY_MODE_MODERATE", "page": "2", "fixTypoMode": "FIX_TYPO_MODE_ON"},
        "sortSpec": {"sortMode": "SORT_MODE_BY_RELEVANCE", "sortOrder": "SORT_ORDER_DESC"},
        "groupSpec": {"groupMode": "GROUP_MODE_DEEP", "groupsOnPage": "50", "docsInGroup": "1"},
        "maxPassages": "3", "region": "43", "l10n": "LOCALIZATION_RU", "folderId": "b1gfolder",
        "responseFormat": "FORMAT_XML",
    }


def test_region_left_out_for_search_types_that_ignore_it() -> None:
    c = client(lambda r: httpx.Response(200, json={"id": "x"}), yandex_search_type="SEARCH_TYPE_KK")
    assert "region" not in c.request_body("q", 159, 0)


@pytest.mark.parametrize("status, error", [
    (429, TransientError), (500, TransientError), (503, TransientError), (400, PermanentError),
    (403, PermanentError),
])
def test_error_mapping(status, error) -> None:
    def handler(request):
        return httpx.Response(status, json={"code": 8, "message": f"message for {status}"},
                              headers={"retry-after": "7"})

    with pytest.raises(error, match=f"message for {status}") as info:
        client(handler).search_async("q", 213, 0)
    if error is TransientError:
        assert info.value.retry_after == 7


def test_network_error_is_transient() -> None:
    def handler(request):
        raise httpx.ConnectError("connection refused", request=request)

    with pytest.raises(TransientError, match="ConnectError"):
        client(handler).search_async("q", 213, 0)


def test_401_refreshes_once_then_fails() -> None:
    tokens = []

    def handler(request):
        tokens.append(request.headers["authorization"])
        if request.headers["authorization"] == "Bearer t1.gen1":
            return httpx.Response(401, json={"code": 16, "message": "Token is invalid or has expired."})
        return httpx.Response(200, json={"id": "sp1"})

    assert client(handler, RefreshingToken()).search_async("q", 213, 0) == "sp1"
    assert tokens == ["Bearer t1.gen1", "Bearer t1.gen2"]

    always = []

    def reject(request):
        always.append(1)
        return httpx.Response(401, json={"code": 16, "message": "nope"})

    with pytest.raises(AuthError):
        client(reject, RefreshingToken()).search_async("q", 213, 0)
    assert len(always) == 2


def test_operation_404_is_gone() -> None:
    c = client(lambda r: httpx.Response(404, json={"code": 5, "message": "Operation not found"}))
    with pytest.raises(OperationGone):
        c.get_operation("spX")


def test_parse_operation(samples_dir) -> None:
    pending = json.loads((samples_dir / "v2-operation-pending.json").read_text())
    assert parse_operation(pending).done is False
    assert parse_operation({"id": "sp1"}).done is False  # missing done = not done
    done = json.loads((samples_dir / "v2-operation-done.json").read_text())
    result = parse_operation(done)
    assert result.done and result.error is None and result.raw_xml.startswith("<?xml")
    error = json.loads((samples_dir / "v2-operation-error.SYNTHETIC.json").read_text())
    assert parse_operation(error).error
    bad = parse_operation({"done": True, "response": {"rawData": "not base64 !!"}})
    assert bad.done and "bad payload" in bad.error and bad.raw_xml is None
    latin = base64.b64encode("<?xml version='1.0'?><a>\xff</a>".encode("latin-1")).decode()
    assert "UTF-8" in parse_operation({"done": True, "response": {"rawData": latin}}).error
    assert "without response" in parse_operation({"done": True}).error

"""Search API v2 emulator: validation like the real REST API, deferred operations, quotas, faults."""

from __future__ import annotations

import base64
import re
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from lxml import etree

from leadgen.sandbox.faults import Faults
from leadgen.sandbox.iam import TokenRegistry
from leadgen.sandbox.world import World
from leadgen.sandbox.yandex import YandexSearchEmulator

FOLDER = "b1gsandboxfolder0000"


@pytest.fixture(scope="module")
def world() -> World:
    return World(seed=7, scale=1)


class Env:
    def __init__(self, world: World, **kwargs: Any) -> None:
        self.now = [time.time()]
        self.registry = TokenRegistry(clock=lambda: self.now[0])
        self.registry.add_api_key("AQVNkey", "ajeaccount")
        self.token, _ = self.registry.issue("ajeaccount", 3600, lambda: "t1.sandbox.token")
        self.api = YandexSearchEmulator(world, self.registry, FOLDER, clock=lambda: self.now[0],
                                        **kwargs)
        self.api.start()
        self.client = httpx.Client(timeout=5, headers={"Authorization": f"Bearer {self.token}"})

    def submit(self, body: dict[str, Any], **kwargs: Any) -> httpx.Response:
        return self.client.post(self.api.search_url + "/v2/web/searchAsync", json=body, **kwargs)

    def poll(self, op_id: str, **kwargs: Any) -> httpx.Response:
        return self.client.get(f"{self.api.operations_url}/operations/{op_id}", **kwargs)

    def close(self) -> None:
        self.client.close()
        self.api.stop()


@pytest.fixture
def make(world: World) -> Iterator:
    envs: list[Env] = []

    def factory(**kwargs: Any) -> Env:
        envs.append(Env(world, **kwargs))
        return envs[-1]

    yield factory
    for env in envs:
        env.close()


def body(**overrides: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "query": {"searchType": "SEARCH_TYPE_RU", "queryText": "стоматология Москва",
                  "familyMode": "FAMILY_MODE_MODERATE", "page": "0",
                  "fixTypoMode": "FIX_TYPO_MODE_ON"},
        "sortSpec": {"sortMode": "SORT_MODE_BY_RELEVANCE", "sortOrder": "SORT_ORDER_DESC"},
        "groupSpec": {"groupMode": "GROUP_MODE_DEEP", "groupsOnPage": "100", "docsInGroup": "1"},
        "maxPassages": "3", "region": "213", "l10n": "LOCALIZATION_RU", "folderId": FOLDER,
        "responseFormat": "FORMAT_XML",
    }
    data.update(overrides)
    return data


def test_deferred_search_round_trip(make) -> None:
    env = make()
    response = env.submit(body())
    assert response.status_code == 200, response.text
    operation = response.json()
    assert re.fullmatch(r"sp[a-v0-9]{18}", operation["id"])
    assert operation["description"] == "WEB search async"
    assert operation["done"] is False and operation["createdBy"] == "ajeaccount"
    assert "response" not in operation

    done = env.poll(operation["id"]).json()
    assert done["done"] is True and "error" not in done
    assert done["response"]["@type"] == \
        "type.googleapis.com/yandex.cloud.searchapi.v2.WebSearchResponse"
    xml = base64.b64decode(done["response"]["rawData"])
    assert xml.startswith(b'<?xml version="1.0" encoding="utf-8"?>')
    root = etree.fromstring(xml)
    assert root.findtext("request/query") == "стоматология Москва"
    assert len(root.findall(".//group")) > 0
    assert env.api.search_async_calls == 1
    assert env.api.submitted[0]["query"]["page"] == 0


def test_pending_operation_has_no_done_field(make) -> None:
    env = make(operation_delay_s=300)
    op_id = env.submit(body()).json()["id"]
    pending = env.poll(op_id).json()
    assert "done" not in pending and "response" not in pending and pending["id"] == op_id
    env.now[0] += 301
    assert env.poll(op_id).json()["done"] is True


def test_numbers_for_int64_and_api_key_auth(make) -> None:
    env = make()
    payload = body(maxPassages=2, groupSpec={"groupsOnPage": 10, "docsInGroup": 1})
    payload["query"]["page"] = 1
    response = env.submit(payload, headers={"Authorization": "Api-Key AQVNkey"})
    assert response.status_code == 200, response.text
    assert env.api.submitted[0]["groupSpec"]["groupsOnPage"] == 10


def _set(path: str, value: Any) -> dict[str, Any]:
    data = body()
    target = data
    parts = path.split(".")
    for part in parts[:-1]:
        target = target[part]
    if value is KeyError:
        del target[parts[-1]]
    else:
        target[parts[-1]] = value
    return data


@pytest.mark.parametrize("path, value", [
    ("unknownField", 1),
    ("query.unknown", "x"),
    ("groupSpec.groupsPerPage", "10"),
    ("query.searchType", "SEARCH_TYPE_XX"),
    ("query.searchType", KeyError),
    ("query.queryText", KeyError),
    ("query.queryText", "я" * 401),
    ("query.familyMode", "moderate"),
    ("query.page", "-1"),
    ("query.page", "one"),
    ("groupSpec.groupsOnPage", "0"),
    ("groupSpec.groupsOnPage", "101"),
    ("groupSpec.docsInGroup", "4"),
    ("groupSpec.groupMode", "DEEP"),
    ("maxPassages", "6"),
    ("maxPassages", 2.5),
    ("sortSpec.sortOrder", "DESC"),
    ("l10n", "LOCALIZATION_XX"),
    ("responseFormat", "FORMAT_JSON"),
    ("query", "text"),
    ("region", 213),
    ("folderId", KeyError),
])
def test_invalid_bodies_are_rejected_with_code_3(make, path: str, value: Any) -> None:
    env = make()
    response = env.submit(_set(path, value))
    assert response.status_code == 400, response.text
    assert response.json()["code"] == 3
    assert env.api.operations == {}


def test_limits_at_the_edges_are_accepted(make) -> None:
    env = make()
    payload = body(maxPassages="5", groupSpec={"groupsOnPage": "1", "docsInGroup": "3"})
    payload["query"]["queryText"] = "я" * 400
    assert env.submit(payload).status_code == 200


@pytest.mark.parametrize("header, status, code", [
    (None, 401, 16), ("Bearer t1.wrong", 401, 16), ("Api-Key nope", 401, 16),
])
def test_authentication_is_checked(make, header: str | None, status: int, code: int) -> None:
    env = make()
    headers = {"Authorization": header} if header else {"Authorization": ""}
    response = env.submit(body(), headers=headers)
    assert (response.status_code, response.json()["code"]) == (status, code)
    assert env.poll("spnothing", headers=headers).status_code == 401


def test_expired_token_is_refused(make) -> None:
    env = make()
    env.now[0] += 3601
    response = env.submit(body())
    assert response.status_code == 401 and response.json()["code"] == 16


def test_foreign_folder_is_forbidden(make) -> None:
    env = make()
    response = env.submit(body(folderId="b1gsomeoneelse"))
    assert response.status_code == 403 and response.json()["code"] == 7


def test_unknown_and_expired_operations_are_not_found(make) -> None:
    env = make(retention_s=3600)
    missing = env.poll("sp000000000000000000")
    assert missing.status_code == 404 and missing.json()["code"] == 5
    op_id = env.submit(body()).json()["id"]
    assert env.poll(op_id).status_code == 200
    env.now[0] += 3601
    env.registry.issue("ajeaccount", 3600, lambda: "t1.fresh")
    expired = env.poll(op_id, headers={"Authorization": "Bearer t1.fresh"})
    assert expired.status_code == 404 and expired.json()["code"] == 5


def test_rps_and_hourly_quotas(make) -> None:
    env = make(rps=2, hourly_quota=3)
    assert [env.submit(body()).status_code for _ in range(3)] == [200, 200, 429]
    env.now[0] += 1.01
    third = env.submit(body())
    assert third.status_code == 200
    env.now[0] += 1.01
    over = env.submit(body())
    assert over.status_code == 429 and over.json()["code"] == 8
    assert "hourly" in over.json()["message"]
    assert env.api.search_async_calls == 5


def test_cancel_before_done(make) -> None:
    env = make(operation_delay_s=60)
    op_id = env.submit(body()).json()["id"]
    cancelled = env.client.post(f"{env.api.operations_url}/operations/{op_id}:cancel").json()
    assert cancelled["done"] is True and cancelled["error"]["code"] == 1


def test_operation_error_fault(make) -> None:
    env = make(faults=Faults.from_dict({"yandex": {"operation_error": 1.0}}))
    op = env.poll(env.submit(body()).json()["id"]).json()
    assert op["done"] is True and "response" not in op and op["error"]["code"] == 13


@pytest.mark.parametrize("code", [55, 32])
def test_xml_level_error_fault(make, code: int) -> None:
    env = make(faults=Faults.from_dict({"yandex": {f"xml_{code}": 1.0}}))
    op = env.poll(env.submit(body()).json()["id"]).json()
    root = etree.fromstring(base64.b64decode(op["response"]["rawData"]))
    assert root.find("response/error").get("code") == str(code)


def test_http_faults_and_dropped_connections(make) -> None:
    env = make(faults=Faults.from_dict({"yandex": {"503": 1.0}, "operations": {"drop": 1.0}}))
    response = env.submit(body())
    assert response.status_code == 503 and response.json()["code"] == 14
    with pytest.raises(httpx.TransportError):
        env.poll("sp000000000000000000")


def test_fault_draws_are_deterministic_for_a_seed() -> None:
    def draws(seed: int) -> list:
        faults = Faults.from_dict({"seed": seed, "yandex": {"429": 0.3, "503": 0.2, "drop": 0.1}})
        return [faults.http_fault("yandex") for _ in range(50)]

    assert draws(3) == draws(3)
    assert draws(3) != draws(4)
    assert {429, 503, "drop", None} == set(draws(3) + draws(4))


def test_nothing_found_is_an_xml_error_15(make) -> None:
    env = make()
    payload = body()
    payload["query"]["queryText"] = "qwzx nonexistent gibberish"
    op = env.poll(env.submit(payload).json()["id"]).json()
    root = etree.fromstring(base64.b64decode(op["response"]["rawData"]))
    assert root.find("response/error").get("code") == "15"

"""The IAM emulator accepts what Yandex IAM accepts (a PS256 JWT of a known key) and nothing else."""

from __future__ import annotations

import re
import time
from datetime import datetime, timezone

import httpx
import jwt
import pytest

from leadgen.sandbox.http import BadRequest
from leadgen.sandbox.iam import REAL_TOKEN_URL, IamEmulator, TokenRegistry
from leadgen.sandbox.keys import YANDEX_BANNER, yandex_authorized_key

TOKEN_RE = re.compile(r"t1\.[A-Z0-9a-z_-]+[=]{0,2}\.[A-Z0-9a-z_-]{86}[=]{0,2}")


@pytest.fixture(scope="module")
def key() -> dict:
    return yandex_authorized_key()


@pytest.fixture
def iam(key: dict):
    clock = [time.time()]
    registry = TokenRegistry(clock=lambda: clock[0])
    emulator = IamEmulator(registry, token_lifetime_s=120)
    emulator.add_key(key)
    emulator.start()
    emulator.clock = clock
    yield emulator
    emulator.stop()


def make_jwt(key: dict, *, aud: str = REAL_TOKEN_URL, lifetime: int = 3600, iat: int | None = None,
             alg: str = "PS256", kid: str | None = None, iss: str | None = None,
             private_key: str | None = None) -> str:
    now = int(time.time()) if iat is None else iat
    claims = {"iss": iss or key["service_account_id"], "aud": aud, "iat": now, "exp": now + lifetime}
    return jwt.encode(claims, private_key or key["private_key"], algorithm=alg,
                      headers={"kid": kid or key["id"]})


def post(iam: IamEmulator, body: object) -> httpx.Response:
    return httpx.post(iam.token_url, json=body, timeout=5)


def test_key_file_has_the_yandex_shape(key: dict) -> None:
    assert set(key) == {"id", "service_account_id", "created_at", "key_algorithm", "public_key",
                        "private_key"}
    assert key["key_algorithm"] == "RSA_2048"
    first_line = key["private_key"].splitlines()[0]
    assert first_line == YANDEX_BANNER.format(key_id=key["id"])
    assert key["private_key"].splitlines()[1] == "-----BEGIN PRIVATE KEY-----"
    assert key["public_key"].startswith("-----BEGIN PUBLIC KEY-----")


def test_valid_jwt_gets_a_token_that_the_registry_knows(iam: IamEmulator, key: dict) -> None:
    response = post(iam, {"jwt": make_jwt(key)})
    assert response.status_code == 200, response.text
    body = response.json()
    assert TOKEN_RE.fullmatch(body["iamToken"])
    expires = datetime.fromisoformat(body["expiresAt"].replace("Z", "+00:00"))
    assert expires.tzinfo is not None and expires > datetime.now(timezone.utc)
    assert iam.registry.yandex_subject(f"Bearer {body['iamToken']}") == key["service_account_id"]


def test_audience_may_be_the_emulator_url(iam: IamEmulator, key: dict) -> None:
    assert post(iam, {"jwt": make_jwt(key, aud=iam.token_url)}).status_code == 200


@pytest.mark.parametrize("case, status, code", [
    ("malformed", 400, 3),
    ("wrong_kid", 401, 16),
    ("too_long", 400, 3),
    ("expired", 401, 16),
    ("wrong_aud", 401, 16),
    ("wrong_iss", 401, 16),
    ("rs256", 400, 3),
    ("other_key", 401, 16),
])
def test_bad_jwts_are_rejected(iam: IamEmulator, key: dict, case: str, status: int,
                               code: int) -> None:
    other = yandex_authorized_key() if case == "other_key" else None
    token = {
        "malformed": lambda: "not.a.jwt",
        "wrong_kid": lambda: make_jwt(key, kid="ajfunknownkey0000000"),
        "too_long": lambda: make_jwt(key, lifetime=3601),
        "expired": lambda: make_jwt(key, iat=int(time.time()) - 7200, lifetime=3600),
        "wrong_aud": lambda: make_jwt(key, aud="https://example.com/tokens"),
        "wrong_iss": lambda: make_jwt(key, iss="ajeSomebodyElse00000"),
        "rs256": lambda: make_jwt(key, alg="RS256"),
        "other_key": lambda: make_jwt(key, private_key=other["private_key"]),
    }[case]()
    response = post(iam, {"jwt": token})
    assert response.status_code == status, response.text
    body = response.json()
    assert body["code"] == code and body["message"]
    assert body["details"][0]["@type"] == "type.googleapis.com/google.rpc.RequestInfo"


@pytest.mark.parametrize("body", [{}, {"jwt": ""}, {"jwt": "x", "extra": 1}, ["jwt"]])
def test_bad_bodies_are_rejected(iam: IamEmulator, body: object) -> None:
    response = post(iam, body)
    assert response.status_code == 400
    assert response.json()["code"] == 3


def test_tokens_expire_after_the_configured_lifetime(iam: IamEmulator, key: dict) -> None:
    token = post(iam, {"jwt": make_jwt(key)}).json()["iamToken"]
    assert iam.registry.bearer(token) == key["service_account_id"]
    iam.clock[0] += 121
    assert iam.registry.bearer(token) is None
    with pytest.raises(BadRequest) as error:
        iam.registry.yandex_subject(f"Bearer {token}")
    assert error.value.status == 401


def test_api_keys_and_bad_headers() -> None:
    registry = TokenRegistry()
    registry.add_api_key("AQVNsecret", "ajeaccount")
    assert registry.yandex_subject("Api-Key AQVNsecret") == "ajeaccount"
    for header in ("", "Api-Key wrong", "Bearer t1.nope", "Basic abc", "Bearer"):
        with pytest.raises(BadRequest) as error:
            registry.yandex_subject(header)
        assert error.value.status == 401

import json
import time

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization

from leadgen.config import load_settings
from leadgen.search.auth import (
    ApiKey, ServiceAccountAuth, StaticIamToken, build_credentials, build_jwt, load_sa_key,
    parse_rfc3339,
)
from leadgen.search.errors import AuthConfigError, AuthError, TransientError
from leadgen.sandbox.keys import yandex_authorized_key

IAM_URL = "http://127.0.0.1:9/iam/v1/tokens"


@pytest.fixture(scope="module")
def key_data():
    return yandex_authorized_key()


def test_jwt_is_ps256_with_kid_iss_aud_and_one_hour(key_data) -> None:
    key = load_sa_key(json_text=json.dumps(key_data))
    token = build_jwt(key, IAM_URL, now=1_700_000_000)
    header = jwt.get_unverified_header(token)
    assert header == {"alg": "PS256", "typ": "JWT", "kid": key_data["id"]}
    public = serialization.load_pem_public_key(key_data["public_key"].encode())
    claims = jwt.decode(token, public, algorithms=["PS256"], audience=IAM_URL,
                        options={"verify_exp": False, "verify_iat": False})
    assert claims == {"iss": key_data["service_account_id"], "aud": IAM_URL,
                      "iat": 1_700_000_000, "exp": 1_700_003_600}


def test_banner_and_escaped_newlines_are_tolerated(key_data) -> None:
    assert key_data["private_key"].startswith("PLEASE DO NOT REMOVE THIS LINE!")
    escaped = dict(key_data, private_key=key_data["private_key"].replace("\n", "\\n"))
    key = load_sa_key(json_text=json.dumps(escaped))
    assert key.key_id == key_data["id"]
    camel = {"id": key_data["id"], "serviceAccountId": "sa1", "privateKey": key_data["private_key"]}
    assert load_sa_key(json_text=json.dumps(camel)).service_account_id == "sa1"


def test_bad_key_files_give_clear_errors(tmp_path, key_data) -> None:
    with pytest.raises(AuthConfigError, match="does not exist"):
        load_sa_key(path=str(tmp_path / "missing.json"))
    (tmp_path / "dir.json").mkdir()
    with pytest.raises(AuthConfigError, match="is a directory"):
        load_sa_key(path=str(tmp_path / "dir.json"))
    (tmp_path / "bad.json").write_text("not json")
    with pytest.raises(AuthConfigError, match="not valid JSON"):
        load_sa_key(path=str(tmp_path / "bad.json"))
    (tmp_path / "nofield.json").write_text(json.dumps({"id": "x", "private_key": "y"}))
    with pytest.raises(AuthConfigError, match="service_account_id"):
        load_sa_key(path=str(tmp_path / "nofield.json"))
    broken = dict(key_data, private_key="-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----")
    with pytest.raises(AuthConfigError, match="not a valid PEM"):
        load_sa_key(json_text=json.dumps(broken))


def test_credentials_precedence(tmp_path, key_data) -> None:
    client = httpx.Client()
    assert isinstance(build_credentials(load_settings(yandex_cloud_iam_token="t1.x",
                                                      yandex_search_api_key="k"), client),
                      StaticIamToken)
    path = tmp_path / "key.json"
    path.write_text(json.dumps(key_data))
    assert isinstance(build_credentials(load_settings(yandex_cloud_sa_key_file=str(path)), client),
                      ServiceAccountAuth)
    api = build_credentials(load_settings(yandex_search_api_key="AQVN"), client)
    assert isinstance(api, ApiKey) and api.headers() == {"Authorization": "Api-Key AQVN"}
    with pytest.raises(AuthConfigError, match="no Yandex credentials"):
        build_credentials(load_settings(), client)


def test_token_is_cached_and_refreshed_before_expiry(key_data) -> None:
    calls = []
    lifetime = {"seconds": 12 * 3600}

    def handler(request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        claims = jwt.decode(body["jwt"], options={"verify_signature": False})
        calls.append(claims)
        expires = time.strftime("%Y-%m-%dT%H:%M:%S.123456789Z",
                                time.gmtime(time.time() + lifetime["seconds"]))
        return httpx.Response(200, json={"iamToken": f"t1.token{len(calls)}", "expiresAt": expires})

    auth = ServiceAccountAuth(load_sa_key(json_text=json.dumps(key_data)), IAM_URL,
                              httpx.Client(transport=httpx.MockTransport(handler)))
    assert auth.headers() == {"Authorization": "Bearer t1.token1"}
    assert auth.headers() == {"Authorization": "Bearer t1.token1"}
    assert len(calls) == 1 and calls[0]["aud"] == IAM_URL
    assert auth.invalidate() is True
    assert auth.headers() == {"Authorization": "Bearer t1.token2"}
    lifetime["seconds"] = 200  # inside the 5-minute margin: every call refreshes
    auth.invalidate()
    auth.token()
    auth.token()
    assert len(calls) == 4


def test_iam_errors_are_mapped(key_data) -> None:
    key = load_sa_key(json_text=json.dumps(key_data))
    for status, error in ((401, AuthError), (503, TransientError)):
        transport = httpx.MockTransport(lambda r, s=status: httpx.Response(
            s, json={"code": 16, "message": "JWT signature is invalid"}))
        with pytest.raises(error):
            ServiceAccountAuth(key, IAM_URL, httpx.Client(transport=transport)).token()


def test_parse_rfc3339() -> None:
    assert parse_rfc3339("2026-01-01T00:00:00Z").timestamp() == 1767225600
    assert parse_rfc3339("2026-01-01T03:00:00.123456789+03:00").timestamp() == pytest.approx(1767225600.123456)

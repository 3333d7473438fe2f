"""Yandex Cloud credentials: a static IAM token, a service-account key exchanged for IAM tokens
(PS256 JWT → POST YANDEX_IAM_URL, cached until 5 minutes before expiry), or an API key."""

from __future__ import annotations

import json
import logging
import re
import textwrap
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Protocol

import httpx
import jwt
from cryptography.hazmat.primitives import serialization

from leadgen.config import Settings
from leadgen.search.errors import AuthConfigError, AuthError, TransientError

log = logging.getLogger(__name__)

REFRESH_MARGIN_SECONDS = 300
JWT_LIFETIME_SECONDS = 3600


class Credentials(Protocol):
    def headers(self) -> dict[str, str]: ...

    def invalidate(self) -> bool:
        """Forget a cached token; True if a retry with fresh credentials makes sense."""
        ...


class StaticIamToken:
    def __init__(self, token: str) -> None:
        self.token = token.strip()

    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    def invalidate(self) -> bool:
        return False


class ApiKey:
    def __init__(self, key: str) -> None:
        self.key = key.strip()

    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Api-Key {self.key}"}

    def invalidate(self) -> bool:
        return False


@dataclass(frozen=True)
class ServiceAccountKey:
    key_id: str
    service_account_id: str
    private_key: Any  # a cryptography private key object


def normalise_private_key(text: str) -> bytes:
    """PEM bytes from a Yandex key: banner line dropped, `\\n` escapes and CRs fixed,
    bare base64 wrapped in PRIVATE KEY markers."""
    text = text.replace("\\n", "\n").replace("\r", "")
    begin = text.find("-----BEGIN")
    if begin >= 0:
        text = text[begin:]
        match = re.match(r"(-----BEGIN [A-Z ]+-----)(.*?)(-----END [A-Z ]+-----)", text, re.S)
        if match:
            body = "".join(match.group(2).split())
            text = "\n".join([match.group(1), *textwrap.wrap(body, 64), match.group(3)]) + "\n"
    else:
        lines = [line for line in text.splitlines() if not line.startswith("PLEASE DO NOT REMOVE")]
        body = "".join("".join(lines).split())
        text = "-----BEGIN PRIVATE KEY-----\n" + "\n".join(textwrap.wrap(body, 64)) + \
            "\n-----END PRIVATE KEY-----\n"
    return text.encode("ascii", "ignore")


def parse_sa_key(data: Any, origin: str) -> ServiceAccountKey:
    if not isinstance(data, dict):
        raise AuthConfigError(f"{origin}: expected a JSON object (an authorized_key.json)")

    def field(*names: str) -> str:
        for name in names:
            value = data.get(name)
            if isinstance(value, str) and value.strip():
                return value.strip()
        raise AuthConfigError(f"{origin}: the key has no {names[0]!r} field")

    key_id = field("id", "key_id", "keyId")
    account = field("service_account_id", "serviceAccountId")
    pem = normalise_private_key(field("private_key", "privateKey"))
    try:
        private_key = serialization.load_pem_private_key(pem, password=None)
    except (ValueError, TypeError) as exc:
        raise AuthConfigError(f"{origin}: private_key is not a valid PEM private key ({exc})") from exc
    return ServiceAccountKey(key_id, account, private_key)


def load_sa_key(*, path: str | None = None, json_text: str | None = None) -> ServiceAccountKey:
    """The service-account key from a file (YANDEX_CLOUD_SA_KEY_FILE) or inline JSON."""
    if path:
        origin = f"YANDEX_CLOUD_SA_KEY_FILE {path}"
        file = Path(path)
        if file.is_dir():  # docker creates a directory when the bind-mount source is missing
            raise AuthConfigError(f"{origin} is a directory, not a key file (check the mount)")
        if not file.exists():
            raise AuthConfigError(f"{origin} does not exist")
        try:
            json_text = file.read_text(encoding="utf-8-sig")
        except (OSError, UnicodeDecodeError) as exc:
            raise AuthConfigError(f"{origin} cannot be read: {exc}") from exc
    else:
        origin = "YANDEX_CLOUD_SA_KEY_JSON"
    try:
        data = json.loads(json_text or "")
    except json.JSONDecodeError as exc:
        raise AuthConfigError(f"{origin} is not valid JSON ({exc.msg} at line {exc.lineno})") from exc
    return parse_sa_key(data, origin)


def build_jwt(key: ServiceAccountKey, audience: str, now: float | None = None) -> str:
    issued = int(now if now is not None else time.time())
    payload = {"iss": key.service_account_id, "aud": audience, "iat": issued,
               "exp": issued + JWT_LIFETIME_SECONDS}
    return jwt.encode(payload, key.private_key, algorithm="PS256",
                      headers={"kid": key.key_id, "typ": "JWT"})


def parse_rfc3339(value: str) -> datetime:
    """RFC 3339 with 0–9 fractional digits and `Z` or an offset."""
    match = re.match(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d+))?(Z|[+-]\d\d:?\d\d)?$", value.strip())
    if not match:
        raise ValueError(f"not an RFC 3339 time: {value!r}")
    base, fraction, zone = match.groups()
    text = base + (f".{(fraction or '0')[:6]:0<6}") + ("+00:00" if zone in (None, "Z") else zone)
    return datetime.fromisoformat(text).astimezone(timezone.utc)


class ServiceAccountAuth:
    """IAM tokens for a service-account key; thread-safe cache, refreshed before expiry."""

    def __init__(self, key: ServiceAccountKey, iam_url: str, client: httpx.Client) -> None:
        self.key = key
        self.iam_url = iam_url
        self.client = client
        self._token: str | None = None
        self._expires: float = 0.0
        self._lock = threading.Lock()

    def token(self) -> str:
        with self._lock:
            if self._token is None or time.time() >= self._expires - REFRESH_MARGIN_SECONDS:
                self._token, self._expires = self._exchange()
            return self._token

    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token()}"}

    def invalidate(self) -> bool:
        with self._lock:
            self._token = None
        return True

    def _exchange(self) -> tuple[str, float]:
        assertion = build_jwt(self.key, self.iam_url)
        try:
            response = self.client.post(self.iam_url, json={"jwt": assertion})
        except httpx.TransportError as exc:
            raise TransientError(f"IAM token exchange failed: {type(exc).__name__}: {exc}") from exc
        if response.status_code == 429 or response.status_code >= 500:
            raise TransientError(f"IAM token exchange: HTTP {response.status_code}",
                                 status=response.status_code)
        if response.status_code != 200:
            raise AuthError(f"IAM token exchange rejected (HTTP {response.status_code}): "
                            f"{_status_message(response)}", status=response.status_code)
        try:
            body = response.json()
            token = body["iamToken"]
            expires = parse_rfc3339(body["expiresAt"]).timestamp()
        except (ValueError, KeyError, TypeError) as exc:
            raise AuthError(f"IAM token exchange: unexpected answer {response.text[:200]!r}") from exc
        log.info("IAM token for %s obtained, expires %s", self.key.service_account_id,
                 datetime.fromtimestamp(expires, timezone.utc).isoformat())
        return token, expires


def _status_message(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.text[:300] or response.reason_phrase
    if isinstance(body, dict):
        if isinstance(body.get("error"), dict):
            body = body["error"]
        message = body.get("message") or body.get("error_description") or body.get("error")
        if message:
            code = body.get("code")
            return f"{message} (code {code})" if code is not None else str(message)
    return response.text[:300]


def build_credentials(settings: Settings, client: httpx.Client) -> Credentials:
    """IAM token > SA key file > SA key JSON > API key (the old system's order, plus API keys)."""
    if settings.yandex_cloud_iam_token.strip():
        return StaticIamToken(settings.yandex_cloud_iam_token)
    if settings.yandex_cloud_sa_key_file.strip():
        key = load_sa_key(path=settings.yandex_cloud_sa_key_file.strip())
        return ServiceAccountAuth(key, settings.yandex_iam_url, client)
    if settings.yandex_cloud_sa_key_json.strip():
        key = load_sa_key(json_text=settings.yandex_cloud_sa_key_json)
        return ServiceAccountAuth(key, settings.yandex_iam_url, client)
    if settings.yandex_search_api_key.strip():
        return ApiKey(settings.yandex_search_api_key)
    raise AuthConfigError("no Yandex credentials: set YANDEX_CLOUD_IAM_TOKEN, "
                          "YANDEX_CLOUD_SA_KEY_FILE, YANDEX_CLOUD_SA_KEY_JSON or YANDEX_SEARCH_API_KEY")

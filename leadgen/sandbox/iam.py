"""Yandex Cloud IAM emulator: `POST /iam/v1/tokens` exchanges a PS256 JWT for an IAM token."""

from __future__ import annotations

import base64
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization

from leadgen.sandbox.faults import Faults
from leadgen.sandbox.http import BadRequest, JsonServer, Request, Response

REAL_TOKEN_URL = "https://iam.api.cloud.yandex.net/iam/v1/tokens"
HTTP_TO_GRPC = {400: 3, 401: 16, 403: 7, 404: 5, 409: 6, 429: 8, 499: 1, 500: 13, 501: 12,
                503: 14, 504: 4}


def rpc_error(status: int, message: str, code: int | None = None) -> Response:
    """A Yandex Cloud error: a google.rpc.Status JSON body."""
    grpc = code if code is not None else HTTP_TO_GRPC.get(status, 2)
    body = {"code": grpc, "message": message,
            "details": [{"@type": "type.googleapis.com/google.rpc.RequestInfo",
                         "requestId": secrets.token_hex(16)}]}
    return Response(status, body)


def rfc3339(ts: float) -> str:
    return datetime.fromtimestamp(ts, timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@dataclass
class Grant:
    subject: str
    expires_at: float


class TokenRegistry:
    """Issued bearer tokens with their expiry, plus static API keys; shared across emulators."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self.clock = clock
        self._tokens: dict[str, Grant] = {}
        self._api_keys: dict[str, str] = {}
        self._lock = threading.Lock()

    def issue(self, subject: str, lifetime_s: float, make: Callable[[], str]) -> tuple[str, float]:
        token, expires = make(), self.clock() + lifetime_s
        with self._lock:
            self._tokens[token] = Grant(subject, expires)
        return token, expires

    def add_api_key(self, key: str, subject: str) -> None:
        with self._lock:
            self._api_keys[key] = subject

    def revoke_all(self) -> None:
        with self._lock:
            self._tokens.clear()

    def bearer(self, token: str) -> str | None:
        """The subject of a valid, unexpired token."""
        with self._lock:
            grant = self._tokens.get(token)
        if grant is None or grant.expires_at <= self.clock():
            return None
        return grant.subject

    def api_key(self, key: str) -> str | None:
        with self._lock:
            return self._api_keys.get(key)

    def yandex_subject(self, authorization: str) -> str:
        """Check a Yandex `Authorization` header; raise 401 {code:16} when it is not good."""
        scheme, _, credential = authorization.strip().partition(" ")
        credential = credential.strip()
        subject = None
        if scheme == "Bearer" and credential:
            subject = self.bearer(credential)
        elif scheme == "Api-Key" and credential:
            subject = self.api_key(credential)
        elif not authorization:
            raise BadRequest(401, "The request is missing an Authorization header")
        if subject is None:
            raise BadRequest(401, "The token is invalid or has expired.")
        return subject


def _iam_token() -> str:
    middle = base64.urlsafe_b64encode(secrets.token_bytes(48)).decode().rstrip("=")
    tail = base64.urlsafe_b64encode(secrets.token_bytes(64)).decode()[:86]
    return f"t1.{middle}.{tail}"


class IamEmulator:
    """The IAM token endpoint; knows the sandbox service-account keys."""

    def __init__(self, registry: TokenRegistry, *, faults: Faults | None = None,
                 token_lifetime_s: float = 12 * 3600) -> None:
        self.registry = registry
        self.token_lifetime_s = token_lifetime_s
        self.keys: dict[str, tuple[str, Any]] = {}  # key id -> (service account id, public key)
        self.server = JsonServer("iam", faults=faults, error_formatter=rpc_error)
        self.server.add_route("POST", r"/iam/v1/tokens", self.create_token, name="create_token")

    def add_key(self, authorized_key: dict[str, Any]) -> None:
        public = serialization.load_pem_public_key(authorized_key["public_key"].encode())
        self.keys[authorized_key["id"]] = (authorized_key["service_account_id"], public)

    @property
    def token_url(self) -> str:
        return self.server.url + "/iam/v1/tokens"

    def create_token(self, request: Request) -> Response:
        body = request.json()
        if not isinstance(body, dict):
            raise BadRequest(400, "request body must be a JSON object")
        unknown = set(body) - {"jwt", "yandexPassportOauthToken"}
        if unknown:
            raise BadRequest(400, f"unknown field(s): {', '.join(sorted(unknown))}")
        if "yandexPassportOauthToken" in body:
            raise BadRequest(401, "OAuth token is invalid or expired")
        token = body.get("jwt")
        if not isinstance(token, str) or not token:
            raise BadRequest(400, "jwt: field is required")
        subject = self.verify(token)
        iam_token, expires = self.registry.issue(subject, self.token_lifetime_s, _iam_token)
        return Response(200, {"iamToken": iam_token, "expiresAt": rfc3339(expires)})

    def verify(self, token: str) -> str:
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError as exc:
            raise BadRequest(400, f"JWT is malformed: {exc}") from None
        if header.get("alg") != "PS256":
            raise BadRequest(400, f"JWT algorithm {header.get('alg')!r} is not supported; use PS256")
        kid = header.get("kid")
        if kid not in self.keys:
            raise BadRequest(401, f"Key {kid!r} not found")
        service_account_id, public = self.keys[kid]
        try:
            claims = jwt.decode(
                token, public, algorithms=["PS256"],
                audience=[self.token_url, REAL_TOKEN_URL],
                options={"require": ["iss", "aud", "iat", "exp"]},
                leeway=5,
            )
        except jwt.ExpiredSignatureError:
            raise BadRequest(401, "JWT has expired") from None
        except jwt.InvalidAudienceError:
            raise BadRequest(401, "JWT audience is invalid") from None
        except jwt.InvalidSignatureError:
            raise BadRequest(401, "JWT signature is invalid") from None
        except jwt.PyJWTError as exc:
            raise BadRequest(400, f"JWT is invalid: {exc}") from None
        if claims["iss"] != service_account_id:
            raise BadRequest(401, "JWT issuer does not own the key")
        if not isinstance(claims["iat"], (int, float)) or not isinstance(claims["exp"], (int, float)):
            raise BadRequest(400, "JWT iat/exp must be numbers")
        if claims["exp"] - claims["iat"] > 3600:
            raise BadRequest(400, "JWT lifetime (exp - iat) exceeds 3600 seconds")
        return service_account_id

    def start(self) -> int:
        return self.server.start()

    def stop(self) -> None:
        self.server.stop()

"""Real credential files for the sandbox: a Yandex authorized key and a Google SA key."""

from __future__ import annotations

import hashlib
import json
import secrets
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

YANDEX_BANNER = "PLEASE DO NOT REMOVE THIS LINE! Yandex.Cloud SA Key ID {key_id}"
_YC_ALPHABET = "abcdefghijklmnopqrstuv0123456789"


def yandex_id(prefix: str, rng_seed: str | None = None) -> str:
    """A 20-character Yandex Cloud style id (`aje…`, `ajf…`)."""
    if rng_seed is None:
        tail = "".join(secrets.choice(_YC_ALPHABET) for _ in range(20 - len(prefix)))
    else:
        digest = hashlib.sha256(rng_seed.encode()).digest()
        tail = "".join(_YC_ALPHABET[b % 32] for b in digest[: 20 - len(prefix)])
    return prefix + tail


def _rsa_pair() -> tuple[str, str]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    public_pem = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    ).decode()
    return private_pem, public_pem


def _write(path: Path | None, data: dict[str, Any]) -> None:
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(data, indent=2), encoding="utf-8")
        path.chmod(0o600)


def yandex_authorized_key(path: Path | None = None, *, service_account_id: str | None = None,
                          key_id: str | None = None) -> dict[str, Any]:
    """An `authorized_key.json` as `yc iam key create` writes it (RSA 2048)."""
    key_id = key_id or yandex_id("ajf")
    private_pem, public_pem = _rsa_pair()
    data = {
        "id": key_id,
        "service_account_id": service_account_id or yandex_id("aje"),
        "created_at": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
        "key_algorithm": "RSA_2048",
        "public_key": public_pem,
        "private_key": YANDEX_BANNER.format(key_id=key_id) + "\n" + private_pem,
    }
    _write(path, data)
    return data


def google_service_account_key(path: Path | None = None, *, token_uri: str,
                               project_id: str = "leadgen-sandbox",
                               client_email: str | None = None) -> dict[str, Any]:
    """A Google service-account key JSON whose `token_uri` points where we say."""
    private_pem, _ = _rsa_pair()
    email = client_email or f"leadgen-intake@{project_id}.iam.gserviceaccount.com"
    data = {
        "type": "service_account",
        "project_id": project_id,
        "private_key_id": secrets.token_hex(20),
        "private_key": private_pem,
        "client_email": email,
        "client_id": str(secrets.randbelow(10**21 - 10**20) + 10**20),
        "auth_uri": "https://accounts.google.com/o/oauth2/auth",
        "token_uri": token_uri,
        "auth_provider_x509_cert_url": "https://www.googleapis.com/oauth2/v1/certs",
        "client_x509_cert_url": "https://www.googleapis.com/robot/v1/metadata/x509/"
        + email.replace("@", "%40"),
        "universe_domain": "googleapis.com",
    }
    _write(path, data)
    return data


def public_key_of(private_pem: str) -> str:
    """The PEM public key of a (possibly Yandex-bannered) private key."""
    start = private_pem.index("-----BEGIN")
    key = serialization.load_pem_private_key(private_pem[start:].encode(), password=None)
    return key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    ).decode()

"""The sandbox certificate authority (trustme): one CA per sandbox, leaf certificates on demand.

`SandboxCA(directory)` writes the CA certificate to `directory/ca.pem` (`.ca_file`), which clients
trust through ENRICH_CA_FILE / SMTP_CA_FILE. `server_context(hostnames)` returns a server-side
`ssl.SSLContext` for those names, cached per set of names (ECDSA keys: fast to issue).
"""

from __future__ import annotations

import ssl
import threading
from pathlib import Path

import trustme


class SandboxCA:
    def __init__(self, directory: Path | str) -> None:
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self._ca = trustme.CA(organization_name="leadgen sandbox CA", key_type=trustme.KeyType.ECDSA)
        self.ca_file = self.directory / "ca.pem"
        self._ca.cert_pem.write_to_path(str(self.ca_file))
        self._contexts: dict[frozenset[str], ssl.SSLContext] = {}
        self._lock = threading.Lock()

    @property
    def ca_pem(self) -> bytes:
        return self._ca.cert_pem.bytes()

    def server_context(self, hostnames: list[str] | tuple[str, ...]) -> ssl.SSLContext:
        names = [h.lower().rstrip(".") for h in hostnames if h]
        if not names:
            raise ValueError("at least one hostname is needed")
        key = frozenset(names)
        with self._lock:
            ctx = self._contexts.get(key)
            if ctx is None:
                leaf = self._ca.issue_cert(*names, key_type=trustme.KeyType.ECDSA)
                ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
                ctx.minimum_version = ssl.TLSVersion.TLSv1_2
                ctx.set_alpn_protocols(["http/1.1"])
                leaf.configure_cert(ctx)
                self._contexts[key] = ctx
            return ctx

    def client_context(self) -> ssl.SSLContext:
        """A client context that trusts this CA (for tests and the sandbox's own checks)."""
        ctx = ssl.create_default_context(cafile=str(self.ca_file))
        return ctx

"""`Sandbox`: the synthetic world and every emulator, in process, on free loopback ports.

    with Sandbox(tmp_path, seed=7) as sb:
        os.environ.update(sb.env())      # the product now talks only to the sandbox
        ...
        sb.mailbox()                     # what was delivered
"""

from __future__ import annotations

import hashlib
import secrets
from pathlib import Path
from typing import Any

from leadgen.sandbox.dns import DnsServer
from leadgen.sandbox.faults import Faults
from leadgen.sandbox.iam import IamEmulator, TokenRegistry
from leadgen.sandbox.keys import google_service_account_key, yandex_authorized_key, yandex_id
from leadgen.sandbox.openai_api import OpenAIEmulator
from leadgen.sandbox.sheets import SheetsEmulator
from leadgen.sandbox.smtp import DEFAULT_PASSWORD, DEFAULT_USER, SmtpServer, StoredMessage
from leadgen.sandbox.tls import SandboxCA
from leadgen.sandbox.web import WebFaults, WebServer
from leadgen.sandbox.world import World
from leadgen.sandbox.yandex import YandexSearchEmulator

SAMPLE_SHEET = Path(__file__).parent / "data" / "sample_sheet.csv"
SHEET_TAB = "NICHES_INPUT"
SYNTHETIC_NETWORK = "127.77.0.0/16"


class Sandbox:
    def __init__(self, directory: Path, seed: int = 7, scale: int = 1, faults: Faults | None = None,
                 web_latency_ms: float = 0, llm_latency_ms: float = 0,
                 operation_delay_s: float = 0, sheet_csv: Path | None = None, *,
                 iam_token_lifetime_s: float = 12 * 3600, operation_retention_s: float = 12 * 3600,
                 google_token_lifetime_s: float = 3600,
                 sheets_quota_per_minute: int | None = None) -> None:
        self.directory = Path(directory)
        self.seed = seed
        self.scale = scale
        self.faults = faults or Faults(seed=seed)
        self.web_latency_ms = web_latency_ms
        self.llm_latency_ms = llm_latency_ms
        self.operation_delay_s = operation_delay_s
        self.sheet_csv = Path(sheet_csv) if sheet_csv else SAMPLE_SHEET
        self.iam_token_lifetime_s = iam_token_lifetime_s
        self.operation_retention_s = operation_retention_s
        self.google_token_lifetime_s = google_token_lifetime_s
        self.sheets_quota_per_minute = sheets_quota_per_minute  # Google's is 60 (None = off)
        self.folder_id = yandex_id("b1g", f"folder:{seed}")
        self.yandex_api_key = "AQVN" + secrets.token_urlsafe(30)
        self.smtp_username = DEFAULT_USER
        self.smtp_password = DEFAULT_PASSWORD
        self.world: World | None = None
        self.started = False
        self._stoppers: list[Any] = []

    # --- lifecycle ----------------------------------------------------------------------------
    def __enter__(self) -> Sandbox:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> Sandbox:
        if self.started:
            return self
        try:
            self._start()
        except BaseException:
            self.stop()
            raise
        self.started = True
        return self

    def _start(self) -> None:
        d = self.directory
        d.mkdir(parents=True, exist_ok=True)
        self.world = World(seed=self.seed, scale=self.scale)
        self.ca = SandboxCA(d / "ca")

        self.yandex_key_file = d / "yandex_authorized_key.json"
        yandex_key = yandex_authorized_key(self.yandex_key_file)
        self.tokens = TokenRegistry()
        self.tokens.add_api_key(self.yandex_api_key, yandex_key["service_account_id"])
        self.iam = IamEmulator(self.tokens, faults=self.faults,
                               token_lifetime_s=self.iam_token_lifetime_s)
        self.iam.add_key(yandex_key)
        self._run(self.iam)
        self.yandex = YandexSearchEmulator(
            self.world, self.tokens, self.folder_id, faults=self.faults,
            operation_delay_s=self.operation_delay_s, retention_s=self.operation_retention_s)
        self._run(self.yandex)

        self.sheets = SheetsEmulator(faults=self.faults,
                                     token_lifetime_s=self.google_token_lifetime_s,
                                     per_minute_quota=self.sheets_quota_per_minute)
        self._run(self.sheets)
        self.google_key_file = d / "google_service_account.json"
        self.sheets.add_service_account(
            google_service_account_key(self.google_key_file, token_uri=self.sheets.token_url))
        sheet_seed = hashlib.sha256(f"sheet:{self.seed}".encode()).hexdigest()
        self.sheet_id = self.sheets.load_csv(self.sheet_csv, tab=SHEET_TAB,
                                             spreadsheet_id="1sbx" + sheet_seed[:40])

        self.openai = OpenAIEmulator({"sk-sandbox-" + sheet_seed[:32]}, faults=self.faults,
                                     latency_ms=self.llm_latency_ms)
        self._run(self.openai)

        self.smtp = SmtpServer(self.ca, d / "mail", faults=self.faults,
                               credentials={self.smtp_username: self.smtp_password})
        self._run(self.smtp)

        web = self.faults.of("web")
        self.web = WebServer(self.world, self.ca, latency_ms=self.web_latency_ms, faults=WebFaults(
            error_rate=sum(web.errors.values()), reset_rate=web.drop,
            extra_delay_ms=web.latency_ms[0], seed=self.faults.seed))
        self._run(self.web)
        self.dns = DnsServer(self.world)
        self._run(self.dns)

    def _run(self, server: Any) -> None:
        server.start()
        self._stoppers.append(server)

    def stop(self) -> None:
        while self._stoppers:
            server = self._stoppers.pop()
            try:
                server.stop()
            except Exception:  # stopping must go on for the others
                pass
        self.started = False

    # --- what the product and the tests see ---------------------------------------------------
    def endpoints(self) -> dict[str, Any]:
        self._require()
        return {
            "iam": self.iam.token_url,
            "search": self.yandex.search_url,
            "operations": self.yandex.operations_url,
            "sheets": self.sheets.base_url,
            "oauth_token": self.sheets.token_url,
            "openai": self.openai.base_url,
            "smtp": f"127.0.0.1:{self.smtp.port}",
            "smtp_ssl": f"127.0.0.1:{self.smtp.ssl_port}",
            "dns": self.dns.address,
            "proxy": self.web.proxy_url,
            "yandex_key_file": str(self.yandex_key_file),
            "google_key_file": str(self.google_key_file),
            "ca_file": str(self.ca.ca_file),
            "mailbox": str(self.smtp.mbox_path),
            "yandex_api_key": self.yandex_api_key,
            "folder_id": self.folder_id,
            "sheet_id": self.sheet_id,
        }

    def env(self) -> dict[str, str]:
        """Every variable the product needs to use the sandbox instead of the real services."""
        self._require()
        return {
            "YANDEX_SEARCH_URL": self.yandex.search_url,
            "YANDEX_OPERATIONS_URL": self.yandex.operations_url,
            "YANDEX_IAM_URL": self.iam.token_url,
            "YANDEX_CLOUD_SA_KEY_FILE": str(self.yandex_key_file),
            "YANDEX_CLOUD_FOLDER_ID": self.folder_id,
            "GOOGLE_SA_KEY_FILE": str(self.google_key_file),
            "GOOGLE_SHEETS_BASE_URL": self.sheets.base_url,
            "GOOGLE_SHEET_ID": self.sheet_id,
            "GOOGLE_SHEET_TAB": SHEET_TAB,
            "OPENAI_BASE_URL": self.openai.base_url,
            "OPENAI_API_KEY": self.openai.api_key,
            "SMTP_HOST": "127.0.0.1",
            "SMTP_PORT": str(self.smtp.port),
            "SMTP_SECURITY": "starttls",
            "SMTP_USERNAME": self.smtp_username,
            "SMTP_PASSWORD": self.smtp_password,
            "SMTP_FROM_EMAIL": self.smtp_username,
            "SMTP_FROM_NAME": "Агентство Песочница",
            "SMTP_CA_FILE": str(self.ca.ca_file),
            "EMAIL_SENDING_ENABLED": "true",
            "UNSUBSCRIBE_MAILTO": "unsubscribe@agency-sandbox.test",
            "DNS_RESOLVERS": self.dns.address,
            "ENRICH_PROXY_URL": self.web.proxy_url,
            "ENRICH_CA_FILE": str(self.ca.ca_file),
            "ENRICH_ALLOWED_NETWORKS": SYNTHETIC_NETWORK,
        }

    def mailbox(self) -> list[StoredMessage]:
        self._require()
        return self.smtp.messages()

    def _require(self) -> None:
        if not self.started:
            raise RuntimeError("the sandbox is not started (use `with Sandbox(...) as sb:`)")

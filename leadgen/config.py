"""All configuration in one pydantic-settings object.

Variable names follow the earlier system (`YANDEX_CLOUD_*`, `GOOGLE_*`, `SHEET_SYNC_*`, `SMTP_*`,
`POSTGRES_*`, ...) so its users can keep their `.env`. With nothing configured the product runs
embedded: SQLite in `./var/` and Celery in process (no broker).
"""

from __future__ import annotations

import functools
import json
import os
from datetime import time
from pathlib import Path
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict
from typing_extensions import Annotated

# A comma-separated list in the environment ("a.ru, b.ru") becomes list[str].
CsvList = Annotated[list[str], NoDecode]

SECRET_FIELDS = {
    "database_url",
    "postgres_password",
    "redis_url",
    "celery_broker_url",
    "yandex_cloud_iam_token",
    "yandex_cloud_sa_key_json",
    "yandex_search_api_key",
    "google_sa_key_json",
    "openai_api_key",
    "smtp_password",
    "gmail_pass",
    "yandex_pass",
    "mailboxes_json",
    "unsubscribe_secret",
    "flower_basic_auth",
}


class ConfigError(RuntimeError):
    """A configuration value is missing or invalid; the message names the variable."""


def _split_csv(value: Any) -> Any:
    if isinstance(value, str):
        return [item.strip() for item in value.split(",") if item.strip()]
    return value


def _parse_hhmm(value: Any) -> Any:
    if isinstance(value, str):
        try:
            hours, minutes = value.strip().split(":")
            return time(int(hours), int(minutes))
        except ValueError as exc:
            raise ValueError(f"expected HH:MM, got {value!r}") from exc
    return value


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_file=".env", env_file_encoding="utf-8", extra="ignore", case_sensitive=False
    )

    # --- storage and broker -------------------------------------------------------------------
    database_url: str = ""
    postgres_user: str = "leadgen"
    postgres_password: str = ""
    postgres_db: str = "leadgen"
    postgres_host: str = ""
    postgres_port: int = 5432
    sqlite_path: str = "var/leadgen.sqlite3"
    redis_url: str = ""
    celery_broker_url: str = ""
    celery_always_eager: bool = False

    # --- general ------------------------------------------------------------------------------
    app_timezone: str = "Europe/Moscow"
    log_level: str = "INFO"
    log_format: Literal["text", "json"] = "text"

    # --- intake: Google Sheet -----------------------------------------------------------------
    google_sheet_id: str = ""
    google_sheet_tab: str = "NICHES_INPUT"
    google_sa_key_file: str = ""
    google_sa_key_json: str = ""
    google_sheets_base_url: str = ""  # only to point gspread at an emulator
    sheet_sync_enabled: bool = False
    sheet_sync_interval_minutes: int = Field(60, ge=1)
    sheet_sync_batch_tag: str = ""

    # --- query generation ---------------------------------------------------------------------
    query_templates: CsvList = ["{niche} {place}"]
    query_pages: int = Field(1, ge=1, le=10)
    query_refresh_days: int = Field(0, ge=0)  # 0 = a query is never searched again
    query_max_niche_chars: int = Field(200, ge=10)  # a longer niche cell is rejected as junk
    night_window_start: time = time(0, 0)
    night_window_end: time = time(7, 59)

    # --- Yandex Search API --------------------------------------------------------------------
    yandex_cloud_folder_id: str = ""
    yandex_cloud_iam_token: str = ""
    yandex_cloud_sa_key_file: str = ""
    yandex_cloud_sa_key_json: str = ""
    yandex_search_api_key: str = ""
    yandex_enforce_night_window: bool = True
    yandex_search_url: str = "https://searchapi.api.cloud.yandex.net"
    yandex_operations_url: str = "https://operation.api.cloud.yandex.net"
    yandex_iam_url: str = "https://iam.api.cloud.yandex.net/iam/v1/tokens"
    yandex_search_type: str = "SEARCH_TYPE_RU"
    yandex_groups_on_page: int = Field(100, ge=1, le=100)
    yandex_max_passages: int = Field(3, ge=1, le=5)
    yandex_rps: int = Field(10, ge=1)
    yandex_hourly_quota: int = Field(35_000, ge=1)
    yandex_daily_quota: int = Field(1_000, ge=1)
    yandex_max_attempts: int = Field(3, ge=1)
    yandex_poll_interval_seconds: int = Field(60, ge=0)
    yandex_operation_timeout_hours: float = Field(12.0, gt=0)
    yandex_http_timeout_seconds: float = Field(10.0, gt=0)
    yandex_l10n: str = "LOCALIZATION_RU"
    yandex_backoff_base_seconds: float = Field(60.0, ge=0)  # retry delay: base * 2^(attempts-1)
    yandex_backoff_max_seconds: float = Field(3600.0, ge=0)
    yandex_rate_wait_seconds: float = Field(5.0, ge=0)  # longest sleep for an rps slot
    search_blocked_domains: CsvList = []
    search_submit_batch_size: int = Field(50, ge=1)
    search_poll_batch_size: int = Field(50, ge=1)
    yandex_price_per_1000: float = Field(0.208, ge=0)  # USD per 1,000 deferred requests (night)
    serp_skip_touchdown: bool = True  # no company for results Yandex flags with touchdown (РКН)
    serp_rps_backoff_seconds: int = Field(60, ge=1)  # first back-off after error 55/100
    dedupe_fuzzy_names: bool = True
    dedupe_shared_emails: bool = True
    dedupe_shared_email_max_companies: int = Field(3, ge=2)  # more = a web studio's address

    # --- enrichment ---------------------------------------------------------------------------
    enrich_timeout_seconds: float = Field(6.0, ge=1)
    enrich_max_pages: int = Field(6, ge=1, le=30)
    enrich_max_bytes: int = Field(2_000_000, ge=10_000)
    enrich_max_redirects: int = Field(5, ge=0, le=20)
    enrich_concurrency: int = Field(128, ge=1)
    enrich_per_host_delay_seconds: float = Field(0.5, ge=0)
    enrich_batch_size: int = Field(200, ge=1)
    enrich_max_attempts: int = Field(3, ge=1)
    enrich_retry_after_hours: float = Field(24.0, ge=0)
    enrich_respect_robots: bool = True
    enrich_user_agent: str = "leadgen/1.0 (+contact crawler; respects robots.txt)"
    enrich_proxy_url: CsvList = []
    enrich_allowed_networks: CsvList = []  # e.g. 127.77.0.0/16 for the sandbox; empty = public only
    enrich_ca_file: str = ""  # extra CA bundle to trust (a TLS-inspecting proxy, the sandbox)
    homepage_excerpt_limit: int = Field(4_000, ge=200)
    mx_check_enabled: bool = True
    dns_resolvers: CsvList = []  # "host" or "host:port"; empty = the system resolver
    dns_timeout_seconds: float = Field(2.0, gt=0)

    # --- generation (OpenAI) ------------------------------------------------------------------
    openai_api_key: str = ""
    openai_base_url: str = ""
    openai_email_model: str = "gpt-4.1-mini"
    openai_timeout_seconds: float = Field(60.0, gt=0)
    openai_max_retries: int = Field(3, ge=0)
    openai_price_input_per_1m: float = Field(0.40, ge=0)
    openai_price_output_per_1m: float = Field(1.60, ge=0)
    llm_fallback: Literal["template", "hold"] = "template"
    llm_concurrency: int = Field(4, ge=1)
    llm_allow_links: bool = False
    offer_brief_file: str = ""
    llm_excerpt_tokens: int = Field(800, ge=50)  # homepage excerpt budget in the prompt
    llm_body_min_chars: int = Field(200, ge=1)
    llm_body_max_chars: int = Field(2500, ge=100)
    openai_backoff_seconds: float = Field(1.0, ge=0)  # first retry delay, doubled each time
    openai_max_backoff_seconds: float = Field(30.0, ge=0)  # cap, also on a server retry-after

    # --- queue and delivery -------------------------------------------------------------------
    email_sending_enabled: bool = True
    send_window_start: time = time(9, 10)
    send_window_end: time = time(19, 45)
    send_working_days: CsvList = ["1", "2", "3", "4", "5"]  # ISO weekdays, Monday = 1
    send_gap_min_seconds: int = Field(240, ge=0)
    send_gap_max_seconds: int = Field(480, ge=0)
    send_batch_size: int = Field(50, ge=1)
    send_max_attempts: int = Field(5, ge=1)
    send_backoff_minutes: CsvList = ["5", "15", "60", "240"]  # after SMTP 4xx; last repeats
    smtp_host: str = "smtp.gmail.com"
    smtp_port: int = Field(587, ge=1, le=65535)
    smtp_security: Literal["starttls", "ssl", "none"] = "starttls"
    smtp_username: str = ""
    smtp_password: str = ""
    smtp_from_email: str = ""
    smtp_from_name: str = ""
    smtp_reply_to: str = ""
    smtp_daily_cap: int = Field(100, ge=1)
    smtp_timeout_seconds: float = Field(30.0, gt=0)
    smtp_ca_file: str = ""  # extra CA bundle to trust (the sandbox's certificate)
    gmail_user: str = ""
    gmail_pass: str = ""
    gmail_from: str = ""
    gmail_smtp_host: str = "smtp.gmail.com"
    gmail_smtp_port: int = 587
    yandex_user: str = ""
    yandex_pass: str = ""
    yandex_from: str = ""
    yandex_smtp_host: str = "smtp.yandex.ru"
    yandex_smtp_port: int = 465
    mailboxes_json: str = ""  # a JSON list of mailboxes; overrides SMTP_*/GMAIL_*/YANDEX_*
    routing_enabled: bool = False
    routing_ru_mx_patterns: CsvList = ["yandex", "mail.ru", "rambler", "mxs.mail.ru"]
    routing_ru_mx_tlds: CsvList = ["ru", "su", "xn--p1ai"]  # MX hosts under these TLDs → ru
    routing_force_ru_domains: CsvList = [
        "yandex.ru", "ya.ru", "yandex.com", "mail.ru", "bk.ru", "inbox.ru", "list.ru",
        "rambler.ru"]
    routing_mx_cache_ttl_hours: float = Field(168.0, gt=0)
    unsubscribe_url: str = ""  # https://…/unsubscribe; enables RFC 8058 one-click
    unsubscribe_mailto: str = ""
    unsubscribe_secret: str = ""

    # --- operations ---------------------------------------------------------------------------
    lease_seconds: int = Field(900, ge=30)
    # 0 = production crontab ticks (every minute). The demo and end-to-end tests set a few
    # seconds so the whole pipeline runs in one go.
    beat_interval_seconds: int = Field(0, ge=0)
    flower_basic_auth: str = ""

    # --- validators ---------------------------------------------------------------------------
    @field_validator(
        "query_templates",
        "search_blocked_domains",
        "enrich_proxy_url",
        "enrich_allowed_networks",
        "dns_resolvers",
        "send_working_days",
        "routing_ru_mx_patterns",
        "routing_ru_mx_tlds",
        "routing_force_ru_domains",
        "send_backoff_minutes",
        mode="before",
    )
    @classmethod
    def _csv(cls, value: Any) -> Any:
        return _split_csv(value)

    @field_validator(
        "night_window_start",
        "night_window_end",
        "send_window_start",
        "send_window_end",
        mode="before",
    )
    @classmethod
    def _hhmm(cls, value: Any) -> Any:
        return _parse_hhmm(value)

    @field_validator("app_timezone")
    @classmethod
    def _timezone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown time zone {value!r}") from exc
        return value

    @field_validator("send_working_days")
    @classmethod
    def _weekdays(cls, value: list[str]) -> list[str]:
        for day in value:
            if day not in {"1", "2", "3", "4", "5", "6", "7"}:
                raise ValueError(f"weekday {day!r} is not 1..7 (Monday = 1)")
        return value

    @field_validator("query_templates")
    @classmethod
    def _templates(cls, value: list[str]) -> list[str]:
        if not value:
            raise ValueError("at least one template is needed")
        for template in value:
            if "{niche}" not in template:
                raise ValueError(f"template {template!r} lacks {{niche}}")
        return value

    @field_validator("mailboxes_json")
    @classmethod
    def _mailboxes_json(cls, value: str) -> str:
        if value.strip():
            try:
                parsed = json.loads(value)
            except json.JSONDecodeError as exc:
                raise ValueError(f"not valid JSON: {exc}") from exc
            if not isinstance(parsed, list):
                raise ValueError("must be a JSON list of mailbox objects")
        return value

    @model_validator(mode="after")
    def _gaps(self) -> Settings:
        if self.send_gap_min_seconds > self.send_gap_max_seconds:
            raise ValueError("SEND_GAP_MIN_SECONDS must not exceed SEND_GAP_MAX_SECONDS")
        return self

    # --- derived values -----------------------------------------------------------------------
    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.app_timezone)

    @property
    def effective_database_url(self) -> str:
        """DATABASE_URL wins; then POSTGRES_HOST; else the embedded SQLite file."""
        if self.database_url:
            return self.database_url
        if self.postgres_host:
            password = f":{self.postgres_password}" if self.postgres_password else ""
            return (
                f"postgresql+psycopg://{self.postgres_user}{password}@{self.postgres_host}:"
                f"{self.postgres_port}/{self.postgres_db}"
            )
        return f"sqlite:///{self.sqlite_path}"

    @property
    def broker_url(self) -> str:
        return self.celery_broker_url or self.redis_url

    @property
    def runs_in_process(self) -> bool:
        """No broker configured: Celery tasks run inline (the embedded default)."""
        return self.celery_always_eager or not self.broker_url

    @property
    def is_sqlite(self) -> bool:
        return self.effective_database_url.startswith("sqlite")

    def masked(self) -> dict[str, Any]:
        """The effective configuration with secrets hidden, for `leadgen config check`."""
        values = self.model_dump()
        values["effective_database_url"] = self.effective_database_url
        for key in list(values):
            if key in SECRET_FIELDS or key == "effective_database_url":
                values[key] = _mask(key, values[key])
        return values


def _mask(key: str, value: Any) -> Any:
    if not value:
        return value
    text = str(value)
    if "://" in text:  # keep the scheme and host of URLs, hide credentials
        scheme, rest = text.split("://", 1)
        if "@" in rest:
            rest = "***@" + rest.rsplit("@", 1)[1]
        return f"{scheme}://{rest}"
    return "***"


def _describe(error: ValidationError) -> str:
    lines = []
    for item in error.errors():
        name = ".".join(str(part) for part in item["loc"]).upper() or "settings"
        lines.append(f"{name}: {item['msg']} (got {item.get('input')!r})")
    return "invalid configuration:\n  " + "\n  ".join(lines)


def load_settings(**overrides: Any) -> Settings:
    """Build settings from the environment; a bad value raises ConfigError naming it."""
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        raise ConfigError(_describe(exc)) from None


@functools.lru_cache(maxsize=1)
def get_settings() -> Settings:
    return load_settings()


def reset_settings() -> None:
    """Forget cached settings (tests and the demo change the environment)."""
    get_settings.cache_clear()


def production_gaps(settings: Settings) -> list[str]:
    """What is missing for a production run, in plain words."""
    gaps = []
    if settings.is_sqlite:
        gaps.append("DATABASE_URL or POSTGRES_HOST: production needs PostgreSQL (now SQLite)")
    if settings.runs_in_process:
        gaps.append("REDIS_URL: no broker, tasks run in process")
    if not settings.yandex_cloud_folder_id:
        gaps.append("YANDEX_CLOUD_FOLDER_ID is empty")
    if not (
        settings.yandex_cloud_iam_token
        or settings.yandex_cloud_sa_key_file
        or settings.yandex_cloud_sa_key_json
        or settings.yandex_search_api_key
    ):
        gaps.append("no Yandex credentials (YANDEX_CLOUD_SA_KEY_FILE, _JSON, _IAM_TOKEN or API key)")
    if not settings.google_sheet_id:
        gaps.append("GOOGLE_SHEET_ID is empty (use `leadgen sync --csv FILE` instead)")
    elif not (settings.google_sa_key_file or settings.google_sa_key_json):
        gaps.append("GOOGLE_SA_KEY_FILE or GOOGLE_SA_KEY_JSON is needed for the sheet")
    if settings.google_sa_key_file and not Path(settings.google_sa_key_file).is_file():
        gaps.append(f"GOOGLE_SA_KEY_FILE {settings.google_sa_key_file} is not a file")
    if settings.yandex_cloud_sa_key_file and not Path(settings.yandex_cloud_sa_key_file).is_file():
        gaps.append(f"YANDEX_CLOUD_SA_KEY_FILE {settings.yandex_cloud_sa_key_file} is not a file")
    if not settings.openai_api_key:
        gaps.append(f"OPENAI_API_KEY is empty: every email uses the fallback ({settings.llm_fallback})")
    if not (settings.mailboxes_json or settings.smtp_username or settings.gmail_user or settings.yandex_user):
        gaps.append("no sending mailbox (SMTP_USERNAME/SMTP_PASSWORD, GMAIL_*, YANDEX_* or MAILBOXES_JSON)")
    if not settings.smtp_from_email and not settings.mailboxes_json:
        gaps.append("SMTP_FROM_EMAIL is empty")
    return gaps


def env_flag(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in {"1", "true", "yes", "on"}

from datetime import time

import pytest

from leadgen.config import ConfigError, load_settings, production_gaps


def test_embedded_defaults_need_no_servers():
    settings = load_settings()
    assert settings.effective_database_url.startswith("sqlite:///")
    assert settings.runs_in_process


def test_database_url_wins_over_postgres_parts(monkeypatch):
    monkeypatch.setenv("POSTGRES_HOST", "db")
    monkeypatch.setenv("POSTGRES_PASSWORD", "s3cret")
    assert load_settings().effective_database_url == (
        "postgresql+psycopg://leadgen:s3cret@db:5432/leadgen"
    )
    monkeypatch.setenv("DATABASE_URL", "postgresql+psycopg://u@h/x")
    assert load_settings().effective_database_url == "postgresql+psycopg://u@h/x"


def test_seed_variable_names_are_accepted(monkeypatch):
    monkeypatch.setenv("YANDEX_CLOUD_FOLDER_ID", "b1gfolder")
    monkeypatch.setenv("SHEET_SYNC_ENABLED", "yes")
    monkeypatch.setenv("SHEET_SYNC_INTERVAL_MINUTES", "15")
    monkeypatch.setenv("EMAIL_SENDING_ENABLED", "false")
    monkeypatch.setenv("APP_TIMEZONE", "Asia/Yekaterinburg")
    monkeypatch.setenv("REDIS_URL", "redis://redis:6379/0")
    settings = load_settings()
    assert settings.yandex_cloud_folder_id == "b1gfolder"
    assert settings.sheet_sync_enabled and settings.sheet_sync_interval_minutes == 15
    assert settings.email_sending_enabled is False
    assert settings.tz.key == "Asia/Yekaterinburg"
    assert not settings.runs_in_process


@pytest.mark.parametrize(
    ("name", "value", "fragment"),
    [
        ("YANDEX_RPS", "abc", "YANDEX_RPS"),
        ("APP_TIMEZONE", "Mars/Olympus", "unknown time zone"),
        ("SEND_WINDOW_START", "9am", "SEND_WINDOW_START"),
        ("SEND_WORKING_DAYS", "1,2,8", "weekday"),
        ("QUERY_TEMPLATES", "{city} only", "{niche}"),
        ("MAILBOXES_JSON", "{not json", "MAILBOXES_JSON"),
        ("LLM_FALLBACK", "shrug", "LLM_FALLBACK"),
    ],
)
def test_bad_values_name_the_variable(monkeypatch, name, value, fragment):
    monkeypatch.setenv(name, value)
    with pytest.raises(ConfigError) as error:
        load_settings()
    assert fragment in str(error.value)


def test_gap_bounds_are_checked(monkeypatch):
    monkeypatch.setenv("SEND_GAP_MIN_SECONDS", "600")
    monkeypatch.setenv("SEND_GAP_MAX_SECONDS", "60")
    with pytest.raises(ConfigError, match="SEND_GAP_MIN_SECONDS"):
        load_settings()


def test_lists_and_times_parse(monkeypatch):
    monkeypatch.setenv("SEARCH_BLOCKED_DOMAINS", " a.ru, b.ru ,")
    monkeypatch.setenv("NIGHT_WINDOW_END", "06:30")
    settings = load_settings()
    assert settings.search_blocked_domains == ["a.ru", "b.ru"]
    assert settings.night_window_end == time(6, 30)


def test_masked_hides_secrets(monkeypatch):
    monkeypatch.setenv("DATABASE_URL", "postgresql+psycopg://user:pw@db:5432/leadgen")
    monkeypatch.setenv("OPENAI_API_KEY", "sk-live-123")
    monkeypatch.setenv("SMTP_PASSWORD", "app-password")
    masked = load_settings().masked()
    text = repr(masked)
    assert "sk-live-123" not in text and "app-password" not in text and ":pw@" not in text
    assert masked["database_url"] == "postgresql+psycopg://***@db:5432/leadgen"


def test_production_gaps_name_what_is_missing():
    gaps = "\n".join(production_gaps(load_settings()))
    assert "PostgreSQL" in gaps and "REDIS_URL" in gaps and "YANDEX_CLOUD_FOLDER_ID" in gaps

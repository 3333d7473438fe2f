"""The whole sandbox in process: every production client reaches it through `env()` alone."""

from __future__ import annotations

import base64
import csv
import json
import os
import signal
import smtplib
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from email.message import EmailMessage
from pathlib import Path

import dns.resolver
import httpx
import jwt
import openai
import pytest
from lxml import etree

from leadgen.config import load_settings, reset_settings
from leadgen.sandbox.runner import SAMPLE_SHEET, Sandbox
from leadgen.sandbox.world_vocab import CITIES, NICHES
from leadgen.sheets_client import open_worksheet

EXPECTED_ENV = {
    "YANDEX_SEARCH_URL", "YANDEX_OPERATIONS_URL", "YANDEX_IAM_URL", "YANDEX_CLOUD_SA_KEY_FILE",
    "YANDEX_CLOUD_FOLDER_ID", "GOOGLE_SA_KEY_FILE", "GOOGLE_SHEETS_BASE_URL", "GOOGLE_SHEET_ID",
    "OPENAI_BASE_URL", "OPENAI_API_KEY", "SMTP_HOST", "SMTP_PORT", "SMTP_USERNAME",
    "SMTP_PASSWORD", "SMTP_FROM_EMAIL", "SMTP_CA_FILE", "DNS_RESOLVERS", "ENRICH_PROXY_URL",
    "ENRICH_CA_FILE", "ENRICH_ALLOWED_NETWORKS", "EMAIL_SENDING_ENABLED",
}


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sandbox]:
    with Sandbox(tmp_path_factory.mktemp("sandbox"), seed=7) as box:
        yield box


@pytest.fixture
def env(sandbox: Sandbox, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    values = sandbox.env()
    for name, value in values.items():
        monkeypatch.setenv(name, value)
    reset_settings()
    return values


def test_env_is_complete_and_valid_settings(sandbox: Sandbox, env: dict[str, str]) -> None:
    assert EXPECTED_ENV <= set(env)
    settings = load_settings()
    assert settings.yandex_search_url == env["YANDEX_SEARCH_URL"]
    assert settings.enrich_allowed_networks == ["127.77.0.0/16"]
    assert settings.dns_resolvers == [env["DNS_RESOLVERS"]]
    assert settings.smtp_port == sandbox.smtp.port and settings.smtp_security == "starttls"
    endpoints = sandbox.endpoints()
    for name in ("iam", "search", "operations", "sheets", "oauth_token", "openai", "smtp", "dns",
                 "proxy", "yandex_key_file", "google_key_file", "ca_file", "mailbox"):
        assert endpoints[name], name
    for name in ("yandex_key_file", "google_key_file", "ca_file"):
        assert Path(endpoints[name]).is_file()


def test_yandex_flow_with_the_key_file(sandbox: Sandbox, env: dict[str, str]) -> None:
    key = json.loads(Path(env["YANDEX_CLOUD_SA_KEY_FILE"]).read_text())
    now = int(time.time())
    token = jwt.encode({"iss": key["service_account_id"], "aud": env["YANDEX_IAM_URL"],
                        "iat": now, "exp": now + 360}, key["private_key"], algorithm="PS256",
                       headers={"kid": key["id"]})
    with httpx.Client(timeout=10) as client:
        iam = client.post(env["YANDEX_IAM_URL"], json={"jwt": token}).json()["iamToken"]
        auth = {"Authorization": f"Bearer {iam}"}
        operation = client.post(env["YANDEX_SEARCH_URL"] + "/v2/web/searchAsync", headers=auth,
                                json={"query": {"searchType": "SEARCH_TYPE_RU",
                                                "queryText": "стоматология Москва"},
                                      "groupSpec": {"groupsOnPage": "100"}, "region": "213",
                                      "folderId": env["YANDEX_CLOUD_FOLDER_ID"]}).json()
        done = client.get(f"{env['YANDEX_OPERATIONS_URL']}/operations/{operation['id']}",
                          headers=auth).json()
    root = etree.fromstring(base64.b64decode(done["response"]["rawData"]))
    domains = {d.text for d in root.iter("domain")}
    truth = sandbox.world.ground_truth()
    assert len(domains & set(truth)) >= 5


def test_dns_answers_through_dnspython(sandbox: Sandbox, env: dict[str, str]) -> None:
    host, port = env["DNS_RESOLVERS"].split(":")
    resolver = dns.resolver.Resolver(configure=False)
    resolver.nameservers = [host]
    resolver.port = int(port)
    resolver.lifetime = 3
    truth = sandbox.world.ground_truth()
    domain = next(d for d, info in truth.items() if info["kind"] == "normal")
    addresses = [r.address for r in resolver.resolve(domain, "A")]
    assert addresses and all(a.startswith("127.77.") for a in addresses)
    assert len(resolver.resolve(domain, "MX")) >= 1


def test_sheet_through_the_production_helper(sandbox: Sandbox, env: dict[str, str]) -> None:
    worksheet = open_worksheet(load_settings())
    rows = worksheet.get_all_values()
    assert rows[0] == ["niche", "city", "country", "batch_tag"]
    worksheet.update([["status"]], "E1")
    assert sandbox.sheets.values("NICHES_INPUT")[0][4] == "status"


def test_sample_sheet_uses_niches_and_cities_the_world_knows() -> None:
    with SAMPLE_SHEET.open(encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    assert 8 <= len(rows) <= 15
    niches = {n.title for n in NICHES}
    cities = {c.name for c in CITIES}
    for row in rows:
        assert row["niche"] in niches and row["batch_tag"]
        assert row["city"] in cities or (not row["city"] and row["country"])


def test_openai_client_from_environment(env: dict[str, str]) -> None:
    client = openai.OpenAI(max_retries=0)  # OPENAI_BASE_URL and OPENAI_API_KEY from env
    reply = client.chat.completions.create(
        model="gpt-4.1-mini", messages=[{"role": "user", "content": "Компания: Ромашка"}])
    assert "Ромашка" in reply.choices[0].message.content


def test_smtp_from_environment(sandbox: Sandbox, env: dict[str, str]) -> None:
    context = ssl.create_default_context(cafile=env["SMTP_CA_FILE"])
    msg = EmailMessage()
    msg["From"], msg["To"], msg["Subject"] = env["SMTP_FROM_EMAIL"], "info@client.ru", "Тест"
    msg.set_content("Привет")
    with smtplib.SMTP(env["SMTP_HOST"], int(env["SMTP_PORT"]), timeout=5) as conn:
        conn.starttls(context=context)
        conn.login(env["SMTP_USERNAME"], env["SMTP_PASSWORD"])
        conn.send_message(msg)
    assert any(m.rcpt_tos == ["info@client.ru"] for m in sandbox.mailbox())


def test_web_proxy_serves_a_synthetic_site(sandbox: Sandbox, env: dict[str, str]) -> None:
    truth = sandbox.world.ground_truth()
    domain = next(d for d, info in truth.items() if info["kind"] == "normal")
    with httpx.Client(proxy=env["ENRICH_PROXY_URL"], verify=ssl.create_default_context(
            cafile=env["ENRICH_CA_FILE"]), timeout=10, follow_redirects=True) as client:
        assert client.get(f"https://{domain}/").status_code == 200


def test_not_started_sandbox_says_so(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError):
        Sandbox(tmp_path).env()


def test_cli_registers_sandbox_up() -> None:
    from leadgen.cli import main

    assert "up" in main.commands["sandbox"].commands


def test_cli_sandbox_up_prints_json_and_stops_on_ctrl_c(tmp_path: Path) -> None:
    process = subprocess.Popen(
        [sys.executable, "-c", "from leadgen.cli.sandbox import sandbox; sandbox()", "up",
         "--json", "--dir", str(tmp_path / "sb")],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env={**os.environ})
    try:
        line = process.stdout.readline()
        data = json.loads(line)
        assert EXPECTED_ENV <= set(data["env"])
        port = int(data["env"]["SMTP_PORT"])
        with smtplib.SMTP("127.0.0.1", port, timeout=5) as conn:
            assert conn.noop()[0] == 250
    finally:
        process.send_signal(signal.SIGINT)
        process.wait(timeout=20)
    assert process.returncode == 0, process.stderr.read()

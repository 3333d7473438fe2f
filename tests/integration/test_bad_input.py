"""Bad input gets a clear status and the work goes on: malformed SERP payloads through the real
poll → ingest path, hostile HTML in the extractor, a bad configuration value."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import timedelta

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from leadgen.enrich.extract import analyse_page, extract_emails
from leadgen.enrich.fetch import decode_html
from leadgen.models import SerpOperation, SerpQuery
from leadgen.sandbox import yandex as yandex_emulator
from leadgen.search.poll import poll_due
from leadgen.search.submit import submit_due
from leadgen.serp.ingest import ingest_operation
from tests.integration.test_search_flow import seed_queries, tools, yandex  # noqa: F401


def _submit_and_poll(session: Session):  # noqa: ANN202
    due = seed_queries(session, 1, prefix="плохой ответ")
    settings, client, limiter = tools()
    assert [o.outcome for o in submit_due(session, settings, client, limiter, now=due)] == \
        ["submitted"]
    return poll_due(session, settings, client, limiter, now=due + timedelta(seconds=1))


def test_malformed_xml_fails_the_operation_and_the_query_retries(session, yandex,  # noqa: F811
                                                                  monkeypatch) -> None:
    monkeypatch.setattr(yandex["emulator"], "_render",
                        lambda op: '<?xml version="1.0"?><yandexsearch><response><results>'
                                   '<grouping><group><doc><url>http://a.ru/</url>')
    polled = _submit_and_poll(session)
    assert [p.outcome for p in polled] == ["fetched"]
    result = ingest_operation(session, polled[0].operation_pk)
    session.commit()
    session.expire_all()
    op = session.get(SerpOperation, polled[0].operation_pk)
    query = session.get(SerpQuery, op.query_id)
    assert result.outcome == "failed" and result.company_ids == []
    assert op.status == "failed" and "unparseable" in op.error
    # the query goes back for another attempt (it was marked completed at fetch time)
    assert (query.status, query.attempts) == ("pending", 1)
    assert "unparseable" in query.last_error


def test_bad_base64_fails_the_operation_and_the_query_retries(session, yandex,  # noqa: F811
                                                              monkeypatch) -> None:
    envelope = yandex_emulator.Operation.envelope

    def broken(self, now):  # noqa: ANN001, ANN202
        body = envelope(self, now)
        if "response" in body:
            body["response"]["rawData"] = "PD94bWwg!!not*base64"
        return body

    monkeypatch.setattr(yandex_emulator.Operation, "envelope", broken)
    polled = _submit_and_poll(session)
    assert [(p.outcome, p.query_outcome) for p in polled] == [("failed", "retry")]
    session.expire_all()
    op = session.scalars(select(SerpOperation)).one()
    query = session.get(SerpQuery, op.query_id)
    assert op.status == "failed" and "base64" in op.error
    assert (query.status, query.attempts) == ("pending", 1) and "base64" in query.last_error


@pytest.mark.parametrize("name,html", [
    ("deeply nested", "<div>" * 20_000 + "info@deep-firm.ru" + "</div>" * 20_000),
    ("5 MB", "<html><body>" + "<p>текст без адресов</p>" * 200_000
     + "<a href='mailto:info@big-firm.ru'>почта</a></body></html>"),
    ("NUL bytes", "<html>\x00<body>\x00<p>Пишите: info@nul-firm.ru\x00</p>\x00</body></html>"),
    ("unclosed tags and junk", "<html><body><a href='mailto:%zz%info@junk-firm.ru'><script>"
     "<p>sales@junk-firm.ru <<<>>> &#xFFFFFFFF; &#0; <![CDATA[ ]]"),
])
def test_hostile_html_is_survived(name: str, html: str) -> None:
    domain = html.split("@", 1)[1].split(".ru")[0] + ".ru"
    emails = [c.email for c in extract_emails(html, f"https://{domain}/", domain)]
    assert any(e.endswith("@" + domain) for e in emails), (name, emails)
    page = analyse_page(html, f"https://{domain}/", domain)
    assert "\x00" not in (page.text if hasattr(page, "text") else "")


def test_invalid_utf8_is_decoded_not_fatal() -> None:
    body = ("<html><body>Контакты: info@firma.ru ".encode() + b"\xff\xfe\xc3\x28 \xe2\x82"
            + "Москва</body></html>".encode("cp1251"))
    text, _charset = decode_html(body, "text/html; charset=utf-8")
    assert "info@firma.ru" in text and "\x00" not in text
    assert [c.email for c in extract_emails(text, "https://firma.ru/", "firma.ru")] == \
        ["info@firma.ru"]
    binary = b"PK\x03\x04" + bytes(range(256)) * 100
    text, _ = decode_html(binary, "application/octet-stream")
    assert extract_emails(text, "https://firma.ru/", "firma.ru") == []


def _with(**env: str) -> dict[str, str]:
    return {**os.environ, "DATABASE_URL": "", "CELERY_BROKER_URL": "", **env}


def test_bad_config_value_names_the_variable(tmp_path) -> None:
    check = subprocess.run([sys.executable, "-m", "leadgen", "config", "check"],
                           env=_with(YANDEX_RPS="abc"), cwd=tmp_path, capture_output=True,
                           text=True, timeout=60)
    assert check.returncode == 2
    assert "YANDEX_RPS" in check.stderr and "Traceback" not in check.stderr
    good = subprocess.run([sys.executable, "-m", "leadgen", "config", "check"],
                          env=_with(YANDEX_RPS="5"), cwd=tmp_path, capture_output=True,
                          text=True, timeout=60)
    assert good.returncode == 0, good.stderr


def test_worker_with_a_bad_config_value_exits_naming_it(tmp_path) -> None:
    worker = subprocess.run(
        [sys.executable, "-m", "celery", "-A", "leadgen", "worker", "-Q", "search",
         "--loglevel=WARNING"],
        env=_with(YANDEX_RPS="abc", CELERY_BROKER_URL="redis://127.0.0.1:1/0"), cwd=tmp_path,
        capture_output=True, text=True, timeout=60)
    assert worker.returncode != 0
    assert "YANDEX_RPS" in worker.stderr + worker.stdout

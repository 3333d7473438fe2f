"""OpenAI emulator driven by the official `openai` client (chat.completions + responses)."""

from __future__ import annotations

import json
from collections.abc import Iterator

import openai
import pytest
from pydantic import BaseModel

from leadgen.sandbox.faults import Faults
from leadgen.sandbox.openai_api import OpenAIEmulator

KEY = "sk-sandbox-test"
SCHEMA = {"type": "object", "properties": {"subject": {"type": "string"},
                                           "body": {"type": "string"}},
          "required": ["subject", "body"], "additionalProperties": False}
FORMAT = {"type": "json_schema", "json_schema": {"name": "first_email", "strict": True,
                                                 "schema": SCHEMA}}


def messages(name: str = "Улыбка Плюс", city: str = "Казань") -> list[dict[str, str]]:
    system = ('You write one short first email. "body": plain text of 300-1200 characters. '
              'Answer only with {"subject": "...", "body": "..."}.')
    offer = {"sender_name": "Анна Смирнова", "sender_company": "Агентство Песочница",
             "offer": "настраиваем онлайн-запись и напоминания клиентам",
             "signature": "Анна Смирнова\nАгентство Песочница"}
    company = {"name": name, "domain": "ulybka-plus.ru", "niche": "стоматология", "city": city}
    user = ("OFFER:\n" + json.dumps(offer, ensure_ascii=False) + "\n\nCOMPANY:\n"
            + json.dumps(company, ensure_ascii=False)
            + "\n\n<<<WEBSITE_EXCERPT\nЛечим зубы без боли и очередей уже двадцать лет. "
              "Пишите на info@ulybka-plus.ru.\nWEBSITE_EXCERPT>>>")
    return [{"role": "system", "content": system}, {"role": "user", "content": user}]


def start(faults: Faults | None = None) -> OpenAIEmulator:
    emulator = OpenAIEmulator({KEY}, faults=faults)
    emulator.start()
    return emulator


@pytest.fixture
def api() -> Iterator[OpenAIEmulator]:
    emulator = start()
    yield emulator
    emulator.stop()


def client(emulator: OpenAIEmulator, key: str = KEY) -> openai.OpenAI:
    return openai.OpenAI(base_url=emulator.base_url, api_key=key, max_retries=0, timeout=10)


def test_structured_output_is_valid_russian_and_deterministic(api: OpenAIEmulator) -> None:
    c = client(api)
    first = c.chat.completions.create(model="gpt-4.1-mini", messages=messages(),
                                      response_format=FORMAT)
    data = json.loads(first.choices[0].message.content)
    assert set(data) == {"subject", "body"}
    assert "\n" not in data["subject"] and 3 <= len(data["subject"]) <= 80
    body = data["body"]
    assert 300 <= len(body) <= 1200
    assert body.split("\n\n")[0].startswith(("Здравствуйте", "Добрый день"))
    assert "Улыбка Плюс" in body and "стоматология" in body and "Казань" in body
    assert "Лечим зубы без боли и очередей уже двадцать лет" in body
    assert body.endswith("Анна Смирнова\nАгентство Песочница")
    assert "info@" not in body and "http" not in body
    assert first.id.startswith("chatcmpl-") and first.model == "gpt-4.1-mini"
    assert first.choices[0].finish_reason == "stop"
    usage = first.usage
    assert usage.total_tokens == usage.prompt_tokens + usage.completion_tokens
    assert abs(usage.completion_tokens - len(first.choices[0].message.content) / 4) <= 1
    again = c.chat.completions.create(model="gpt-4.1-mini", messages=messages(),
                                      response_format=FORMAT)
    assert again.choices[0].message.content == first.choices[0].message.content
    other = c.chat.completions.create(model="gpt-4.1-mini", messages=messages("Жемчуг", "Уфа"),
                                      response_format=FORMAT)
    assert "Жемчуг" in json.loads(other.choices[0].message.content)["body"]


def test_parse_with_a_pydantic_model(api: OpenAIEmulator) -> None:
    class Email(BaseModel):
        subject: str
        body: str

    parsed = client(api).chat.completions.parse(model="gpt-4.1-mini", messages=messages(),
                                                response_format=Email)
    assert isinstance(parsed.choices[0].message.parsed, Email)
    request = api.completions[-1]["request"]["response_format"]
    assert request["json_schema"]["strict"] is True


def test_generic_nested_schema_is_filled(api: OpenAIEmulator) -> None:
    class Contact(BaseModel):
        email: str
        score: int

    class Lead(BaseModel):
        company: str
        is_b2b: bool
        tags: list[str]
        contact: Contact
        note: str | None

    parsed = client(api).chat.completions.parse(model="m", messages=messages(),
                                                response_format=Lead).choices[0].message.parsed
    assert parsed.company == "Улыбка Плюс" and parsed.is_b2b is True
    assert isinstance(parsed.contact.score, int) and parsed.tags


def test_responses_api(api: OpenAIEmulator) -> None:
    response = client(api).responses.create(
        model="gpt-4.1-mini", input=messages(),
        text={"format": {"type": "json_schema", "name": "first_email", "strict": True,
                         "schema": SCHEMA}})
    data = json.loads(response.output_text)
    assert set(data) == {"subject", "body"} and response.status == "completed"
    assert response.usage.total_tokens > 0


@pytest.mark.parametrize("schema", [
    {"type": "object", "properties": {"subject": {"type": "string"}}, "required": ["subject"]},
    {"type": "object", "properties": {"a": {"type": "string"}, "b": {"type": "string"}},
     "required": ["a"], "additionalProperties": False},
    {"type": "array", "items": {"type": "string"}},
])
def test_non_strict_schemas_are_rejected(api: OpenAIEmulator, schema: dict) -> None:
    with pytest.raises(openai.BadRequestError) as error:
        client(api).chat.completions.create(
            model="m", messages=messages(),
            response_format={"type": "json_schema",
                             "json_schema": {"name": "x", "strict": True, "schema": schema}})
    assert "Invalid schema" in error.value.message and error.value.param == "response_format"


def test_request_errors(api: OpenAIEmulator) -> None:
    with pytest.raises(openai.AuthenticationError) as error:
        client(api, "sk-wrong-key-000").chat.completions.create(model="m", messages=messages())
    assert error.value.code == "invalid_api_key"
    with pytest.raises(openai.BadRequestError):
        client(api).chat.completions.create(model="m", messages=messages(),
                                            extra_body={"surprise": 1})
    with pytest.raises(openai.BadRequestError):
        client(api).chat.completions.create(model="m", messages=[])
    with pytest.raises(openai.BadRequestError):
        client(api).chat.completions.create(
            model="m", messages=messages(),
            response_format={"type": "json_schema",
                             "json_schema": {"name": "bad name!", "schema": SCHEMA}})


def test_length_limit_truncates(api: OpenAIEmulator) -> None:
    result = client(api).chat.completions.create(model="m", messages=messages(),
                                                 response_format=FORMAT, max_completion_tokens=20)
    assert result.choices[0].finish_reason == "length"
    with pytest.raises(json.JSONDecodeError):
        json.loads(result.choices[0].message.content)


@pytest.mark.parametrize("status, exc", [("429", openai.RateLimitError),
                                         ("500", openai.InternalServerError)])
def test_http_faults(status: str, exc: type) -> None:
    emulator = start(Faults.from_dict({"openai": {status: 1.0}}))
    try:
        with pytest.raises(exc) as error:
            client(emulator).chat.completions.create(model="m", messages=messages(),
                                                     response_format=FORMAT)
        if status == "429":
            assert float(error.value.response.headers["retry-after-ms"]) > 0
    finally:
        emulator.stop()


@pytest.mark.parametrize("fault", ["invalid_json", "schema_break", "crlf_subject", "long_output"])
def test_content_faults(fault: str) -> None:
    emulator = start(Faults.from_dict({"openai": {fault: 1.0}}))
    try:
        content = client(emulator).chat.completions.create(
            model="m", messages=messages(), response_format=FORMAT).choices[0].message.content
    finally:
        emulator.stop()
    if fault == "invalid_json":
        with pytest.raises(json.JSONDecodeError):
            json.loads(content)
        return
    data = json.loads(content)
    if fault == "schema_break":
        assert set(data) != {"subject", "body"}
    elif fault == "crlf_subject":
        assert "\r\n" in data["subject"]
    else:
        assert len(data["body"]) > 10_000


def test_fault_rate_is_partial_and_seeded() -> None:
    def run(seed: int) -> list[bool]:
        emulator = start(Faults.from_dict({"seed": seed, "openai": {"invalid_json": 0.5}}))
        c = client(emulator)
        outcomes = []
        try:
            for _ in range(12):
                content = c.chat.completions.create(model="m", messages=messages(),
                                                    response_format=FORMAT).choices[0].message.content
                try:
                    json.loads(content)
                    outcomes.append(True)
                except json.JSONDecodeError:
                    outcomes.append(False)
        finally:
            emulator.stop()
        return outcomes

    first = run(1)
    assert first == run(1) and True in first and False in first

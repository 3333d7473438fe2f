"""OpenAI emulator: `/v1/chat/completions` (and `/v1/responses`) with strict JSON-schema output.

The "model" writes a deterministic Russian first email from the company brief it finds in the
messages (JSON documents or `Label: value` lines, the excerpt between markers), so the same
prompt always gives the same answer. Faults: 429/500, invalid JSON, schema-breaking JSON,
CR/LF in the subject, an overlong body.
"""

from __future__ import annotations

import hashlib
import json
import math
import random
import re
import secrets
import time
from dataclasses import dataclass, field
from typing import Any

from leadgen.sandbox.faults import Faults
from leadgen.sandbox.http import BadRequest, JsonServer, Request, Response

CHAT_PARAMS = {
    "model", "messages", "response_format", "temperature", "top_p", "n", "max_tokens",
    "max_completion_tokens", "stream", "stream_options", "stop", "seed", "user", "metadata",
    "frequency_penalty", "presence_penalty", "logprobs", "top_logprobs", "logit_bias", "tools",
    "tool_choice", "parallel_tool_calls", "store", "service_tier", "reasoning_effort",
    "modalities", "prediction", "audio", "web_search_options", "prompt_cache_key",
    "safety_identifier", "verbosity", "prompt_cache_retention",
}
RESPONSES_PARAMS = {
    "model", "input", "instructions", "text", "temperature", "top_p", "max_output_tokens",
    "metadata", "store", "user", "stream", "previous_response_id", "reasoning", "tools",
    "tool_choice", "parallel_tool_calls", "truncation", "service_tier", "include",
    "prompt_cache_key", "safety_identifier", "background",
}
ROLES = {"system", "developer", "user", "assistant", "tool"}
CONTENT_FAULTS = ["invalid_json", "schema_break", "crlf_subject", "long_output"]
_SCHEMA_NAME = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")


def openai_error(status: int, message: str, *, type_: str | None = None,
                 code: str | None = None, param: str | None = None) -> Response:
    kinds = {400: "invalid_request_error", 401: "invalid_request_error", 404: "invalid_request_error",
             429: "requests", 500: "server_error", 503: "server_error"}
    codes = {429: "rate_limit_exceeded"}
    if message == "injected fault":
        message = {429: "Rate limit reached for requests. Please try again shortly.",
                   500: "The server had an error while processing your request. Sorry about that!",
                   503: "The engine is currently overloaded, please try again later."}.get(
            status, "The server had an error while processing your request.")
    body = {"error": {"message": message, "type": type_ or kinds.get(status, "server_error"),
                      "param": param, "code": code if code is not None else codes.get(status)}}
    headers = {"x-request-id": "req_" + secrets.token_hex(16)}
    if status == 429:
        headers["retry-after-ms"] = "200"
        headers["x-ratelimit-remaining-requests"] = "0"
    return Response(status, body, headers)


# --- the brief --------------------------------------------------------------------------------
@dataclass
class Brief:
    name: str = ""
    domain: str = ""
    niche: str = ""
    city: str = ""
    excerpt: str = ""
    signature: str = ""
    sender_name: str = ""
    sender_company: str = ""
    sender_role: str = ""
    offer: str = ""
    value: str = ""
    call_to_action: str = ""
    body_range: tuple[int, int] = (450, 900)
    extra: dict[str, str] = field(default_factory=dict)


_KEYS = {
    "name": ("name", "company", "company_name", "компания", "название"),
    "domain": ("domain", "site", "website", "сайт", "домен"),
    "niche": ("niche", "ниша", "industry", "сфера"),
    "city": ("city", "город"),
    "excerpt": ("excerpt", "homepage_excerpt", "website_excerpt", "фрагмент"),
    "signature": ("signature", "подпись"),
    "sender_name": ("sender_name",),
    "sender_company": ("sender_company",),
    "sender_role": ("sender_role",),
    "offer": ("offer", "предложение"),
    "value": ("value",),
    "call_to_action": ("call_to_action", "cta"),
}


def _json_documents(text: str) -> list[dict[str, Any]]:
    decoder, docs, index = json.JSONDecoder(), [], 0
    while (index := text.find("{", index)) != -1:
        try:
            value, end = decoder.raw_decode(text, index)
        except json.JSONDecodeError:
            index += 1
            continue
        if isinstance(value, dict):
            docs.append(value)
        index = end
    return docs


def extract_brief(texts: list[str]) -> Brief:
    brief = Brief()
    joined = "\n\n".join(texts)
    found: dict[str, str] = {}
    for doc in _json_documents(joined):
        for key, value in doc.items():
            if isinstance(value, (str, int, float)) and str(value).strip():
                found.setdefault(str(key).lower(), str(value).strip())
    for match in re.finditer(r"(?im)^[ \t\-*]*([A-Za-zА-Яа-яЁё_ ]{2,30})\s*[:=]\s*(\S.*)$", joined):
        if not match.group(2).lstrip().startswith(("{", "[")):
            found.setdefault(match.group(1).strip().lower().replace(" ", "_"), match.group(2).strip())
    for attr, keys in _KEYS.items():
        for key in keys:
            if found.get(key):
                setattr(brief, attr, found[key])
                break
    markers = re.search(r"<<<\s*[A-Z_]*EXCERPT[A-Z_]*\s*\n(.*?)\n\s*[A-Z_]*EXCERPT[A-Z_]*\s*>>>",
                        joined, re.S)
    if markers:
        brief.excerpt = markers.group(1).strip()
    limits = re.search(r"(?i)body[^\n]{0,80}?(\d{2,5})\s*[-–]\s*(\d{2,5})\s*(characters|chars|символ)",
                       joined)
    if limits:
        low, high = int(limits.group(1)), int(limits.group(2))
        if 0 < low < high:
            brief.body_range = (low, high)
    return brief


def _phrase(excerpt: str, rng: random.Random) -> str:
    """A clean sentence of the excerpt worth quoting (no links, addresses, digits soup)."""
    candidates = []
    for sentence in re.split(r"(?<=[.!?…])\s+|\n+", excerpt):
        sentence = sentence.strip(" \t«»\"'—-•|")
        words = sentence.split()
        if 4 <= len(words) <= 14 and not re.search(r"https?:|www\.|@|\.[a-z]{2,4}\b|[<>{}\[\]]",
                                                      sentence, re.I) \
                and sum(ch.isdigit() for ch in sentence) <= 4 \
                and re.search(r"[А-Яа-яЁё]", sentence):
            candidates.append(sentence.rstrip(".!?…"))
    return rng.choice(candidates) if candidates else ""


FILLERS = [
    "Мы работаем аккуратно и без долгих согласований: сначала короткий разбор задачи, потом "
    "понятный план и оценка.",
    "Первую консультацию проводим бесплатно, а по её итогам вы сами решите, есть ли смысл "
    "продолжать.",
    "Подстроимся под ваш график и начнём с самого простого шага, чтобы результат был виден быстро.",
    "Если сейчас это не ко времени, просто ответьте на письмо, и я больше не буду беспокоить.",
]


def write_email(brief: Brief, rng: random.Random) -> tuple[str, str]:
    name = brief.name if brief.name and len(brief.name) <= 60 else ""
    quoted = name if any(mark in name for mark in "«»\"") else f"«{name}»"  # ООО «Ромашка»
    niche = brief.niche.lower() or "ваше направление"
    city = brief.city
    where = f" в городе {city}" if city else ""
    subject = rng.choice([
        f"{name}: идея для направления «{niche}»" if name else f"Идея для направления «{niche}»",
        f"Вопрос по работе{where}" if city else "Короткий вопрос о сотрудничестве",
        f"Предложение для {name}" if name else f"Предложение для компании из сферы «{niche}»",
    ])[:78].strip()
    greeting = rng.choice(["Здравствуйте!", "Добрый день!",
                           f"Здравствуйте, команда {quoted}!" if name else "Добрый день, коллеги!"])
    intro = []
    if brief.sender_name:
        who = f"Меня зовут {brief.sender_name}"
        if brief.sender_role and brief.sender_company:
            who += f", я {brief.sender_role.lower()} в компании {brief.sender_company}"
        elif brief.sender_company:
            who += f", я представляю компанию {brief.sender_company}"
        intro.append(who + ".")
    phrase = _phrase(brief.excerpt, rng)
    look = f"Посмотрел, чем занимается {quoted if name else 'ваша компания'}: " \
           f"{niche}{where}."
    if phrase:
        look += f" Особенно зацепила фраза «{phrase}»."
    intro.append(look)
    offer = brief.offer.rstrip(".") if brief.offer else \
        "помогаем небольшим компаниям автоматизировать рутину и получать больше заявок"
    middle = f"Коротко о том, что мы предлагаем: {offer[0].lower() + offer[1:]}."
    if brief.value:
        middle += " " + brief.value.rstrip(".") + "."
    cta = brief.call_to_action.rstrip(".?") if brief.call_to_action else \
        "Если тема интересна, давайте созвонимся на 15 минут на этой неделе"
    closing = cta + ("?" if not brief.call_to_action else ".")
    paragraphs = [" ".join(intro), middle, closing]
    low, high = brief.body_range
    fillers = FILLERS[:]
    rng.shuffle(fillers)

    def compose() -> str:
        parts = [greeting, *paragraphs]
        if brief.signature:
            parts.append(brief.signature)
        return "\n\n".join(parts)

    body = compose()
    while len(body) < low + 40 and fillers:
        paragraphs[1] += " " + fillers.pop()
        body = compose()
    if len(body) > high and phrase:
        paragraphs[0] = paragraphs[0].replace(f" Особенно зацепила фраза «{phrase}».", "")
        body = compose()
    return subject, body


# --- schema handling --------------------------------------------------------------------------
def check_strict_schema(name: str, schema: Any) -> None:
    """The strict-mode rules the real API enforces before generating anything."""
    def fail(context: str, message: str) -> None:
        raise BadRequest(400, f"Invalid schema for response_format '{name}': In context="
                              f"({context}), {message}", param="response_format")

    if not isinstance(schema, dict) or schema.get("type") != "object":
        fail("", "schema must be a JSON Schema of 'type: \"object\"'")

    def walk(node: Any, context: str, depth: int) -> None:
        if depth > 10:
            fail(context, "schema exceeds the maximum nesting depth of 10")
        if not isinstance(node, dict):
            return
        for keyword in ("allOf", "not", "if", "then", "else", "dependentRequired",
                        "dependentSchemas"):
            if keyword in node:
                fail(context, f"'{keyword}' is not permitted")
        types = node.get("type")
        if types == "object" or (isinstance(types, list) and "object" in types):
            props = node.get("properties", {})
            if node.get("additionalProperties") is not False:
                fail(context, "'additionalProperties' is required to be supplied and to be false")
            missing = [key for key in props if key not in (node.get("required") or [])]
            if missing:
                fail(context, "'required' is required to be supplied and to be an array including "
                              f"every key in properties. Missing '{missing[0]}'")
            for key, sub in props.items():
                walk(sub, f"{context}, 'properties', '{key}'".lstrip(", "), depth + 1)
        if "items" in node:
            walk(node["items"], f"{context}, 'items'".lstrip(", "), depth + 1)
        for keyword in ("anyOf", "oneOf"):
            for index, sub in enumerate(node.get(keyword, [])):
                walk(sub, f"{context}, '{keyword}', '{index}'".lstrip(", "), depth + 1)
        for defs in ("$defs", "definitions"):
            for key, sub in (node.get(defs) or {}).items():
                walk(sub, f"{context}, '{defs}', '{key}'".lstrip(", "), depth + 1)

    walk(schema, "", 0)


def fill_schema(schema: dict[str, Any], brief: Brief, rng: random.Random) -> Any:
    """A value valid for the schema; string properties get the email text by their names."""
    subject, body = write_email(brief, rng)
    root = schema

    def resolve(node: dict[str, Any]) -> dict[str, Any]:
        ref = node.get("$ref")
        if isinstance(ref, str) and ref.startswith("#/"):
            target: Any = root
            for part in ref[2:].split("/"):
                target = target[part]
            return resolve(target)
        return node

    def text_for(prop: str, node: dict[str, Any]) -> str:
        key = prop.lower()
        if "subject" in key or "title" in key or "тема" in key:
            value = subject
        elif any(word in key for word in ("body", "text", "content", "message", "email", "letter")):
            value = body
        elif "company" in key or key == "name":
            value = brief.name or "Компания"
        elif "city" in key:
            value = brief.city or "Москва"
        elif "niche" in key:
            value = brief.niche or "услуги"
        elif "lang" in key:
            value = "ru"
        else:
            value = f"{brief.niche or 'услуги'} {brief.city}".strip()
        if node.get("enum"):
            value = rng.choice(node["enum"])
        low, high = node.get("minLength", 0), node.get("maxLength")
        if len(value) < low:
            value = (value + " ") * (low // max(len(value), 1) + 1)
        return value[:high].strip() if high else value

    def fill(node: Any, prop: str) -> Any:
        if not isinstance(node, dict):
            return None
        node = resolve(node)
        for keyword in ("anyOf", "oneOf"):
            if keyword in node:
                options = [resolve(o) for o in node[keyword]]
                chosen = next((o for o in options if o.get("type") != "null"), options[0])
                return fill(chosen, prop)
        if "const" in node:
            return node["const"]
        if node.get("enum") and node.get("type") != "string":
            return node["enum"][0]
        kind = node.get("type", "string")
        if isinstance(kind, list):
            kind = next((k for k in kind if k != "null"), "null")
        if kind == "object":
            return {key: fill(sub, key) for key, sub in (node.get("properties") or {}).items()}
        if kind == "array":
            count = max(int(node.get("minItems", 1)), 1)
            return [fill(node.get("items", {}), prop) for _ in range(count)]
        if kind == "integer":
            return int(node.get("minimum", 1))
        if kind == "number":
            return float(node.get("minimum", 1))
        if kind == "boolean":
            return True
        if kind == "null":
            return None
        return text_for(prop, node)

    return fill(schema, "")


def _break(value: dict[str, Any], kind: str, rng: random.Random) -> str:
    """The JSON text of a faulty answer."""
    if kind == "invalid_json":
        text = json.dumps(value, ensure_ascii=False)
        return text[: max(len(text) // 2, 1)]
    if kind == "schema_break":
        broken = dict(value)
        if broken:
            first = next(iter(broken))
            broken["note"] = broken.pop(first)
        broken["extra"] = 1
        return json.dumps(broken, ensure_ascii=False)
    if kind == "crlf_subject":
        broken = dict(value)
        key = next((k for k in broken if "subject" in k.lower() or "title" in k.lower()),
                   next((k for k, v in broken.items() if isinstance(v, str)), None))
        if key is not None:
            broken[key] = f"{broken[key]}\r\nBcc: everyone@example.com"
        return json.dumps(broken, ensure_ascii=False)
    broken = dict(value)  # long_output
    key = next((k for k in broken if "body" in k.lower()),
               next((k for k, v in broken.items() if isinstance(v, str)), None))
    if key is not None:
        broken[key] = "\n\n".join([str(broken[key])] * max(2, 20_000 // max(len(str(broken[key])), 1)))
    return json.dumps(broken, ensure_ascii=False)


def _tokens(text: str) -> int:
    return max(1, math.ceil(len(text) / 4))


def _message_texts(messages: list[dict[str, Any]]) -> list[str]:
    texts = []
    for message in messages:
        content = message.get("content")
        if isinstance(content, str):
            texts.append(content)
        elif isinstance(content, list):
            texts.extend(str(part.get("text", "")) for part in content if isinstance(part, dict))
    return texts


class OpenAIEmulator:
    def __init__(self, api_keys: set[str] | None = None, *, faults: Faults | None = None,
                 latency_ms: float = 0.0) -> None:
        self.api_keys = api_keys or {"sk-sandbox-" + secrets.token_hex(12)}
        self.faults = faults or Faults()
        self.completions: list[dict[str, Any]] = []  # every answered request and what we said
        self.server = JsonServer("openai", faults=self.faults, latency_s=latency_ms / 1000,
                                 error_formatter=openai_error)
        self.server.add_route("POST", r"/v1/chat/completions", self.chat_completions,
                              name="chat.completions")
        self.server.add_route("POST", r"/v1/responses", self.responses, name="responses")

    @property
    def api_key(self) -> str:
        return next(iter(self.api_keys))

    @property
    def base_url(self) -> str:
        return self.server.url + "/v1"

    def start(self) -> int:
        return self.server.start()

    def stop(self) -> None:
        self.server.stop()

    # --- plumbing -----------------------------------------------------------------------------
    def _auth(self, request: Request) -> None:
        scheme, _, key = request.authorization.partition(" ")
        if scheme.lower() != "bearer" or not key.strip():
            raise BadRequest(401, "You didn't provide an API key. You need to provide your API key "
                                  "in an Authorization header using Bearer auth.")
        if key.strip() not in self.api_keys:
            masked = key.strip()[:3] + "*" * 4 + key.strip()[-4:]
            raise BadRequest(401, f"Incorrect API key provided: {masked}. You can find your API "
                                  "key at https://platform.openai.com/account/api-keys.",
                             code="invalid_api_key")

    @staticmethod
    def _body(request: Request, allowed: set[str]) -> dict[str, Any]:
        body = request.json()
        if not isinstance(body, dict):
            raise BadRequest(400, "We could not parse the JSON body of your request.")
        unknown = sorted(set(body) - allowed)
        if unknown:
            raise BadRequest(400, f"Unrecognized request argument supplied: {unknown[0]}")
        if not isinstance(body.get("model"), str) or not body["model"]:
            raise BadRequest(400, "you must provide a model parameter")
        if body.get("stream"):
            raise BadRequest(400, "stream=true is not supported by the sandbox")
        return body

    def _generate(self, model: str, texts: list[str], schema: dict[str, Any] | None,
                  mode: str, salt: int = 0) -> tuple[str, dict[str, Any] | None]:
        digest = hashlib.sha256(json.dumps([model, texts, schema, salt], ensure_ascii=False,
                                           sort_keys=True).encode()).digest()
        rng = random.Random(digest)
        brief = extract_brief(texts)
        if mode == "text":
            subject, body = write_email(brief, rng)
            return f"{subject}\n\n{body}", None
        value = fill_schema(schema, brief, rng) if schema else \
            dict(zip(("subject", "body"), write_email(brief, rng)))
        fault = self.faults.choose("openai", CONTENT_FAULTS)
        if fault:
            return _break(value, fault, rng), value
        return json.dumps(value, ensure_ascii=False), value

    @staticmethod
    def _headers(started: float) -> dict[str, str]:
        return {"x-request-id": "req_" + secrets.token_hex(16),
                "openai-processing-ms": str(int((time.time() - started) * 1000)),
                "x-ratelimit-limit-requests": "10000", "x-ratelimit-remaining-requests": "9999",
                "x-ratelimit-limit-tokens": "2000000", "x-ratelimit-remaining-tokens": "1999000",
                "x-ratelimit-reset-requests": "6ms", "x-ratelimit-reset-tokens": "30ms"}

    # --- endpoints ----------------------------------------------------------------------------
    def chat_completions(self, request: Request) -> Response:
        started = time.time()
        self._auth(request)
        body = self._body(request, CHAT_PARAMS)
        messages = body.get("messages")
        if not isinstance(messages, list) or not messages:
            raise BadRequest(400, "[] is too short - 'messages'", param="messages")
        for index, message in enumerate(messages):
            if not isinstance(message, dict) or message.get("role") not in ROLES:
                raise BadRequest(400, f"Invalid value for 'messages[{index}].role'",
                                 param=f"messages[{index}].role")
        schema, mode = self._response_format(body.get("response_format"))
        texts = _message_texts(messages)
        n = int(body.get("n") or 1)
        limit = body.get("max_completion_tokens") or body.get("max_tokens")
        choices, completion_tokens = [], 0
        for index in range(max(1, min(n, 8))):
            content, _ = self._generate(body["model"], texts, schema, mode, index)
            finish = "stop"
            if limit and _tokens(content) > int(limit):
                content, finish = content[: int(limit) * 4], "length"
            completion_tokens += _tokens(content)
            choices.append({"index": index, "message": {"role": "assistant", "content": content,
                                                        "refusal": None, "annotations": []},
                            "finish_reason": finish, "logprobs": None})
        prompt_tokens = _tokens("".join(texts)) + 3 * len(messages)
        result = {
            "id": "chatcmpl-" + secrets.token_urlsafe(22).replace("-", "x").replace("_", "y"),
            "object": "chat.completion", "created": int(time.time()), "model": body["model"],
            "choices": choices,
            "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
                      "total_tokens": prompt_tokens + completion_tokens,
                      "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
                      "completion_tokens_details": {"reasoning_tokens": 0, "audio_tokens": 0,
                                                    "accepted_prediction_tokens": 0,
                                                    "rejected_prediction_tokens": 0}},
            "service_tier": "default", "system_fingerprint": "fp_sandbox",
        }
        self.completions.append({"request": body, "response": result})
        return Response(200, result, self._headers(started))

    @staticmethod
    def _response_format(spec: Any) -> tuple[dict[str, Any] | None, str]:
        if spec is None:
            return None, "text"
        if not isinstance(spec, dict) or spec.get("type") not in ("text", "json_object",
                                                                   "json_schema"):
            raise BadRequest(400, "Invalid value for 'response_format.type'",
                             param="response_format")
        if spec["type"] == "text":
            return None, "text"
        if spec["type"] == "json_object":
            return None, "json"
        wrapper = spec.get("json_schema")
        if not isinstance(wrapper, dict):
            raise BadRequest(400, "Missing required parameter: 'response_format.json_schema'.",
                             param="response_format.json_schema")
        return OpenAIEmulator._schema(wrapper, "response_format.json_schema"), "json"

    @staticmethod
    def _schema(spec: dict[str, Any], where: str) -> dict[str, Any]:
        name = spec.get("name")
        if not isinstance(name, str) or not _SCHEMA_NAME.match(name):
            raise BadRequest(400, f"Invalid '{where}.name': must match ^[a-zA-Z0-9_-]+$ and be "
                                  "at most 64 characters.", param=f"{where}.name")
        schema = spec.get("schema")
        if not isinstance(schema, dict):
            raise BadRequest(400, f"Missing required parameter: '{where}.schema'.",
                             param=f"{where}.schema")
        if spec.get("strict"):
            check_strict_schema(name, schema)
        return schema

    def responses(self, request: Request) -> Response:
        started = time.time()
        self._auth(request)
        body = self._body(request, RESPONSES_PARAMS)
        source = body.get("input")
        if isinstance(source, str):
            texts = [source]
        elif isinstance(source, list) and source:
            texts = _message_texts([m for m in source if isinstance(m, dict)])
        else:
            raise BadRequest(400, "Missing required parameter: 'input'.", param="input")
        if isinstance(body.get("instructions"), str):
            texts.insert(0, body["instructions"])
        fmt = (body.get("text") or {}).get("format")
        schema, mode = None, "text"
        if isinstance(fmt, dict) and fmt.get("type") == "json_schema":
            schema, mode = self._schema(fmt, "text.format"), "json"
        elif isinstance(fmt, dict) and fmt.get("type") == "json_object":
            mode = "json"
        content, _ = self._generate(body["model"], texts, schema, mode)
        status, incomplete = "completed", None
        limit = body.get("max_output_tokens")
        if limit and _tokens(content) > int(limit):
            content, status = content[: int(limit) * 4], "incomplete"
            incomplete = {"reason": "max_output_tokens"}
        input_tokens, output_tokens = _tokens("".join(texts)), _tokens(content)
        result = {
            "id": "resp_" + secrets.token_hex(24), "object": "response",
            "created_at": int(time.time()), "status": status, "incomplete_details": incomplete,
            "error": None, "model": body["model"],
            "output": [{"type": "message", "id": "msg_" + secrets.token_hex(24),
                        "status": status, "role": "assistant",
                        "content": [{"type": "output_text", "text": content, "annotations": []}]}],
            "parallel_tool_calls": True, "tool_choice": "auto", "tools": [],
            "text": body.get("text") or {"format": {"type": "text"}},
            "usage": {"input_tokens": input_tokens, "output_tokens": output_tokens,
                      "total_tokens": input_tokens + output_tokens,
                      "input_tokens_details": {"cached_tokens": 0},
                      "output_tokens_details": {"reasoning_tokens": 0}},
        }
        self.completions.append({"request": body, "response": result})
        return Response(200, result, self._headers(started))

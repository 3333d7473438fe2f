"""What the first email is built from: the offer (who we are, what we sell) and the company."""

from __future__ import annotations

import dataclasses
import json
import re
import unicodedata
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from leadgen.config import ConfigError

# Russian text runs at roughly 3 characters per token with the o200k/cl100k tokenizers.
CHARS_PER_TOKEN = 3


@dataclass(frozen=True)
class OfferBrief:
    """The sender and the offer; loaded from OFFER_BRIEF_FILE (YAML or JSON)."""

    sender_name: str = "Алексей Смирнов"
    sender_company: str = ""
    sender_role: str = "специалист по автоматизации бизнес-процессов"
    offer: str = (
        "Я помогаю небольшим компаниям избавляться от ручной рутины: настраиваю автоматическую "
        "обработку заявок, отчёты и связки между сервисами, которыми команда уже пользуется"
    )
    value: str = (
        "Обычно это освобождает сотрудникам несколько часов в неделю и уменьшает число ошибок "
        "при ручном переносе данных"
    )
    call_to_action: str = (
        "Если тема вам близка, ответьте на это письмо: за 15 минут созвона подскажу, "
        "что можно упростить именно у вас"
    )
    signature: str = ""
    language: str = "ru"
    subject: str = "Идея, как сэкономить время на рутине"

    def __post_init__(self) -> None:
        if not self.signature:
            lines = ["С уважением,", self.sender_name, self.sender_role]
            if self.sender_company:
                lines.append(self.sender_company)
            object.__setattr__(self, "signature", "\n".join(line for line in lines if line))

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> OfferBrief:
        known = {field.name for field in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ConfigError(f"OFFER_BRIEF_FILE: unknown keys {unknown}; known: {sorted(known)}")
        values = {key: str(value).strip() for key, value in data.items() if value is not None}
        return cls(**values)


def load_offer(settings: Any) -> OfferBrief:
    """The offer from OFFER_BRIEF_FILE, or the built-in one for an automation freelancer."""
    path = getattr(settings, "offer_brief_file", "")
    if not path:
        return OfferBrief()
    file = Path(path)
    if not file.is_file():
        raise ConfigError(f"OFFER_BRIEF_FILE {path} is not a file")
    text = file.read_text(encoding="utf-8")
    try:
        data = json.loads(text) if file.suffix.lower() == ".json" else yaml.safe_load(text)
    except (json.JSONDecodeError, yaml.YAMLError) as exc:
        raise ConfigError(f"OFFER_BRIEF_FILE {path}: {exc}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"OFFER_BRIEF_FILE {path}: expected a mapping of fields")
    return OfferBrief.from_dict(data)


@dataclass(frozen=True)
class CompanyBrief:
    name: str
    domain: str
    niche: str | None
    city: str | None
    excerpt: str

    @classmethod
    def from_company(cls, company: Any, excerpt_tokens: int = 800) -> CompanyBrief:
        return cls(
            name=clean_text(company.name or company.domain, 200),
            domain=company.domain,
            niche=clean_text(company.niche, 200) or None,
            city=clean_text(company.city, 100) or None,
            excerpt=trim_excerpt(company.homepage_excerpt, excerpt_tokens * CHARS_PER_TOKEN),
        )


_SPACES = re.compile(r"\s+")


def clean_text(value: str | None, limit: int) -> str:
    """One line of printable text: control and format characters dropped, spaces collapsed."""
    if not value:
        return ""
    kept = "".join(
        " " if unicodedata.category(ch) in {"Cc", "Zl", "Zp"} else ch
        for ch in value
        if unicodedata.category(ch) != "Cf"
    )
    return _SPACES.sub(" ", kept).strip()[:limit]


def trim_excerpt(text: str | None, max_chars: int) -> str:
    """The excerpt cleaned and cut at a word boundary within `max_chars`."""
    flat = clean_text(text, max_chars + 200)
    if len(flat) <= max_chars:
        return flat
    cut = flat[:max_chars]
    space = cut.rfind(" ")
    if space > max_chars * 0.8:
        cut = cut[:space]
    return cut.rstrip(" ,.;:-") + " …"

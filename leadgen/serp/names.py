"""A sensible company name from a search result.

Order of preference: a legal name in the title or snippet («ООО "Ромашка"», ИП Иванов И.И.),
then the brand part of the title (not an SEO phrase), then the domain. `name_source` records
which (legal > title > domain); a later sighting only replaces a name with a better one.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass

from leadgen.serp.domains import display_domain

NAME_RANK = {"domain": 1, "title": 2, "legal": 3}
MAX_NAME = 120

_FULL_FORMS = [
    (r"общество\s+с\s+ограниченной\s+ответственностью", "ООО"),
    (r"открытое\s+акционерное\s+общество", "ОАО"),
    (r"закрытое\s+акционерное\s+общество", "ЗАО"),
    (r"публичное\s+акционерное\s+общество", "ПАО"),
    (r"непубличное\s+акционерное\s+общество", "АО"),
    (r"акционерное\s+общество", "АО"),
    (r"автономная\s+некоммерческая\s+организация", "АНО"),
    (r"товарищество\s+с\s+ограниченной\s+ответственностью", "ТОО"),
]
_FULL_FORMS_COMPILED = [(re.compile(p), short) for p, short in _FULL_FORMS]
_SHORT_FORMS = r"ООО|ОАО|ЗАО|ПАО|НАО|АО|ТОО|АНО|ОДО|ЧУП|LLC|Ltd\.?|LTD"
_FORM = "(?P<form>" + "|".join(p for p, _ in _FULL_FORMS) + "|" + _SHORT_FORMS + ")"
_QUOTED = (
    r"\s*(?:«(?P<g>[^«»]{1,80}(?:«[^«»]{1,80}»[^«»]{0,40})?)»"
    r"|\"(?P<q>[^\"]{1,80})\"|“(?P<c>[^“”]{1,80})”|„(?P<l>[^„“”]{1,80})[“”])"
)
# Every character re.IGNORECASE lets a legal form start with: a case-sensitive look-ahead on
# them lets the regex skip most positions without trying each form.
_FORM_STARTS = "LlАЗНОПТЧазноптчᲂᲄᲅ"
_LEGAL = re.compile(r"(?<![\w])(?=(?-i:[" + _FORM_STARTS + "]))" + _FORM + _QUOTED,
                    re.IGNORECASE)
# Cheap necessary conditions, checked before the (slow, case-insensitive) regexes: a legal
# form is followed by a quote, and its lower-cased text contains one of these fragments.
_FORM_FRAGMENTS = ("ао", "ооо", "щество", "организац", "тоо", "ано", "одо", "чуп", "llc", "ltd")
_QUOTE_OPENERS = ("«", '"', "“", "„")
# Characters `re.IGNORECASE` equates with a letter of those fragments although str.lower()
# does not (Cyrillic narrow/tall variants); with one present, the fragment check is skipped.
_CASE_ODD = re.compile("[\u1c80-\u1c88]")
_NAME = r"[А-ЯЁ][а-яё]+(?:-[А-ЯЁ][а-яё]+)?"
_IP = re.compile(
    r"(?<![\w])(?:ИП|[Ии]ндивидуальный\s+предприниматель)\s+(?P<fio>" + _NAME
    + r"(?:\s+[А-ЯЁ]\.\s?[А-ЯЁ]\.?|\s+" + _NAME + r"\s+[А-ЯЁ][а-яё]+(?:вич|вна|чна|ич|кызы|оглы))?)"
)

_SEPARATORS = re.compile(r"\s+[—–\-|•·/]\s+|\s*\|\s*|\s*::\s*|:\s+|\s+[—–]|[—–]\s+")
_SEO = re.compile(
    r"\b(?:купить|куплю|цен[аыуе]?|ценам|прайс\w*|недорог\w*|дешев\w*|дёшев\w*|заказ\w*|"
    r"стоимост\w*|услуг[аиу]?|официальн\w*|главн\w*|каталог\w*|доставк\w*|отзыв\w*|"
    r"рейтинг\w*|лучш\w*|скидк\w*|акци[яи]|рядом|круглосуточн\w*|под\s+ключ|в\s+наличии|"
    r"бесплатн\w*|руб\w*|топ|как|что|где|зачем|почему|своими|онлайн|вакансии|адрес\w*|"
    r"телефон\w*|контакт\w*|продаж\w*|сайт\w*|новост\w*|статьи|блог|форум|"
    r"home|homepage|prices?|buy|cheap|best|official|online|order)\b|\d{3,}|[₽№%!?]",
    re.IGNORECASE,
)
_IN_CITY = re.compile(r"(?:^|\s)(?:[вВ]о?\s+|г\.\s*)[А-ЯЁ]")  # "в Москве", "г. Казань"
_GENERIC = {
    "главная", "главная страница", "home", "о компании", "о нас", "контакты", "услуги",
    "каталог", "новости", "блог", "статьи", "сайт", "официальный сайт", "википедия",
    "wikipedia", "index", "untitled", "без названия", "страница не найдена", "404",
}
_LEADING = re.compile(r"^(?:официальный\s+сайт(?:\s+компании)?|сайт\s+компании)\s+", re.IGNORECASE)
_TRAIL_DOTS = re.compile(r"\s*(?:\.{2,}|…)\s*$")
_EDGE = re.compile(r"^[\s,.;:!|—–-]+|[\s,;:!|—–-]+$")
_QUOTES = "«»\"“”„"

_TRANSLIT = str.maketrans({
    "а": "a", "б": "b", "в": "v", "г": "g", "д": "d", "е": "e", "ё": "e", "ж": "zh", "з": "z",
    "и": "i", "й": "y", "к": "k", "л": "l", "м": "m", "н": "n", "о": "o", "п": "p", "р": "r",
    "с": "s", "т": "t", "у": "u", "ф": "f", "х": "kh", "ц": "ts", "ч": "ch", "ш": "sh",
    "щ": "shch", "ъ": "", "ы": "y", "ь": "", "э": "e", "ю": "yu", "я": "ya",
})
_SKELETON_SUBS = [("shch", "s"), ("sch", "s"), ("sh", "s"), ("ch", "c"), ("zh", "z"),
                  ("kh", "k"), ("ph", "f"), ("h", "k"), ("ts", "c"), ("ck", "k"), ("x", "ks"),
                  ("w", "v"), ("q", "k"), ("c", "k")]

_LEGAL_WORDS = re.compile(
    r"\b(?:" + "|".join(p for p, _ in _FULL_FORMS)
    + r"|индивидуальный\s+предприниматель|ооо|оао|зао|пао|нао|ао|ип|тоо|ано|одо|чуп|нпо|"
    r"llc|ltd|inc|corp|co|gmbh|plc)\b\.?"
)
_NON_ALNUM = re.compile(r"[\W_]+")
_LETTER = re.compile(r"[^\W\d_]")
_BRAND_MARKS = re.compile(r"[«»\"“”]|[A-Za-z]{2,}")
_OPEN_QUOTE = re.compile(r"[«\"“„]")


@dataclass(frozen=True, slots=True)
class NameChoice:
    name: str
    source: str  # legal | title | domain

    @property
    def rank(self) -> int:
        return NAME_RANK[self.source]


def _balanced(text: str) -> bool:
    curly = text.count("“") + text.count("”") + text.count("„")
    return text.count("«") == text.count("»") and text.count('"') % 2 == 0 and curly % 2 == 0


def _clean(text: str) -> str:
    text = " ".join(text.split())
    text = _EDGE.sub("", _TRAIL_DOTS.sub("", text))
    for _ in range(4):  # a wrapping pair of quotes, or a stray quote at an edge
        if len(text) >= 2 and text[0] in _QUOTES and text[-1] in _QUOTES and _balanced(text[1:-1]):
            text = text[1:-1].strip()
        elif text[:1] in _QUOTES and not _balanced(text):
            text = text[1:].strip()
        elif text[-1:] in _QUOTES and not _balanced(text):
            text = text[:-1].strip()
        else:
            break
    return _EDGE.sub("", text)[:MAX_NAME].strip()


@functools.lru_cache(maxsize=1024)
def _short_form(form: str) -> str:
    lowered = " ".join(form.lower().split())
    for pattern, short in _FULL_FORMS_COMPILED:
        if pattern.fullmatch(lowered):
            return short
    return {"ltd.": "Ltd", "ltd": "Ltd", "llc": "LLC"}.get(lowered, form.upper())


def _may_have_form(text: str) -> bool:
    """False only when _LEGAL cannot match `text` (most titles and snippets)."""
    if not any(quote in text for quote in _QUOTE_OPENERS):
        return False
    lowered = text.lower()
    return (any(fragment in lowered for fragment in _FORM_FRAGMENTS)
            or _CASE_ODD.search(text) is not None)


def legal_name(text: str | None) -> str | None:
    """The first legal name in `text`: `ООО «Ромашка»`, `ИП Иванов И.И.`, else None."""
    if not text:
        return None
    found: tuple[int, str] | None = None
    if _may_have_form(text):
        for match in _LEGAL.finditer(text):
            inner = _clean(match["g"] or match["q"] or match["c"] or match["l"])
            if len(inner) >= 2 and _LETTER.search(inner):
                found = (match.start(), f"{_short_form(match['form'])} «{inner}»")
                break
    if "ИП" in text or "ндивидуальный" in text:
        match = _IP.search(text)
        if match:
            ip = (match.start(), f"ИП {_clean(match['fio'])}")
            found = ip if found is None else min(found, ip)
    return found[1] if found else None


_VOWELS = re.compile(r"[aeiouyj]+")
_REPEATS = re.compile(r"(.)\1+")


@functools.lru_cache(maxsize=65536)
def _skeleton(text: str) -> str:
    """A transliterated consonant skeleton, so «Техносила» matches technosila.ru."""
    text = _NON_ALNUM.sub("", text.lower().translate(_TRANSLIT))
    for old, new in _SKELETON_SUBS:
        text = text.replace(old, new)
    return _REPEATS.sub(r"\1", _VOWELS.sub("", text))


def _matches_domain(part: str, domain: str) -> bool:
    compact = _NON_ALNUM.sub("", part.lower())
    domain_label = domain.split(".", 1)[0]
    if compact and compact in {domain_label.replace("-", ""),
                               domain.replace(".", "").replace("-", "")}:
        return True
    label = _skeleton(domain_label)
    words = [_skeleton(w) for w in part.split()]
    whole = _skeleton(part)
    if len(label) < 3 or len(whole) < 2:
        return False
    if whole in label and len(whole) >= 3:
        return True
    return any(len(word) >= 3 and (word == label or (len(word) >= 4 and word in label))
               for word in words) or label in whole


def _brand_signal(part: str) -> bool:
    if _BRAND_MARKS.search(part):
        return True
    return any(word[:1].isupper() for word in part.split()[1:])


def _is_seo(part: str, city: str | None) -> bool:
    if _SEO.search(part) or _IN_CITY.search(part):
        return True
    if city:
        stem = city.strip().lower().replace("ё", "е")[:5]
        if len(stem) >= 4 and stem in part.lower().replace("ё", "е"):
            return True
    return False


def title_brand(title: str | None, domain: str, city: str | None = None) -> str | None:
    """The brand part of a page title, or None when the title is only an SEO phrase."""
    if not title:
        return None
    title = _TRAIL_DOTS.sub("", title)
    parts = []
    for raw in _SEPARATORS.split(title):
        cleaned = _clean(raw)
        stripped = _LEADING.sub("", cleaned)
        if stripped:
            parts.append((stripped, stripped != cleaned, raw))
    best: tuple[int, int, str] | None = None
    for index, (part, after_lead, raw) in enumerate(parts):
        words = part.split()
        if part.lower() in _GENERIC or not 1 <= len(words) <= 6 or len(part) > 60:
            continue
        if not _LETTER.search(part):
            continue
        if _is_seo(part, city):  # -20 outweighs every bonus below (at most +15)
            continue
        score = 0
        if _matches_domain(part, domain):
            score += 10
        if after_lead:  # "Официальный сайт компании X"
            score += 2
        if _brand_signal(part) or _OPEN_QUOTE.search(raw):
            score += 2
        if len(parts) > 1 and len(words) <= 3:
            score += 1
        if score < 2:  # a short part alone is not enough: "План раскрутки: …"
            continue
        key = (score, index)  # later parts win ties: "Page | Brand"
        if best is None or key > best[:2]:
            best = (score, index, part)
    return best[2] if best else None


def choose_name(
    title: str | None, snippet: str | None, domain: str, city: str | None = None
) -> NameChoice:
    """Legal name (title, then snippet) > title brand > the domain itself."""
    legal = legal_name(title) or legal_name(snippet)
    if legal:
        return NameChoice(legal, "legal")
    brand = title_brand(title, domain, city)
    if brand:
        return NameChoice(brand, "title")
    return NameChoice(display_domain(domain), "domain")


def better(new: NameChoice, old_source: str | None) -> bool:
    """True when `new` should replace a name of `old_source` (strictly better only)."""
    return new.rank > NAME_RANK.get(old_source or "domain", 1)


def name_key(name: str | None, source: str = "title") -> str | None:
    """The name reduced for fuzzy matching: lower-case, ё→е, no legal form, no quotes or
    punctuation. None for domain-derived names and keys too short to mean anything."""
    if not name or source == "domain":
        return None
    key = name.lower().replace("ё", "е")
    key = _LEGAL_WORDS.sub(" ", key)
    key = _NON_ALNUM.sub("", key)
    if len(key) < 3 or key.isdigit():
        return None
    return key[:200]

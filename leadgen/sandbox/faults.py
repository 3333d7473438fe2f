"""Fault injection for the sandbox emulators, configured from a dict or JSON.

Shape (every key optional)::

    {"seed": 7,
     "yandex":     {"429": 0.1, "503": 0.1, "latency_ms": [5, 50], "drop": 0.01,
                    "xml_55": 0.05, "xml_32": 0.0, "operation_error": 0.02},
     "operations": {"500": 0.05},
     "iam": {...}, "sheets": {...}, "oauth": {...},
     "openai":     {"429": 0.1, "500": 0.05, "latency_ms": 500, "invalid_json": 0.1,
                    "schema_break": 0.1, "crlf_subject": 0.1, "long_output": 0.05},
     "smtp": {"recipients": {"^bounce-": "550 5.1.1 No such user",
                             "^busy-": {"reply": "451 4.3.0 Try later", "times": 1}},
              "auth_fail_users": ["^locked@"], "drop_after_data": 0.0}}

Digit keys are HTTP status rates; other numeric keys are named content faults of that emulator.
Draws come from one seeded RNG per emulator, so a run with the same requests in the same order
gets the same faults.
"""

from __future__ import annotations

import json
import random
import re
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

EMULATORS = ("yandex", "operations", "iam", "sheets", "oauth", "openai", "web")


@dataclass
class EmulatorFaults:
    """HTTP-level faults of one emulator plus its named content faults."""

    errors: dict[int, float] = field(default_factory=dict)  # status -> probability
    latency_ms: tuple[float, float] = (0.0, 0.0)  # uniform range; (x, x) = fixed
    drop: float = 0.0  # close the connection without a response
    content: dict[str, float] = field(default_factory=dict)  # e.g. invalid_json -> probability

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> EmulatorFaults:
        errors: dict[int, float] = {}
        content: dict[str, float] = {}
        latency: tuple[float, float] = (0.0, 0.0)
        drop = 0.0
        for key, value in data.items():
            key = str(key)
            if key.isdigit():
                errors[int(key)] = _rate(key, value)
            elif key == "latency_ms":
                if isinstance(value, (list, tuple)):
                    if len(value) != 2:
                        raise ValueError("latency_ms must be a number or [low, high]")
                    latency = (float(value[0]), float(value[1]))
                else:
                    latency = (float(value), float(value))
                if latency[0] < 0 or latency[1] < latency[0]:
                    raise ValueError(f"bad latency_ms {value!r}")
            elif key == "drop":
                drop = _rate(key, value)
            else:
                content[key] = _rate(key, value)
        if sum(errors.values()) + drop > 1.0:
            raise ValueError("error rates plus drop exceed 1.0")
        return cls(errors=errors, latency_ms=latency, drop=drop, content=content)


@dataclass
class RecipientRule:
    pattern: re.Pattern[str]
    reply: str  # "550 5.1.1 ..." (code, then text)
    times: int | None = None  # reply this many times per recipient, then accept

    @property
    def code(self) -> int:
        return int(self.reply.split(" ", 1)[0])

    @property
    def text(self) -> str:
        return self.reply.split(" ", 1)[1] if " " in self.reply else ""


@dataclass
class SmtpFaults:
    recipients: list[RecipientRule] = field(default_factory=list)
    auth_fail_users: list[re.Pattern[str]] = field(default_factory=list)
    drop_after_data: float = 0.0  # the message is stored, the reply is never sent

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SmtpFaults:
        rules = []
        for pattern, spec in (data.get("recipients") or {}).items():
            if isinstance(spec, str):
                reply, times = spec, None
            else:
                reply, times = spec["reply"], spec.get("times")
            if not re.match(r"^[245]\d\d( |$)", reply):
                raise ValueError(f"SMTP reply must start with a 3-digit code: {reply!r}")
            rules.append(RecipientRule(re.compile(pattern, re.I), reply, times))
        users = [re.compile(p, re.I) for p in data.get("auth_fail_users") or []]
        return cls(rules, users, _rate("drop_after_data", data.get("drop_after_data", 0.0)))

    def auth_fails(self, username: str) -> bool:
        return any(p.search(username) for p in self.auth_fail_users)


class Faults:
    """All sandbox faults; thread-safe, deterministic for a given seed and request order."""

    def __init__(self, seed: int = 0, emulators: dict[str, EmulatorFaults] | None = None,
                 smtp: SmtpFaults | None = None) -> None:
        self.seed = seed
        self.emulators = emulators or {}
        self.smtp = smtp or SmtpFaults()
        self._rngs: dict[str, random.Random] = {}
        self._lock = threading.Lock()

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> Faults:
        data = dict(data or {})
        seed = int(data.pop("seed", 0))
        smtp = SmtpFaults.from_dict(data.pop("smtp", {}) or {})
        emulators = {}
        for name, spec in data.items():
            if name not in EMULATORS:
                raise ValueError(f"unknown emulator {name!r} in faults (known: {EMULATORS})")
            emulators[name] = EmulatorFaults.from_dict(spec or {})
        return cls(seed, emulators, smtp)

    @classmethod
    def from_json(cls, text_or_path: str | Path) -> Faults:
        text = str(text_or_path)
        if isinstance(text_or_path, Path) or not text.lstrip().startswith("{"):
            text = Path(text_or_path).read_text(encoding="utf-8")
        return cls.from_dict(json.loads(text))

    def of(self, emulator: str) -> EmulatorFaults:
        return self.emulators.get(emulator) or EmulatorFaults()

    def _draw(self, emulator: str) -> float:
        with self._lock:
            rng = self._rngs.get(emulator)
            if rng is None:
                rng = self._rngs[emulator] = random.Random(f"{self.seed}:{emulator}")
            return rng.random()

    def latency_s(self, emulator: str) -> float:
        low, high = self.of(emulator).latency_ms
        if high <= 0:
            return 0.0
        if high == low:
            return low / 1000
        return (low + (high - low) * self._draw(emulator)) / 1000

    def http_fault(self, emulator: str) -> int | str | None:
        """An HTTP status to answer with, "drop" to close the connection, or None."""
        spec = self.of(emulator)
        if not spec.errors and not spec.drop:
            return None
        draw = self._draw(emulator)
        edge = 0.0
        for status, rate in sorted(spec.errors.items()):
            edge += rate
            if draw < edge:
                return status
        if draw < edge + spec.drop:
            return "drop"
        return None

    def hit(self, emulator: str, name: str) -> bool:
        """Whether the named content fault fires this time."""
        rate = self.of(emulator).content.get(name, 0.0)
        return rate > 0 and self._draw(f"{emulator}:{name}") < rate

    def roll(self, key: str, rate: float) -> bool:
        """True with probability `rate`, from the RNG stream named `key`."""
        return rate > 0 and self._draw(key) < rate

    def choose(self, emulator: str, names: list[str]) -> str | None:
        """At most one of several exclusive content faults (first that fires)."""
        for name in names:
            if self.hit(emulator, name):
                return name
        return None


def _rate(name: str, value: Any) -> float:
    rate = float(value)
    if not 0.0 <= rate <= 1.0:
        raise ValueError(f"{name}: rate {value!r} is not within 0..1")
    return rate

"""Generation benchmark: companies → first emails through the sandbox OpenAI emulator at a fixed
latency (default 500 ms), LLM_CONCURRENCY threads sharing one client, each email validated and
queued. Prints one JSON line with messages/minute.

    .venv/bin/python benchmarks/bench_generate.py [--companies 60] [--latency-ms 500] [--concurrency 4]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--companies", type=int, default=60)
    parser.add_argument("--latency-ms", type=float, default=500)
    parser.add_argument("--concurrency", type=int, default=int(os.environ.get("LLM_CONCURRENCY", 4)))
    args = parser.parse_args()

    from sqlalchemy import insert, select

    from leadgen import migrations
    from leadgen.config import load_settings, reset_settings
    from leadgen.db import dispose_engines, session_scope
    from leadgen.models import Company, Contact, OutreachMessage
    from leadgen.outreach.service import generate_many
    from leadgen.sandbox.openai_api import OpenAIEmulator

    work = Path(tempfile.mkdtemp(prefix="bench_generate_"))
    url = f"sqlite:///{work / 'bench.sqlite3'}"
    migrations.upgrade(url)
    llm = OpenAIEmulator(latency_ms=args.latency_ms)
    llm.start()
    os.environ.update({
        "DATABASE_URL": url, "OPENAI_API_KEY": llm.api_key, "OPENAI_BASE_URL": llm.base_url,
        "LLM_CONCURRENCY": str(args.concurrency), "SMTP_USERNAME": "me@sender.ru",
        "SMTP_HOST": "127.0.0.1"})
    reset_settings()
    settings = load_settings()
    try:
        with session_scope(url) as session:
            session.execute(insert(Company), [
                {"id": i + 1, "domain": f"c{i}.ru", "name": f"Клиника {i}", "niche": "стоматология",
                 "city": "Казань", "homepage_url": f"https://c{i}.ru/", "status": "contacts_ready",
                 "homepage_excerpt": "Лечение и протезирование зубов, детская стоматология. " * 20}
                for i in range(args.companies)])
            session.execute(insert(Contact), [
                {"company_id": i + 1, "email": f"info@c{i}.ru", "method": "mailto",
                 "confidence": 1.0, "is_primary": True} for i in range(args.companies)])
        started = time.perf_counter()
        results = generate_many(list(range(1, args.companies + 1)), settings, url=url)
        elapsed = time.perf_counter() - started
        with session_scope(url) as session:
            generators = Counter(session.scalars(select(OutreachMessage.generator)))
            cost = sum(session.scalars(select(OutreachMessage.cost_usd)).all() or [0])
        queued = sum(1 for r in results if r)
        print(json.dumps({
            "benchmark": "generate", "companies": args.companies, "queued": queued,
            "llm": generators.get("llm", 0), "template": generators.get("template", 0),
            "latency_ms": args.latency_ms, "concurrency": args.concurrency,
            "seconds": round(elapsed, 2), "messages_per_minute": round(queued / elapsed * 60, 1),
            "ideal_per_minute": round(args.concurrency * 60_000 / args.latency_ms, 1),
            "cost_usd": round(cost, 6)}))
    finally:
        llm.stop()
        dispose_engines()


if __name__ == "__main__":
    main()

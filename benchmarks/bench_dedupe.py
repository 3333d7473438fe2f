"""Dedupe benchmark: 1,000,000 companies (and a contact each) inserted with generate_series,
then one whole-table `dedupe()` (names + shared emails + opt-out domains) and one restricted
run for a 100-company chain. Prints one JSON line with seconds and peak RSS.

    .venv/bin/python benchmarks/bench_dedupe.py [--companies 1000000]

Database: LEADGEN_BENCH_PG_URL (emptied first), else a throwaway database (see
bench_ingest.py). Goal: whole-table dedupe of 1M companies ≤ 30 s.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

# ~5 % of companies share a name key with an older one in the same city, ~1 % share an
# email, 0.1 % opted out (never touched).
_COMPANIES = """
INSERT INTO companies (domain, name, name_source, name_key, homepage_url, niche, city,
                       status, opt_out, attempts, first_seen_at, last_seen_at, created_at,
                       updated_at)
SELECT 'company' || g || '.ru',
       'ООО «Компания ' || (g % :distinct_names) || '»',
       CASE WHEN g % 10 = 0 THEN 'domain' ELSE 'legal' END,
       CASE WHEN g % 10 = 0 THEN NULL ELSE 'компания' || (g % :distinct_names) END,
       'https://company' || g || '.ru/', 'стоматология',
       (ARRAY['Москва','Казань','Самара','Омск','Томск'])[((g % :distinct_names) % 5) + 1],
       CASE WHEN g % 1000 = 0 THEN 'opted_out' WHEN g % 997 = 0 THEN 'contacted'
            ELSE 'new' END,
       g % 1000 = 0, 0, now(), now(), now(), now()
FROM generate_series(1, :n) AS g
"""
_CONTACTS = """
INSERT INTO contacts (company_id, email, method, confidence, is_primary, status, created_at,
                      updated_at)
SELECT c.id,
       CASE WHEN c.id % 100 = 0 THEN 'office@shared' || (c.id / 200) || '.ru'
            ELSE 'info@' || c.domain END,
       'mailto', 0.9, true, 'ok', now(), now()
FROM companies c
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--companies", type=int, default=1_000_000)
    args = parser.parse_args()

    from sqlalchemy import text
    from sqlalchemy.orm import sessionmaker

    from bench_ingest import database
    from leadgen.config import load_settings
    from leadgen.db import get_engine
    from leadgen.serp.dedupe import dedupe

    with database() as url:
        engine = get_engine(url)
        load_started = time.perf_counter()
        with engine.begin() as conn:
            conn.execute(text(_COMPANIES),
                         {"n": args.companies, "distinct_names": int(args.companies * 0.95)})
            conn.execute(text(_CONTACTS))
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(text("VACUUM ANALYZE companies"))
            conn.execute(text("VACUUM ANALYZE contacts"))
        load_seconds = time.perf_counter() - load_started

        settings = load_settings(database_url=url)
        make_session = sessionmaker(bind=engine, expire_on_commit=False)
        started = time.perf_counter()
        with make_session() as session:
            active = dedupe(session, None, settings)
            session.commit()
        full_seconds = time.perf_counter() - started

        with make_session() as session:
            duplicates = session.scalar(text(
                "SELECT count(*) FROM companies WHERE status = 'duplicate'"))
            by_reason = dict(session.execute(text(
                "SELECT status_reason, count(*) FROM companies WHERE status = 'duplicate' "
                "GROUP BY status_reason")).all())
            touched_protected = session.scalar(text(
                "SELECT count(*) FROM companies WHERE (opt_out OR status IN "
                "('opted_out', 'contacted')) AND duplicate_of_id IS NOT NULL"))
            chain_ids = list(session.execute(text(
                "SELECT id FROM companies ORDER BY id DESC LIMIT 100")).scalars())

        started = time.perf_counter()
        with make_session() as session:
            again = dedupe(session, None, settings)
            session.commit()
        rerun_seconds = time.perf_counter() - started

        started = time.perf_counter()
        with make_session() as session:
            dedupe(session, chain_ids, settings)
            session.commit()
        chain_seconds = time.perf_counter() - started

        peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        print(json.dumps({
            "benchmark": "dedupe", "companies": args.companies, "load_seconds":
            round(load_seconds, 1), "dedupe_seconds": round(full_seconds, 2),
            "rerun_seconds": round(rerun_seconds, 2), "chain_100_seconds":
            round(chain_seconds, 3), "duplicates": duplicates, "by_reason": by_reason,
            "active": len(active), "rerun_same": again == active,
            "protected_touched": touched_protected,
            "peak_rss_mb": round(peak_kb / 1024, 1), "load_avg_1m":
            round(os.getloadavg()[0], 1), "goal_seconds": 30, "ok": full_seconds <= 30,
        }, ensure_ascii=False))


if __name__ == "__main__":
    main()

"""SERP ingest benchmark: raw XML of fetched operations → committed results and companies on
PostgreSQL, one process, one transaction per operation (as the `leadgen.serp.ingest_operation`
task does). Then, unless `--batch 0`, the same operations again from a clean slate, `--batch`
operations per transaction (as `leadgen.serp.ingest_batch` does). Prints one JSON line with
docs/s, client CPU and peak RSS (top level: per operation; "batched": the batched run).

    .venv/bin/python benchmarks/bench_ingest.py [--operations 500] [--docs 100] [--batch 50]

Database: LEADGEN_BENCH_PG_URL (emptied first), else a throwaway database created on
LEADGEN_TEST_PG_ADMIN / postgres@127.0.0.1:5432 and dropped afterwards. Goal: ≥ 10,000 docs/s.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import sys
import time
from contextlib import contextmanager
from datetime import datetime, timedelta, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

PG_ADMIN = os.environ.get("LEADGEN_TEST_PG_ADMIN", "postgresql://postgres@127.0.0.1:5432/postgres")

NICHES = ["стоматология", "ремонт квартир", "грузоперевозки", "юридические услуги",
          "автосервис", "клининг", "фитнес клуб", "салон красоты"]
CITIES = ["Москва", "Санкт-Петербург", "Казань", "Екатеринбург", "Новосибирск", "Самара"]
WORDS = ["Альфа", "Вектор", "Ромашка", "Улыбка", "Гарант", "Профи", "Мастер", "Сити", "Лидер",
         "Премиум", "Эксперт", "Стандарт", "Форум", "Нова", "Атлант", "Сфера"]
LATIN = ["alfa", "vector", "romashka", "ulybka", "garant", "profi", "master", "city", "lider",
         "premium", "expert", "standart", "forum", "nova", "atlant", "sfera"]
TLDS = ["ru", "ru", "ru", "com", "su", "msk.ru", "spb.ru", "xn--p1ai"]
BLOCKED = ["avito.ru", "2gis.ru", "zoon.ru", "yell.ru", "vk.com", "youtube.com", "hh.ru",
           "market.yandex.ru", "prodoctorov.ru", "otzovik.com"]


def synth_docs(rng: random.Random, niche: str, city: str, docs: int,
               domain_pool: list[str]) -> list[dict]:
    out = []
    for position in range(docs):
        roll = rng.random()
        if roll < 0.15:
            host = rng.choice(BLOCKED)
            title = f"{niche.capitalize()} в городе {city} — {rng.randint(10, 900)} организаций"
            url = f"https://{host}/{LATIN[position % len(LATIN)]}/{rng.randint(1, 10**6)}"
        else:
            domain = rng.choice(domain_pool)
            sub = rng.choice(["", "", "www.", "msk.", "shop."])
            brand = WORDS[hash(domain) % len(WORDS)]
            kind = rng.random()
            if kind < 0.3:
                title = f"{niche.capitalize()} в {city} недорого — цены | {brand}"
            elif kind < 0.5:
                title = f"ООО «{brand} {rng.choice(WORDS)}» — {niche}"
            elif kind < 0.6:
                title = None
            else:
                title = f"{niche.capitalize()} {city} — официальный сайт, отзывы, цены"
            url = (f"https://{sub}{domain}/{rng.choice(['', 'uslugi/', 'contacts', 'price'])}"
                   f"{'?utm_source=yandex&utm_medium=cpc' if rng.random() < 0.2 else ''}")
        out.append({
            "url": url, "title": title,
            "passages": [f"{niche.capitalize()} в {city}: запись онлайн, гарантия качества. "
                         f"Работаем с 20{rng.randint(0, 24):02d} года, более "
                         f"{rng.randint(100, 9000)} клиентов.",
                         f"© ООО «{rng.choice(WORDS)}», ИНН 77{rng.randint(10**7, 10**8)}"]
            if rng.random() < 0.8 else [],
            "headline": f"{niche.capitalize()} — {city}" if rng.random() < 0.2 else None,
            "touchdown": "РКН: сайт нарушает закон РФ" if rng.random() < 0.005 else None,
        })
    return out


@contextmanager
def database():
    """A migrated, empty PostgreSQL database URL."""
    from leadgen import migrations

    url = os.environ.get("LEADGEN_BENCH_PG_URL")
    if url:
        migrations.upgrade(url)
        from sqlalchemy import text

        from leadgen.db import get_engine
        from leadgen.models import Base

        with get_engine(url).begin() as conn:
            names = ", ".join(t.name for t in Base.metadata.sorted_tables)
            conn.execute(text(f"TRUNCATE {names} RESTART IDENTITY CASCADE"))
        yield url
        return
    from leadgen.db import scratch_database

    with scratch_database(PG_ADMIN, prefix="leadgen_bench") as url:
        migrations.upgrade(url)
        yield url


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--operations", type=int, default=500)
    parser.add_argument("--docs", type=int, default=100)
    parser.add_argument("--domains", type=int, default=20_000, help="distinct company domains")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--batch", type=int, default=50,
                        help="operations per transaction in the batched run (0: skip it)")
    parser.add_argument("--profile", metavar="FILE",
                        help="cProfile the timed ingest loop only; write pstats to FILE")
    args = parser.parse_args()

    from sqlalchemy import func, insert, select, text, update
    from sqlalchemy.orm import sessionmaker

    from leadgen.config import load_settings
    from leadgen.db import get_engine
    from leadgen.models import Company, SerpOperation, SerpQuery, SerpResult
    from leadgen.serp.blocklist import blocklist_from_settings
    from leadgen.serp.ingest import ingest_operation, ingest_operations
    from leadgen.serp.xmlgen import render_serp

    rng = random.Random(args.seed)
    pool = [f"{rng.choice(LATIN)}-{rng.choice(LATIN)}{i}.{rng.choice(TLDS)}"
            for i in range(args.domains)]
    with database() as url:
        engine = get_engine(url)
        settings = load_settings(database_url=url)
        now = datetime.now(timezone.utc)
        with engine.begin() as conn:
            queries = []
            for i in range(args.operations):
                niche, city = NICHES[i % len(NICHES)], CITIES[i % len(CITIES)]
                queries.append({
                    "query_hash": f"bench-{i}", "query_text": f"{niche} {city}", "page": 0,
                    "region_id": 213, "region_source": "city", "niche": niche, "city": city,
                    "batch_tag": "bench", "status": "submitted", "attempts": 1,
                    "scheduled_for": now - timedelta(hours=1), "created_at": now,
                    "updated_at": now})
            conn.execute(insert(SerpQuery), queries)
            query_ids = [r.id for r in conn.execute(
                select(SerpQuery.id, SerpQuery.niche, SerpQuery.city).order_by(SerpQuery.id))]
            ops = []
            for i, qid in enumerate(query_ids):
                niche, city = NICHES[i % len(NICHES)], CITIES[i % len(CITIES)]
                xml = render_serp(synth_docs(rng, niche, city, args.docs, pool),
                                  query=f"{niche} {city}", highlight=niche.split())
                ops.append({"query_id": qid, "operation_id": f"bench-op-{i}",
                            "status": "fetched", "raw_xml": xml, "submitted_at": now,
                            "created_at": now, "updated_at": now})
            conn.execute(insert(SerpOperation), ops)
            op_ids = [r[0] for r in conn.execute(select(SerpOperation.id)
                                                 .order_by(SerpOperation.id))]
        xml_bytes = sum(len(op["raw_xml"].encode()) for op in ops)
        del ops, queries

        make_session = sessionmaker(bind=engine, expire_on_commit=False)
        blocklist = blocklist_from_settings(settings)
        profiler = None
        if args.profile:
            import cProfile

            profiler = cProfile.Profile()

        def run(batch: int) -> dict:
            docs = 0
            if profiler is not None:
                profiler.enable()
            cpu_started = time.process_time()
            started = time.perf_counter()
            if batch:
                for start in range(0, len(op_ids), batch):
                    with make_session() as session:
                        results = ingest_operations(session, op_ids[start : start + batch],
                                                    settings, blocklist=blocklist)
                        session.commit()
                    docs += sum(result.doc_count for result in results.values())
            else:
                for op_id in op_ids:
                    with make_session() as session:
                        result = ingest_operation(session, op_id, settings, blocklist=blocklist)
                        session.commit()
                    docs += result.doc_count
            elapsed = time.perf_counter() - started
            cpu = time.process_time() - cpu_started
            if profiler is not None:
                profiler.disable()
            with make_session() as session:
                results_count = session.scalar(select(func.count(SerpResult.id)))
                companies = session.scalar(select(func.count(Company.id)))
                ingested = session.scalar(select(func.count(SerpOperation.id))
                                          .where(SerpOperation.status == "ingested"))
            return {
                "operations": len(op_ids), "ingested": ingested, "docs": docs,
                "serp_results": results_count, "companies": companies,
                "xml_mb": round(xml_bytes / 2**20, 1), "seconds": round(elapsed, 2),
                "client_cpu_seconds": round(cpu, 2), "load_avg_1m": round(os.getloadavg()[0], 1),
                "docs_per_s": round(docs / elapsed), "ops_per_s": round(len(op_ids) / elapsed, 1),
                "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
                "goal_docs_per_s": 10_000, "ok": docs / elapsed >= 10_000,
            }

        report = {"benchmark": "serp_ingest", "mode": "per_operation", **run(0)}
        if args.batch:
            with engine.begin() as conn:  # a clean slate: the same fetched operations again
                conn.execute(text("TRUNCATE serp_results, companies RESTART IDENTITY CASCADE"))
                conn.execute(update(SerpOperation).values(status="fetched", doc_count=None))
                conn.execute(update(SerpQuery).values(status="submitted", result_count=None,
                                                      completed_at=None))
            report["batched"] = {"mode": f"batch_of_{args.batch}", **run(args.batch)}
        if profiler is not None:
            profiler.dump_stats(args.profile)
        print(json.dumps(report, ensure_ascii=False))

if __name__ == "__main__":
    main()

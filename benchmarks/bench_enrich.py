"""Enrichment benchmark: crawl ≥ 1,000 sandbox sites in one process; print one JSON line with
sites/s, pages/s, peak RSS and the precision/recall of the primary email vs the ground truth.

    .venv/bin/python benchmarks/bench_enrich.py [--sites 1000] [--latency-ms 100]

The sandbox (synthetic web proxy + DNS) runs in a child process so the measured process is the
crawler alone, as a worker would be. Goals: ≥ 40 sites/s, peak RSS ≤ 300 MB, precision ≥ 0.97,
recall ≥ 0.95 of the reachable sites that publish an email.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing as mp
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def _sandbox(conn, seed: int, latency_ms: float, directory: str) -> None:  # type: ignore[no-untyped-def]
    from leadgen.sandbox.dns import DnsServer
    from leadgen.sandbox.tls import SandboxCA
    from leadgen.sandbox.web import WebServer
    from leadgen.sandbox.world import World

    world = World(seed=seed)
    ca = SandboxCA(directory)
    web = WebServer(world, ca, latency_ms=latency_ms)
    dns = DnsServer(world)
    web.start()
    dns.start()
    truth = {d: {"primary": v["primary"], "kind": v["kind"], "reachable": v["reachable"]}
             for d, v in world.ground_truth().items()}
    conn.send({"proxy": web.proxy_url, "dns": dns.address, "ca": str(ca.ca_file), "truth": truth})
    conn.recv()  # wait for "stop"
    import os
    times = os.times()
    conn.send({"ssrf": int(web.stats.get("ssrf", 0)), "cpu_s": round(times.user + times.system, 1)})
    web.stop()
    dns.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sites", type=int, default=1000)
    parser.add_argument("--latency-ms", type=float, default=100.0)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--concurrency", type=int, default=None)
    parser.add_argument("--per-host-delay", type=float, default=None)
    parser.add_argument("--errors", action="store_true", help="list wrong primaries on stderr")
    parser.add_argument("--profile", default="", help="write cProfile stats of the crawl here")
    args = parser.parse_args()

    import psutil

    from leadgen.config import load_settings
    from leadgen.enrich.crawl import CompanyRef, crawl_many_async
    from leadgen.enrich.fetch import Fetcher

    parent, child = mp.Pipe()
    with tempfile.TemporaryDirectory() as directory:
        proc = mp.get_context("spawn").Process(
            target=_sandbox, args=(child, args.seed, args.latency_ms, directory), daemon=True)
        proc.start()
        info = parent.recv()
        truth: dict[str, dict] = info["truth"]
        domains = sorted(truth)[: args.sites]
        overrides = dict(
            enrich_proxy_url=[info["proxy"]], enrich_ca_file=info["ca"],
            enrich_allowed_networks=["127.77.0.0/16"], dns_resolvers=[info["dns"]],
            mx_check_enabled=False,
        )
        if args.concurrency:
            overrides["enrich_concurrency"] = args.concurrency
        if args.per_host_delay is not None:
            overrides["enrich_per_host_delay_seconds"] = args.per_host_delay
        settings = load_settings(**overrides)
        companies = [CompanyRef(i, d, f"https://{d}/") for i, d in enumerate(domains)]

        process = psutil.Process()
        peak = process.memory_info().rss
        done = False

        async def sample() -> None:
            nonlocal peak
            while not done:
                peak = max(peak, process.memory_info().rss)
                await asyncio.sleep(0.05)

        async def run() -> tuple[dict, Fetcher]:
            nonlocal done
            sampler = asyncio.create_task(sample())
            async with Fetcher(settings) as fetcher:
                results = await crawl_many_async(companies, settings, fetcher)
            done = True
            await sampler
            return results, fetcher

        started = time.perf_counter()
        if args.profile:
            import cProfile

            profiler = cProfile.Profile()
            results, fetcher = profiler.runcall(asyncio.run, run())
            profiler.dump_stats(args.profile)
        else:
            results, fetcher = asyncio.run(run())
        elapsed = time.perf_counter() - started
        peak = max(peak, process.memory_info().rss)
        parent.send("stop")
        server = parent.recv()
        proc.join(10)

    tp = fp = fn = 0
    publishing = 0
    outcomes: dict[str, int] = {}
    wrong = []
    for company in companies:
        res = results[company.id]
        outcomes[res.outcome] = outcomes.get(res.outcome, 0) + 1
        expected = truth[company.domain]["primary"]
        got = res.primary.email if res.primary else None
        if expected:
            publishing += 1
        if got and got == expected:
            tp += 1
        elif got:
            fp += 1
            wrong.append((company.domain, truth[company.domain]["kind"], expected, got))
        elif expected:
            fn += 1
            wrong.append((company.domain, truth[company.domain]["kind"], expected, res.outcome,
                          res.detail[:160]))
    if args.errors:
        for row in wrong:
            print(*row, sep="\t", file=sys.stderr)
    pages = sum(r.pages_fetched for r in results.values())
    report = {
        "sites": len(companies),
        "seconds": round(elapsed, 2),
        "sites_per_s": round(len(companies) / elapsed, 1),
        "pages_per_s": round(pages / elapsed, 1),
        "requests_per_s": round(fetcher.stats.requests / elapsed, 1),
        "pages": pages,
        "requests": fetcher.stats.requests,
        "peak_rss_mb": round(peak / 2**20, 1),
        "precision": round(tp / (tp + fp), 4) if tp + fp else None,
        "recall": round(tp / publishing, 4) if publishing else None,
        "publishing_sites": publishing,
        "outcomes": outcomes,
        "fetch_errors": fetcher.stats.errors,
        "ssrf_requests_seen_by_proxy": server["ssrf"],
        "crawler_cpu_s": round(sum(process.cpu_times()[:2]), 1),
        "sandbox_cpu_s": server["cpu_s"],
        "latency_ms": args.latency_ms,
        "concurrency": settings.enrich_concurrency,
        "per_host_delay_s": settings.enrich_per_host_delay_seconds,
    }
    print(json.dumps(report))


if __name__ == "__main__":
    main()

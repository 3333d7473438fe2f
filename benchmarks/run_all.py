"""Run every benchmark once and print their JSON lines (`make bench`).

Each benchmark is its own process, so peak RSS is per benchmark. Figures go to BENCHMARKS.md
with this command.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
BENCHMARKS = [
    ["bench_ingest.py"],
    ["bench_dedupe.py"],
    ["bench_enrich.py"],
    ["bench_deliver.py", "--db", "postgres"],
    ["bench_deliver.py", "--db", "sqlite"],
    ["bench_generate.py"],
]


def main() -> int:
    failed = 0
    for script, *args in BENCHMARKS:
        print(f"# {script} {' '.join(args)}", flush=True)
        result = subprocess.run([sys.executable, str(HERE / script), *args], text=True,
                                capture_output=True)
        lines = [line for line in result.stdout.splitlines() if line.startswith("{")]
        print(lines[-1] if lines else result.stdout[-2000:] + result.stderr[-2000:], flush=True)
        failed += result.returncode != 0
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

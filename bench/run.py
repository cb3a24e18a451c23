"""``make bench``: every benchmark on both brokers (tansu, then Apache Kafka with the idempotent producer), then
one table of every figure next to its reference measured in the same run; the table and the figures are also
written to ``bench/results/latest.txt`` and ``bench/results/latest.json`` with the machine they ran on.

Each benchmark runs as its own process (as ``uv run python bench/<name>_bench.py`` would) and prints its own
detailed lines as it goes; a benchmark whose run voids its figures (lost or repeated answers, a broken vendor
contract) fails the whole run.

Usage: uv run python bench/run.py [--brokers tansu kafka] [--only ingest scoring alerts crm]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from common import BROKERS

BENCH = Path(__file__).resolve().parent
RESULTS = BENCH / "results"
#: Each benchmark and the arguments the table's run uses (see each script's docstring for what it measures).
RUNS: dict[str, list[str]] = {
    "ingest": ["--seconds", "10", "--rounds", "3"],
    "scoring": ["--answers", "100000", "--stored", "0", "--replicas", "1", "2", "--rounds", "3"],
    "alerts": ["--rate", "1000", "--seconds", "60"],
    "crm": ["--events", "10000", "--rate", "200", "--seconds", "60"],
}


def machine() -> dict[str, Any]:
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor())
    memory = next(int(line.split()[1]) for line in Path("/proc/meminfo").read_text().splitlines()
                  if line.startswith("MemTotal"))
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=False,
                            cwd=BENCH).stdout.strip()
    return {"cpus": os.cpu_count(), "cpu": cpu, "memory_gib": round(memory / 2**20, 1),
            "kernel": platform.release(), "python": platform.python_version(), "commit": commit,
            "at": datetime.now(UTC).isoformat(timespec="seconds")}


def number(value: float | None, unit: str = "") -> str:
    if value is None:
        return ""
    if abs(value) >= 100 or float(value).is_integer():
        text = f"{value:,.0f}"
    else:
        text = f"{value:,.1f}" if abs(value) >= 10 else f"{value:,.2f}"
    return f"{text} {unit}".strip()


def table(results: list[dict[str, Any]]) -> str:
    rows = [("figure", "broker", "value", "reference (same run)", "ratio", "note")]
    for result in results:
        for f in result["figures"]:
            reference = f"{number(f['reference'], f['unit'])}: {f['reference_label']}" if f["reference"] is not None \
                else ""
            rows.append((f["label"], result["broker"], number(f["value"], f["unit"]), reference,
                         f"{f['ratio']:.2f}" if f["ratio"] is not None else "", f["note"]))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = [" | ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip() for row in rows]
    lines.insert(1, "-+-".join("-" * w for w in widths))
    return "\n".join(lines)


def bare_rss(results: list[dict[str, Any]]) -> None:
    """Every service's peak RSS gets the bare FastAPI process's (measured by the ingest benchmark in the same
    run, on the same broker) as its reference."""
    for result in results:
        bare = next((f for r in results if r["broker"] == result["broker"] for f in r["figures"]
                     if f["key"] == "rss_ingest" and f["reference"] is not None), None)
        for f in result["figures"]:
            if f["key"].startswith("rss_") and f["reference"] is None and bare is not None:
                f["reference"], f["reference_label"] = bare["reference"], bare["reference_label"]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--brokers", nargs="+", choices=BROKERS, default=list(BROKERS))
    parser.add_argument("--only", nargs="+", choices=list(RUNS), default=list(RUNS))
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="pulse-bench-run-"))
    results = []
    started = time.monotonic()
    for broker in args.brokers:
        for name in args.only:
            out = work / f"{name}-{broker}.json"
            print(f"\n=== {name} on {broker} ===", flush=True)
            done = subprocess.run([sys.executable, str(BENCH / f"{name}_bench.py"), *RUNS[name], "--broker", broker,
                                   "--json", str(out)], check=False)
            if done.returncode != 0 or not out.exists():
                raise SystemExit(f"{name} on {broker} failed (exit {done.returncode}): no figures")
            results.append(json.loads(out.read_text()))
    bare_rss(results)
    about = machine()
    text = table(results)
    header = (f"Pulse benchmarks, {about['at']} (commit {about['commit']}): {about['cpus']} CPUs ({about['cpu']}), "
              f"{about['memory_gib']} GiB, Python {about['python']}; {time.monotonic() - started:.0f} s")
    print(f"\n{header}\n{text}")
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "latest.txt").write_text(f"{header}\n{text}\n")
    (RESULTS / "latest.json").write_text(json.dumps({"machine": about, "runs": results}, indent=1) + "\n")


if __name__ == "__main__":
    main()

"""`python -m bench.run [-k TEXT] [--reuse-db]` (what `make bench` runs): every benchmark.

1. (Re)creates the bench database on the PostgreSQL server of `BENCH_DATABASE_URL`
   (default postgres://postgres@127.0.0.1:5432/feesync_bench): dropped and created afresh on
   every run, so results never depend on what an earlier run left behind. As a guard, the
   database name must contain "bench" (set BENCH_ALLOW_ANY_DATABASE=1 to override).
2. Starts Django with `config.settings.local` pointed at it (DJANGO_DEBUG off unless set,
   so query logging does not distort timings) and migrates it.
3. Runs every benchmark of every module `bench/bench_*.py`. A module exposes either
   `BENCHMARKS` (a list of functions, each run on its own) or `run()`; each returns a list
   of result rows (`bench.result(...)`). A benchmark that raises is reported with its
   traceback and the others still run.
   After each benchmark `ledger_check`'s checks run on what it left: a breach counts as a
   crash.
4. Prints a table and writes `bench/results.json`: a list of
   `{"name", "value", "unit", "target", "ok", "n"}`.

Exit status: 0 when every benchmark ran, even if a target was missed (timings on a shared
machine must not fail CI; missed targets are printed as MISSED); 1 when a benchmark crashed
or none matched `-k`.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import pkgutil
import sys
import time
import traceback
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any
from urllib.parse import urlsplit

BENCH_DIR = Path(__file__).resolve().parent
ROOT = BENCH_DIR.parent
RESULTS_FILE = BENCH_DIR / "results.json"
DEFAULT_URL = "postgres://postgres@127.0.0.1:5432/feesync_bench"
KEYS = ("name", "value", "unit", "target", "ok", "n")

Benchmark = Callable[[], list[dict[str, Any]]]


def database_url() -> str:
    return os.environ.get("BENCH_DATABASE_URL", DEFAULT_URL)


def recreate_database(url: str) -> None:
    """Drop (forcibly: no leftover sessions may block it) and create the bench database."""
    import psycopg
    from psycopg import sql

    name = urlsplit(url).path.lstrip("/")
    if not name:
        raise SystemExit(f"BENCH_DATABASE_URL {url!r} names no database.")
    if "bench" not in name and os.environ.get("BENCH_ALLOW_ANY_DATABASE") != "1":
        raise SystemExit(
            f"Refusing to drop database {name!r}: the bench database's name must contain "
            "'bench' (or set BENCH_ALLOW_ANY_DATABASE=1)."
        )
    with psycopg.connect(url, dbname="postgres", autocommit=True) as conn:
        conn.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))


def setup_django(url: str) -> None:
    """Point Django at the bench database and bring its schema up to date."""
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    os.environ["DATABASE_URL"] = url
    os.environ["DJANGO_SETTINGS_MODULE"] = "config.settings.local"
    os.environ.setdefault("DJANGO_DEBUG", "false")
    import django
    from django.core.management import call_command

    django.setup()
    call_command("migrate", interactive=False, verbosity=0)


def module_names() -> list[str]:
    """The benchmark modules: bench/bench_*.py, in name order."""
    return sorted(
        info.name
        for info in pkgutil.iter_modules([str(BENCH_DIR)])
        if info.name.startswith("bench_")
    )


def benchmarks_of(module: ModuleType) -> list[tuple[str, Benchmark]]:
    """(label, function) for each benchmark a module declares."""
    declared = getattr(module, "BENCHMARKS", None)
    if declared is not None:
        return [(f"{module.__name__}.{fn.__name__}", fn) for fn in declared]
    return [(f"{module.__name__}.run", module.run)]


def checked(rows: Any, label: str) -> list[dict[str, Any]]:
    """The rows a benchmark returned, refused unless each is a well-formed result row."""
    if not isinstance(rows, list):
        raise TypeError(f"{label} returned {type(rows).__name__}, not a list of results")
    for row in rows:
        if not isinstance(row, dict) or set(row) != set(KEYS):
            raise TypeError(f"{label} returned a malformed result: {row!r} (keys: {KEYS})")
        if not isinstance(row["value"], int | float):
            raise TypeError(f"{label}: {row['name']} has a non-numeric value {row['value']!r}")
    return [{key: row[key] for key in KEYS} for row in rows]


def run_all(pattern: str | None) -> tuple[list[dict[str, Any]], list[str], int]:
    """Run every matching benchmark; returns (results, labels that crashed, how many ran)."""
    from django.db import connections

    results: list[dict[str, Any]] = []
    crashed: list[str] = []
    ran = 0
    for name in module_names():
        try:
            module = importlib.import_module(f"bench.{name}")
            units = benchmarks_of(module)
        except Exception:
            print(f"!! bench.{name} could not be loaded:\n{traceback.format_exc()}", flush=True)
            crashed.append(f"bench.{name}")
            continue
        for label, fn in units:
            if pattern and pattern not in label:
                continue
            ran += 1
            print(f"-- {label} ...", flush=True)
            started = time.perf_counter()
            try:
                rows = checked(fn(), label)
            except Exception:
                print(f"!! {label} crashed:\n{traceback.format_exc()}", flush=True)
                crashed.append(label)
                connections.close_all()  # the next benchmark starts on a clean connection
                continue
            results.extend(rows)
            print(f"   done in {time.perf_counter() - started:.1f}s", flush=True)
            if not ledger_holds(label):
                crashed.append(f"{label} (ledger_check)")
    return results, crashed, ran


def ledger_holds(label: str) -> bool:
    """`ledger_check` after every benchmark: a fast path that breaks the ledger's rules is a
    failure, however fast it was."""
    from apps.fees.selectors import ledger_report

    started = time.perf_counter()
    report = ledger_report()
    took = time.perf_counter() - started
    if report.ok:
        print(f"   ledger_check ok ({took:.1f}s)", flush=True)
        return True
    print(f"!! ledger_check fails after {label}:", flush=True)
    for breach in report.breaches[:10]:
        print(f"   {breach}", flush=True)
    return False


def _fmt(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.4g}" if abs(value) < 1000 else f"{value:,.0f}"
    return str(value)


def table(results: list[dict[str, Any]]) -> Iterator[str]:
    """The results as a plain-text table."""
    header = ("benchmark", "value", "unit", "target", "ok", "n")
    rows = [
        (
            r["name"],
            _fmt(r["value"]),
            r["unit"],
            _fmt(r["target"]),
            "-" if r["ok"] is None else ("ok" if r["ok"] else "MISSED"),
            _fmt(r["n"]),
        )
        for r in results
    ]
    widths = [max(len(str(c)) for c in column) for column in zip(header, *rows, strict=True)]
    for i, row in enumerate([header, *rows]):
        yield "  ".join(
            str(c).ljust(w) if j in (0, 2, 4) else str(c).rjust(w)
            for j, (c, w) in enumerate(zip(row, widths, strict=True))
        )
        if i == 0:
            yield "  ".join("-" * w for w in widths)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.run",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "-k",
        dest="pattern",
        help="Run only benchmarks whose label (bench.bench_x.function) contains this text.",
    )
    parser.add_argument(
        "--reuse-db",
        action="store_true",
        help="Keep the bench database (and its staged data) instead of "
        "recreating it; for iterating on a benchmark, not for figures.",
    )
    args = parser.parse_args(argv)
    url = database_url()
    if not args.reuse_db:
        recreate_database(url)
    setup_django(url)
    results, crashed, ran = run_all(args.pattern)
    if not ran and not crashed:
        print("No benchmark matched; bench/results.json left as it was.")
        return 1
    print()
    for line in table(results):
        print(line)
    RESULTS_FILE.write_text(json.dumps(results, indent=2) + "\n")
    missed = [r["name"] for r in results if r["ok"] is False]
    met = sum(1 for r in results if r["ok"] is True)
    print(
        f"\n{met} target(s) met, {len(missed)} missed{': ' + ', '.join(missed) if missed else ''}"
        f"; {len(crashed)} crashed{': ' + ', '.join(crashed) if crashed else ''}. "
        f"Wrote {RESULTS_FILE.relative_to(ROOT)}."
    )
    return 1 if crashed else 0


if __name__ == "__main__":
    sys.exit(main())

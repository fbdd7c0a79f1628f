"""The demographics export benchmark (DESIGN.md, Benchmarks), as result rows.

* `demographics_100k_sftp_s` (target 15 s): `export_demographics` of 100,000 students end to
  end (database -> CSV -> SFTP with a pinned host key) to the test suite's SFTP server on
  loopback. Floors measured in the same run: `demographics_100k_csv_only_s` (the same CSV
  built without sending it) and `demographics_100k_sftp_floor_s` (the same bytes, already
  in memory, uploaded to the same server); `demographics_100k_sftp_ratio` = real / the
  larger floor.

The measurement itself is `bench/demographics_sftp_probe.py` (`run(n) -> dict`); this module
only turns its answer into `bench.result` rows.
"""

from __future__ import annotations

from bench import Result, result
from bench.demographics_sftp_probe import TARGET_S
from bench.demographics_sftp_probe import run as probe

N_STUDENTS = 100_000


def demographics_100k_sftp() -> list[Result]:
    """Export the demographics of 100,000 students over SFTP, against its floors."""
    out = probe(N_STUDENTS)
    rows = int(out["n"])
    assert rows == N_STUDENTS, f"exported {rows} students, not {N_STUDENTS}"
    return [
        result("demographics_100k_sftp_s", out["value"], "s", target=TARGET_S, n=rows),
        result("demographics_100k_csv_only_s", out["csv_only_s"], "s", n=rows),
        result("demographics_100k_sftp_floor_s", out["sftp_floor_s"], "s", n=rows),
        result("demographics_100k_sftp_ratio", out["ratio"], "x", n=rows),
    ]


BENCHMARKS = [demographics_100k_sftp]


def run() -> list[Result]:
    """Every benchmark of this module (`bench.run` runs them one by one via BENCHMARKS)."""
    return [row for bench in BENCHMARKS for row in bench()]

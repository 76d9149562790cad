"""What SQLite's synchronous=FULL costs against NORMAL (WAL mode): one small commit, timed.

tinbao runs FULL so that a tip the citizen was told is saved survives a power cut; this prints
the price of that per commit on this machine's disk (a citizen's update commits once or twice).

    python -m bench.sqlite_sync [--commits 500] [--dir DIR]
"""

from __future__ import annotations

import argparse
import sqlite3
import statistics
import tempfile
import time
from pathlib import Path


def commit_times(mode: str, commits: int, where: Path) -> list[float]:
    """Seconds per commit of one 500-byte insert, in WAL mode with `synchronous=mode`."""
    with tempfile.TemporaryDirectory(dir=where) as folder:
        connection = sqlite3.connect(Path(folder) / "bench.db", isolation_level=None)
        connection.execute("PRAGMA journal_mode=WAL")
        connection.execute(f"PRAGMA synchronous={mode}")
        connection.execute("CREATE TABLE row (id INTEGER PRIMARY KEY, value TEXT)")
        times = []
        for _ in range(commits):
            started = time.perf_counter()
            connection.execute("BEGIN IMMEDIATE")
            connection.execute("INSERT INTO row (value) VALUES (?)", ("x" * 500,))
            connection.execute("COMMIT")
            times.append(time.perf_counter() - started)
        connection.close()
    return sorted(times)


def main() -> None:
    """Measure both modes twice, interleaved (the disk's noise shows in the spread)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--commits", type=int, default=500)
    parser.add_argument("--dir", type=Path, default=Path.cwd(), help="a folder on the disk to test")
    options = parser.parse_args()
    for mode in ("NORMAL", "FULL", "NORMAL", "FULL"):
        times = commit_times(mode, options.commits, options.dir)
        p99 = times[int(len(times) * 0.99) - 1]
        print(f"{mode:6}  median {statistics.median(times) * 1000:.3f} ms  p99 {p99 * 1000:.3f} ms")


if __name__ == "__main__":
    main()

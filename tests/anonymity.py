"""The anonymity scan: read every cell of every table and look for a person's identity."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import MetaData, select

from storage.db import Database


@dataclass
class ScanResult:
    """Where needles were found, where the control value was, and how much was read."""

    found: list[str] = field(default_factory=list)
    control_seen_in: set[str] = field(default_factory=set)
    scanned_cells: int = 0


def _as_text(value: Any) -> str:
    """A cell as searchable text (bytes decoded loosely, JSON and numbers stringified)."""
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value).decode("latin-1")
    return str(value)


async def scan_database(database_url: str, needles: list[str], control: str) -> ScanResult:
    """Search every cell for each needle; `control` (a staff id) proves the scan sees ids."""
    result = ScanResult()
    db = Database(database_url)
    metadata = MetaData()
    try:
        async with db.engine.connect() as connection:
            await connection.run_sync(metadata.reflect)
            for table in metadata.sorted_tables:
                for row in (await connection.execute(select(table))).mappings():
                    for column, value in row.items():
                        if value is None:
                            continue
                        result.scanned_cells += 1
                        text = _as_text(value)
                        if control in text:
                            result.control_seen_in.add(table.name)
                        result.found += [
                            f"{table.name}.{column} contains {needle!r}"
                            for needle in needles
                            if needle and needle in text
                        ]
    finally:
        await db.dispose()
    return result

"""Process start-up shared by `tinbao run` and `tinbao demo`: migrate, load reference data."""

from __future__ import annotations

import logging

from storage import communes
from storage.db import Database
from storage.migrate import upgrade_async

log = logging.getLogger(__name__)


async def prepare_database(url: str) -> None:
    """Upgrade the schema and load communes on first start (both idempotent)."""
    await upgrade_async(url)
    db = Database(url)
    try:
        async with db.session() as session:
            if await communes.commune_count(session) == 0:
                result = await communes.sync_communes(session)
                log.info(
                    "loaded %d provinces and %d communes",
                    result.provinces_added,
                    result.communes_added,
                )
    finally:
        await db.dispose()

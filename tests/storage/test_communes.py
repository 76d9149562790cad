"""Reference data: sync from vietnam-provinces and search without diacritics."""

from __future__ import annotations

from sqlmodel import func, select

from storage import communes
from storage.db import Database
from storage.models import Commune, Province
from storage.text import fold


def test_fold_removes_diacritics_and_case() -> None:
    assert fold("Xã Khả Cửu") == "xa kha cuu"
    assert fold("  Phường   Đống Đa ") == "phuong dong da"


async def test_sync_loads_34_provinces_and_3321_communes_idempotently(db: Database) -> None:
    async with db.session() as session:
        again = await communes.sync_communes(session)
        provinces = (await session.exec(select(func.count()).select_from(Province))).one()
        total = (await session.exec(select(func.count()).select_from(Commune))).one()
    assert (provinces, total) == (34, 3321)
    assert again == communes.SyncResult(0, 0, 0)


async def test_search_ignores_case_and_diacritics(db: Database) -> None:
    async with db.session() as session:
        results = await communes.search_communes(session, "kha cuu")
    assert results and results[0].name == "Xã Khả Cửu"
    assert results[0].label == "Xã Khả Cửu (Phú Thọ)"


async def test_repeated_names_show_their_province(db: Database) -> None:
    async with db.session() as session:
        names = (await session.exec(select(Commune.name))).all()
        repeated = next(name for name in names if names.count(name) > 1)
        results = await communes.search_communes(session, repeated, limit=50)
    same = [r for r in results if r.name == repeated]
    assert len(same) > 1
    assert len({r.label for r in same}) == len(same), "labels must tell the provinces apart"


async def test_whole_name_matches_rank_first(db: Database) -> None:
    async with db.session() as session:
        results = await communes.search_communes(session, "phuong ba dinh")
    assert results[0].name == "Phường Ba Đình"


async def test_province_paging_covers_every_commune(db: Database) -> None:
    async with db.session() as session:
        province = (await communes.list_provinces(session))[0]
        seen: list[int] = []
        page = 0
        while True:
            items, total = await communes.page_communes(
                session, province.code, page=page, per_page=10
            )
            if not items:
                break
            seen.extend(item.code for item in items)
            page += 1
    assert len(seen) == total == len(set(seen)) > 10

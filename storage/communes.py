"""Administrative reference data: load from `vietnam-provinces`, search, page."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import vietnam_provinces as vp
from sqlalchemy import func
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from storage.models import Commune, Province
from storage.text import fold

# Prefixes dropped from a province name for compact labels ("Tỉnh Phú Thọ" -> "Phú Thọ").
_PROVINCE_PREFIXES = ("Thành phố ", "Tỉnh ")


@dataclass(frozen=True)
class SyncResult:
    """What a reference-data sync changed."""

    provinces_added: int
    communes_added: int
    communes_updated: int


@dataclass(frozen=True)
class CommuneChoice:
    """A commune as shown to a citizen picking a place."""

    code: int
    name: str
    province_code: int
    province_name: str

    @property
    def label(self) -> str:
        """Commune name with its province, so names repeated across provinces are told apart."""
        return f"{self.name} ({self.province_name})"


def short_province_name(name: str) -> str:
    """Drop the administrative prefix from a province name."""
    for prefix in _PROVINCE_PREFIXES:
        if name.startswith(prefix):
            return name[len(prefix) :]
    return name


async def sync_communes(session: AsyncSession) -> SyncResult:
    """Insert or update all provinces and communes from `vietnam-provinces` (idempotent)."""
    existing_provinces = {p.code: p for p in (await session.exec(select(Province))).all()}
    provinces_added = 0
    for source in vp.Province.iter_all():
        code = int(source.code)
        if code not in existing_provinces:
            provinces_added += 1
            session.add(
                Province(
                    code=code,
                    name=source.name,
                    division_type=source.division_type.value,
                    codename=source.codename,
                    search_name=fold(source.name),
                )
            )
    await session.flush()
    existing = {c.code: c for c in (await session.exec(select(Commune))).all()}
    added = updated = 0
    for ward in vp.Ward.iter_all():
        code = int(ward.code)
        values: dict[str, Any] = {
            "name": ward.name,
            "division_type": ward.division_type.value,
            "codename": ward.codename,
            "province_code": int(ward.province_code),
            "search_name": fold(ward.name),
        }
        row = existing.get(code)
        if row is None:
            session.add(Commune(code=code, **values))
            added += 1
        elif any(getattr(row, key) != value for key, value in values.items()):
            for key, value in values.items():
                setattr(row, key, value)
            updated += 1
    await session.commit()
    return SyncResult(provinces_added, added, updated)


async def commune_count(session: AsyncSession) -> int:
    """Number of communes loaded."""
    return (await session.exec(select(func.count()).select_from(Commune))).one()


async def search_communes(
    session: AsyncSession, query: str, *, limit: int = 8
) -> list[CommuneChoice]:
    """Find communes by name ignoring case and diacritics; whole-name matches first."""
    folded = fold(query)
    if len(folded) < 2:
        return []
    pattern = "%" + folded.replace("%", "").replace("_", "") + "%"
    statement = (
        select(Commune, Province)
        .join(Province, col(Province.code) == col(Commune.province_code))
        .where(col(Commune.search_name).like(pattern))
        .limit(200)
    )
    rows = (await session.exec(statement)).all()

    def rank(row: tuple[Commune, Province]) -> tuple[int, int, str]:
        commune = row[0]
        bare = commune.search_name.split(" ", 1)[-1]  # without "xa"/"phuong"
        exact = 0 if folded in (bare, commune.search_name) else 1
        prefix = 0 if bare.startswith(folded) else 1
        return (exact, prefix, commune.search_name)

    rows = sorted(rows, key=rank)[:limit]
    return [_choice(commune, province) for commune, province in rows]


async def get_commune(session: AsyncSession, code: int) -> CommuneChoice | None:
    """Look up one commune with its province."""
    statement = (
        select(Commune, Province)
        .join(Province, col(Province.code) == col(Commune.province_code))
        .where(Commune.code == code)
    )
    row = (await session.exec(statement)).first()
    return _choice(*row) if row else None


async def list_provinces(session: AsyncSession) -> list[Province]:
    """All provinces, by name."""
    return list((await session.exec(select(Province).order_by(col(Province.search_name)))).all())


async def page_communes(
    session: AsyncSession, province_code: int, *, page: int, per_page: int
) -> tuple[list[CommuneChoice], int]:
    """One page of a province's communes (by name) and the total count."""
    province = await session.get(Province, province_code)
    if province is None:
        return [], 0
    total = (
        await session.exec(
            select(func.count()).select_from(Commune).where(Commune.province_code == province_code)
        )
    ).one()
    statement = (
        select(Commune)
        .where(Commune.province_code == province_code)
        .order_by(col(Commune.search_name))
        .offset(page * per_page)
        .limit(per_page)
    )
    communes = (await session.exec(statement)).all()
    return [_choice(c, province) for c in communes], total


def _choice(commune: Commune, province: Province) -> CommuneChoice:
    """Build the display record for a commune."""
    return CommuneChoice(
        code=commune.code,
        name=commune.name,
        province_code=province.code,
        province_name=short_province_name(province.name),
    )

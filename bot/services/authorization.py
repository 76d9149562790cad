"""Who may do what: one decision for a Telegram button, a console request and a CLI call.

A staff member's role gives a kind of work and a scope: an officer handles the tips of their
commune, a supervisor those of their province, an admin everything; outreach staff handle
outreach and no tip. `allowed` decides one action on one place; `tip_scope` turns the same
rule into a SQL condition, so a list or a search can never show a tip `allowed` would refuse.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from sqlalchemy import false, true
from sqlmodel import col, select

from storage.models import Commune, Staff, StaffRole, Tip


class Action(StrEnum):
    """What is being asked for."""

    TIP = "tip"  # read a tip's content, act on it, answer the tipster
    OUTREACH = "outreach"  # broadcasts, pledge campaigns
    SESSION = "session"  # outreach sessions ("buổi tuyên truyền"): create, head count, cancel
    URGENT = "urgent"  # a broadcast that ignores quiet hours
    STAFF = "staff"  # invites, revoking, the audit log
    REPORT = "report"  # statistics (counts only) for one's commune, province or the country


_ROLES: dict[Action, frozenset[str]] = {
    Action.TIP: frozenset({StaffRole.OFFICER, StaffRole.SUPERVISOR, StaffRole.ADMIN}),
    Action.OUTREACH: frozenset({StaffRole.OUTREACH, StaffRole.SUPERVISOR, StaffRole.ADMIN}),
    # Commune police hold most sessions themselves, so officers may too (in their commune).
    Action.SESSION: frozenset(
        {StaffRole.OFFICER, StaffRole.OUTREACH, StaffRole.SUPERVISOR, StaffRole.ADMIN}
    ),
    Action.URGENT: frozenset({StaffRole.SUPERVISOR, StaffRole.ADMIN}),
    Action.STAFF: frozenset({StaffRole.SUPERVISOR, StaffRole.ADMIN}),
    Action.REPORT: frozenset({StaffRole.OFFICER, StaffRole.SUPERVISOR, StaffRole.ADMIN}),
}


def may(staff: Staff | None, action: Action) -> bool:
    """Whether `staff` does this kind of work at all, somewhere (menus, commands, pages)."""
    return staff is not None and staff.active and staff.role in _ROLES[action]


def allowed(
    staff: Staff | None,
    action: Action,
    *,
    commune_code: int | None = None,
    province_code: int | None = None,
) -> bool:
    """Whether `staff` may do `action` on a commune (and its province), a province, or (with
    neither) the whole country."""
    if not may(staff, action):
        return False
    assert staff is not None
    if staff.role == StaffRole.ADMIN:
        return True
    if staff.role == StaffRole.OFFICER:
        return commune_code is not None and staff.commune_code == commune_code
    if staff.role == StaffRole.SUPERVISOR:
        return province_code is not None and staff.province_code == province_code
    # Outreach staff work where they were enrolled: a commune, a province, or the country.
    if staff.commune_code is not None:
        return commune_code is not None and staff.commune_code == commune_code
    return staff.province_code is None or staff.province_code == province_code


def tip_scope(staff: Staff | None) -> Any:
    """A SQL condition on `Tip` matching exactly the tips `allowed(staff, TIP, ...)` accepts."""
    return commune_scope(staff, Action.TIP, col(Tip.commune_code))


def commune_scope(staff: Staff | None, action: Action, commune: Any) -> Any:
    """A SQL condition on a commune-code column matching exactly the communes where
    `allowed(staff, action, ...)` accepts the action."""
    if staff is None or not may(staff, action):
        return false()
    if staff.role == StaffRole.ADMIN:
        return true()
    if staff.role == StaffRole.OFFICER or (
        staff.role == StaffRole.OUTREACH and staff.commune_code is not None
    ):
        return commune == staff.commune_code
    if staff.role == StaffRole.OUTREACH and staff.province_code is None:
        return true()  # outreach staff enrolled for the whole country
    in_province = select(Commune.code).where(Commune.province_code == staff.province_code)
    return commune.in_(in_province)

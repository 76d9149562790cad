"""Staff enrollment: invites, joining, and linking group chats as inboxes."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import update
from sqlmodel import col, select
from sqlmodel.ext.asyncio.session import AsyncSession

from bot.services import audit, authorization
from bot.services.authorization import Action
from storage.models import (
    Commune,
    ConsoleAccount,
    Inbox,
    InboxScope,
    Invite,
    Province,
    Staff,
    StaffRole,
)

INVITE_PREFIX = "j"  # deep-link payload prefix: ?start=j<CODE>
INVITE_ALPHABET = "ABCDEFGHJKMNPQRSTVWXYZ23456789"
INVITE_LENGTH = 10  # ~49 bits, single-use and expiring


class EnrollmentError(Exception):
    """A refusal with a reason code the channel layer translates."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class NewInvite:
    """An invite as printed to the operator: the code is shown once and never stored."""

    code: str
    invite: Invite


def hash_invite_code(code: str) -> str:
    """Hash an invite code for storage and lookup (codes are random: no key needed)."""
    return hashlib.sha256(code.strip().upper().encode()).hexdigest()


async def create_invite(
    session: AsyncSession,
    *,
    role: str,
    commune_code: int | None,
    province_code: int | None,
    now: datetime,
    ttl: timedelta = timedelta(days=7),
) -> NewInvite:
    """Create a single-use invite for a role and scope (commits)."""
    if role not in StaffRole.ALL:
        raise EnrollmentError("bad_role")
    if role == StaffRole.OFFICER and commune_code is None:
        raise EnrollmentError("officer_needs_commune")
    if role == StaffRole.SUPERVISOR and province_code is None:
        raise EnrollmentError("supervisor_needs_province")
    if commune_code is not None:
        commune = await session.get(Commune, commune_code)
        if commune is None:
            raise EnrollmentError("unknown_commune")
        province_code = province_code or commune.province_code
    if province_code is not None and await session.get(Province, province_code) is None:
        raise EnrollmentError("unknown_province")
    code = "".join(secrets.choice(INVITE_ALPHABET) for _ in range(INVITE_LENGTH))
    invite = Invite(
        code_hash=hash_invite_code(code),
        role=role,
        commune_code=commune_code,
        province_code=province_code,
        expires_at=now + ttl,
        created_at=now,
    )
    session.add(invite)
    await session.commit()
    return NewInvite(code=code, invite=invite)


CONSOLE_LINK_TTL = timedelta(minutes=30)


async def create_console_link(
    session: AsyncSession, *, staff: Staff, now: datetime, ttl: timedelta = CONSOLE_LINK_TTL
) -> NewInvite:
    """A single-use code that gives an enrolled staff member a console login (commits).

    The code is an invite naming their own row: their role and scope come from it, and a
    second code replaces the first (only the newest one works).
    """
    if not staff.active or staff.id is None:
        raise EnrollmentError("not_allowed")
    existing = (
        await session.exec(select(ConsoleAccount.id).where(ConsoleAccount.staff_id == staff.id))
    ).first()
    if existing is not None:
        raise EnrollmentError("console_exists")
    await session.exec(
        update(Invite)
        .where(
            col(Invite.for_staff_id) == staff.id,
            col(Invite.used_at).is_(None),
            col(Invite.revoked_at).is_(None),
        )
        .values(revoked_at=now)
    )
    code = "".join(secrets.choice(INVITE_ALPHABET) for _ in range(INVITE_LENGTH))
    invite = Invite(
        code_hash=hash_invite_code(code),
        role=staff.role,
        commune_code=staff.commune_code,
        province_code=staff.province_code,
        expires_at=now + ttl,
        created_at=now,
        for_staff_id=staff.id,
    )
    session.add(invite)
    audit.record(session, actor=staff, action="console_link_code", now=now)
    await session.commit()
    return NewInvite(code=code, invite=invite)


async def join(
    session: AsyncSession,
    *,
    code: str,
    platform: str,
    platform_user_id: int | str,
    display_name: str,
    now: datetime,
) -> Staff:
    """Enroll the person redeeming an invite; the invite is used up (commits)."""
    invite = await usable_invite(session, code=code, now=now)
    if invite.for_staff_id is not None:  # a console link code opens a console login only
        raise EnrollmentError("invite_unknown")
    staff = await find_staff(session, platform=platform, platform_user_id=platform_user_id)
    if staff is None:
        staff = Staff(
            platform=platform, platform_user_id=str(platform_user_id), display_name="", role=""
        )
    await redeem_invite(session, invite=invite, staff=staff, display_name=display_name, now=now)
    await session.commit()
    return staff


async def usable_invite(session: AsyncSession, *, code: str, now: datetime) -> Invite:
    """The invite a code names, if it may still be redeemed; EnrollmentError otherwise."""
    invite = (
        await session.exec(select(Invite).where(Invite.code_hash == hash_invite_code(code)))
    ).first()
    if invite is None or invite.revoked_at is not None:
        raise EnrollmentError("invite_unknown")
    if invite.used_at is not None:
        raise EnrollmentError("invite_used")
    if invite.expires_at <= now:
        raise EnrollmentError("invite_expired")
    return invite


async def redeem_invite(
    session: AsyncSession, *, invite: Invite, staff: Staff, display_name: str, now: datetime
) -> None:
    """Give `staff` the invite's role and scope and use the invite up (no commit)."""
    before = _staff_view(staff) if staff.id else {}
    staff.display_name = display_name[:120]
    staff.role = invite.role
    staff.commune_code = invite.commune_code
    staff.province_code = invite.province_code
    staff.active = True
    session.add(staff)
    await session.flush()
    invite.used_at = now
    invite.used_by_staff_id = staff.id
    session.add(invite)
    audit.record(
        session, actor=staff, action="staff_join", before=before, after=_staff_view(staff), now=now
    )


async def find_staff(
    session: AsyncSession, *, platform: str, platform_user_id: int | str
) -> Staff | None:
    """The staff record of an account, active or not (ids compared as their text)."""
    statement = select(Staff).where(
        Staff.platform == platform, Staff.platform_user_id == str(platform_user_id)
    )
    return (await session.exec(statement)).first()


async def active_staff(
    session: AsyncSession, *, platform: str, platform_user_id: int | str
) -> Staff | None:
    """The active staff record of an account, if any."""
    staff = await find_staff(session, platform=platform, platform_user_id=platform_user_id)
    return staff if staff is not None and staff.active else None


async def link_inbox(
    session: AsyncSession,
    *,
    staff: Staff,
    platform: str,
    chat_id: int,
    title: str,
    target: str | None,
    now: datetime,
) -> Inbox:
    """Make a group chat the inbox of a commune, a province or the admins (commits).

    `target` is a commune or province code, "admin", or None for the actor's own scope.
    """
    scope, commune_code, province_code = await _resolve_target(session, staff, target)
    existing = (
        await session.exec(
            select(Inbox).where(
                Inbox.platform == platform, Inbox.chat_id == chat_id, Inbox.status == "active"
            )
        )
    ).all()
    for inbox in existing:  # a group is one inbox at a time
        inbox.status = "unlinked"
        inbox.updated_at = now
        session.add(inbox)
    replaced = await _active_inbox_for(session, scope, commune_code, province_code)
    if replaced is not None:  # a commune has one inbox: the newest link wins
        replaced.status = "unlinked"
        replaced.updated_at = now
        session.add(replaced)
    inbox = Inbox(
        platform=platform,
        chat_id=chat_id,
        scope=scope,
        commune_code=commune_code,
        province_code=province_code,
        title=title[:255],
        linked_by_staff_id=staff.id,
        created_at=now,
        updated_at=now,
    )
    session.add(inbox)
    await session.flush()
    audit.record(
        session,
        actor=staff,
        action="inbox_link",
        after={
            "inbox": inbox.id,
            "scope": scope,
            "commune": commune_code,
            "province": province_code,
        },
        now=now,
    )
    await session.commit()
    return inbox


async def unlink_inbox(
    session: AsyncSession, *, staff: Staff | None, platform: str, chat_id: int, now: datetime
) -> Inbox:
    """Stop using a group as an inbox (commits); staff None means the operator's CLI."""
    inbox = (
        await session.exec(
            select(Inbox).where(
                Inbox.platform == platform, Inbox.chat_id == chat_id, Inbox.status == "active"
            )
        )
    ).first()
    if inbox is None:
        raise EnrollmentError("not_an_inbox")
    if staff is not None and not may_manage_inbox(staff, inbox):
        raise EnrollmentError("not_allowed")
    inbox.status = "unlinked"
    inbox.updated_at = now
    session.add(inbox)
    audit.record(session, actor=staff, action="inbox_unlink", before={"inbox": inbox.id}, now=now)
    await session.commit()
    return inbox


def may_manage_inbox(staff: Staff, inbox: Inbox) -> bool:
    """Whether a staff member may link or unlink this inbox: whoever may act on every tip it
    receives (a commune's officers, the province's supervisors, admins)."""
    commune = inbox.commune_code if inbox.scope == InboxScope.COMMUNE else None
    placed = inbox.scope in (InboxScope.COMMUNE, InboxScope.PROVINCE)
    province = inbox.province_code if placed else None
    return authorization.allowed(staff, Action.TIP, commune_code=commune, province_code=province)


async def _resolve_target(
    session: AsyncSession, staff: Staff, target: str | None
) -> tuple[str, int | None, int | None]:
    """Decide (scope, commune, province) of a /link and check the actor may make it: an inbox
    is theirs to link when they may act on every tip it will receive."""
    if not authorization.may(staff, Action.TIP):
        raise EnrollmentError("not_allowed")
    place = await _link_place(session, staff, target)
    _scope, commune_code, province_code = place
    if not authorization.allowed(
        staff, Action.TIP, commune_code=commune_code, province_code=province_code
    ):
        raise EnrollmentError("not_allowed")
    return place


async def _link_place(
    session: AsyncSession, staff: Staff, target: str | None
) -> tuple[str, int | None, int | None]:
    """The inbox a /link names: none given means the actor's own commune, province or all."""
    if target is None:
        if staff.role == StaffRole.OFFICER:
            return InboxScope.COMMUNE, staff.commune_code, staff.province_code
        if staff.role == StaffRole.SUPERVISOR:
            return InboxScope.PROVINCE, None, staff.province_code
        return InboxScope.ADMIN, None, None
    if target.lower() == "admin":
        return InboxScope.ADMIN, None, None
    if not target.isdigit():
        raise EnrollmentError("bad_target")
    code = int(target)
    commune = await session.get(Commune, code)
    # Commune codes have five digits, province codes two: they never collide.
    if commune is not None and len(target) > 2:
        return InboxScope.COMMUNE, code, commune.province_code
    if await session.get(Province, code) is None:
        raise EnrollmentError("bad_target")
    return InboxScope.PROVINCE, None, code


async def _active_inbox_for(
    session: AsyncSession, scope: str, commune_code: int | None, province_code: int | None
) -> Inbox | None:
    """The current active inbox of a scope."""
    statement = select(Inbox).where(Inbox.status == "active", Inbox.scope == scope)
    if scope == InboxScope.COMMUNE:
        statement = statement.where(Inbox.commune_code == commune_code)
    elif scope == InboxScope.PROVINCE:
        statement = statement.where(Inbox.province_code == province_code)
    return (await session.exec(statement.order_by(col(Inbox.id).desc()))).first()


async def list_staff(session: AsyncSession) -> list[Staff]:
    """Everyone enrolled, active first."""
    statement = select(Staff).order_by(col(Staff.active).desc(), col(Staff.id))
    return list((await session.exec(statement)).all())


async def list_inboxes(session: AsyncSession, *, include_inactive: bool = False) -> list[Inbox]:
    """Inboxes, active ones unless asked otherwise."""
    statement = select(Inbox).order_by(col(Inbox.id))
    if not include_inactive:
        statement = statement.where(Inbox.status == "active")
    return list((await session.exec(statement)).all())


async def revoke_staff(
    session: AsyncSession, *, staff_id: int, actor: Staff | None, now: datetime
) -> Staff:
    """Deactivate a staff member (commits)."""
    staff = await session.get(Staff, staff_id)
    if staff is None:
        raise EnrollmentError("unknown_staff")
    before = _staff_view(staff)
    staff.active = False
    session.add(staff)
    audit.record(
        session,
        actor=actor,
        action="staff_revoke",
        before=before,
        after=_staff_view(staff),
        now=now,
    )
    await session.commit()
    return staff


async def revoke_invite(session: AsyncSession, *, invite_id: int, now: datetime) -> Invite:
    """Revoke an unused invite (commits)."""
    invite = await session.get(Invite, invite_id)
    if invite is None:
        raise EnrollmentError("invite_unknown")
    invite.revoked_at = now
    session.add(invite)
    await session.commit()
    return invite


def _staff_view(staff: Staff) -> dict[str, object]:
    """The audited fields of a staff record."""
    return {
        "staff": staff.id,
        "role": staff.role,
        "commune": staff.commune_code,
        "province": staff.province_code,
        "active": staff.active,
    }

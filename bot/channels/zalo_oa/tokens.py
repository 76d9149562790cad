"""The Official Account's tokens: one sealed row, refreshed before expiry by one instance at once.

Zalo's refresh token is single-use: the answer to a refresh carries the only valid next one.
So the new pair, its expiry and the refresh time are written in one UPDATE right after the
answer, and never held only in memory. Instances agree on who refreshes with a lease column
(a conditional UPDATE, so it works on SQLite and PostgreSQL alike): the others wait and read
the winner's pair. A process killed while its refresh request is in flight leaves the old
pair in the row; the lease runs out and another instance refreshes with it. If Zalo refuses
the refresh token (it was used, or three months passed), the row turns `reauthorize`:
`/readyz` and `tinbao zalo oa status` say so until an operator runs
`tinbao zalo oa token set NEW_REFRESH_TOKEN`.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

import httpx
from sqlalchemy import update
from sqlmodel import col

from bot.channels.zalo_oa.client import ZaloOaApiError, ZaloOaClient
from bot.services.anonymity import Keyring, RouteError
from storage.db import Database
from storage.models import ZaloOaToken
from storage.types import utcnow

log = logging.getLogger(__name__)

# Refresh this long before the access token (25 h) expires.
REFRESH_MARGIN = timedelta(hours=1)
# Longer than a refresh request may take (the HTTP timeout is 15 s): a crashed refresher's lease
# runs out after this, and another instance refreshes with the pair still stored.
LEASE = timedelta(seconds=20)
WAIT_POLL_SECONDS = 0.2
REAUTHORIZE = "reauthorize"


class TokenUnavailableError(Exception):
    """No usable access token: none was set, or the refresh token was refused."""


@dataclass(frozen=True)
class TokenStatus:
    """What `tinbao zalo oa status` and /readyz show (never a token)."""

    configured: bool
    state: str = ""
    access_expires_at: datetime | None = None
    refreshed_at: datetime | None = None
    last_error: str | None = None


class TokenStore:
    """Reads, caches and refreshes one OA's tokens."""

    def __init__(
        self,
        *,
        db: Database,
        keyring: Keyring,
        client: ZaloOaClient,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.db = db
        self.keyring = keyring
        self.client = client
        self.app_id = client.app_id
        self.clock = clock
        self._cached: tuple[str, datetime] | None = None
        self._local = asyncio.Lock()

    async def set_refresh_token(self, refresh_token: str) -> TokenStatus:
        """An operator's new refresh token: refresh with it now and store the pair it gives."""
        now = self.clock()
        pair = await self.client.refresh(refresh_token, now)
        async with self.db.session() as session:
            row = await session.get(ZaloOaToken, self.app_id)
            row = row or ZaloOaToken(
                app_id=self.app_id,
                access_token=b"",
                refresh_token=b"",
                access_expires_at=now,
                refreshed_at=now,
            )
            row.access_token = self.keyring.seal_credential(pair.access_token)
            row.refresh_token = self.keyring.seal_credential(pair.refresh_token)
            row.access_expires_at = pair.access_expires_at
            row.refreshed_at = now
            row.refresh_lease_until = None
            row.state = "ok"
            row.last_error = None
            session.add(row)
            await session.commit()
        self._cached = (pair.access_token, pair.access_expires_at)
        return await self.status()

    async def status(self) -> TokenStatus:
        """The row's state, expiry and last error."""
        async with self.db.session() as session:
            row = await session.get(ZaloOaToken, self.app_id)
        if row is None:
            return TokenStatus(configured=False)
        return TokenStatus(True, row.state, row.access_expires_at, row.refreshed_at, row.last_error)

    async def access_token(self) -> str:
        """A valid access token, refreshing first when it is close to expiry."""
        cached = self._cached
        if cached is not None and cached[1] - self.clock() > REFRESH_MARGIN:
            return cached[0]
        return await self.refresh_if_due()

    def forget(self, access_token: str) -> None:
        """Zalo refused this access token: read (or refresh) again on the next call."""
        if self._cached is not None and self._cached[0] == access_token:
            self._cached = None

    async def refresh_if_due(self, *, force_if: str | None = None) -> str:
        """Refresh when the stored token is due (or is `force_if`, just refused); return it."""
        async with self._local:  # one refresh per process; the lease covers other processes
            deadline = time.monotonic() + LEASE.total_seconds() + 5
            while True:
                row = await self._read()
                token = self._open(row.access_token)
                due = row.access_expires_at - self.clock() <= REFRESH_MARGIN
                if not due and token != force_if:
                    self._cached = (token, row.access_expires_at)
                    return token
                if row.state == REAUTHORIZE:
                    raise TokenUnavailableError(row.last_error or "the refresh token was refused")
                if await self._take_lease(row):
                    return await self._refresh(row)
                if time.monotonic() > deadline:
                    raise TokenUnavailableError("another instance's refresh did not finish")
                await asyncio.sleep(WAIT_POLL_SECONDS)  # another instance refreshes: wait

    async def _read(self) -> ZaloOaToken:
        async with self.db.session() as session:
            row = await session.get(ZaloOaToken, self.app_id)
        if row is None:
            raise TokenUnavailableError("no OA token set: run `tinbao zalo oa token set`")
        return row

    def _open(self, sealed: bytes) -> str:
        try:
            return self.keyring.open_credential(sealed)
        except RouteError as error:
            raise TokenUnavailableError(f"the stored token cannot be opened ({error})") from error

    async def _take_lease(self, row: ZaloOaToken) -> bool:
        """Claim the refresh for this process, unless another holds a live lease."""
        now = self.clock()
        async with self.db.session() as session:
            result = await session.exec(
                update(ZaloOaToken)
                .where(
                    col(ZaloOaToken.app_id) == self.app_id,
                    col(ZaloOaToken.refreshed_at) == row.refreshed_at,
                    (col(ZaloOaToken.refresh_lease_until).is_(None))
                    | (col(ZaloOaToken.refresh_lease_until) < now),
                )
                .values(refresh_lease_until=now + LEASE)
            )
            await session.commit()
        return bool(result.rowcount)

    async def _refresh(self, row: ZaloOaToken) -> str:
        """Trade the stored refresh token; write the new pair in the same UPDATE as its time."""
        now = self.clock()
        refresh_token = self._open(row.refresh_token)
        try:
            pair = await self.client.refresh(refresh_token, now)
        except ZaloOaApiError as error:
            # The refresh token itself was refused: retrying cannot help, a person must act.
            log.error("Zalo refused the OA refresh token (%s); re-authorize the OA", error.code)
            await self._finish_lease(state=REAUTHORIZE, error=str(error))
            raise TokenUnavailableError(str(error)) from error
        except (httpx.HTTPError, OSError) as error:
            await self._finish_lease(state="ok", error=f"refresh failed: {type(error).__name__}")
            raise TokenUnavailableError("the token endpoint is unreachable") from error
        async with self.db.session() as session:
            await session.exec(
                update(ZaloOaToken)
                .where(col(ZaloOaToken.app_id) == self.app_id)
                .values(
                    access_token=self.keyring.seal_credential(pair.access_token),
                    refresh_token=self.keyring.seal_credential(pair.refresh_token),
                    access_expires_at=pair.access_expires_at,
                    refreshed_at=now,
                    refresh_lease_until=None,
                    state="ok",
                    last_error=None,
                )
            )
            await session.commit()
        log.info("Zalo OA access token refreshed")
        self._cached = (pair.access_token, pair.access_expires_at)
        return pair.access_token

    async def _finish_lease(self, *, state: str, error: str) -> None:
        async with self.db.session() as session:
            await session.exec(
                update(ZaloOaToken)
                .where(col(ZaloOaToken.app_id) == self.app_id)
                .values(refresh_lease_until=None, state=state, last_error=error[:255])
            )
            await session.commit()

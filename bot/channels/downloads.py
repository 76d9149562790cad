"""Fetching a file a platform points at (Zalo sends URLs, not file ids), with a size cap."""

from __future__ import annotations

import httpx


async def fetch_limited(http: httpx.AsyncClient, url: str, max_bytes: int) -> bytes:
    """GET `url`; raise ValueError once it passes `max_bytes` (nothing more is read)."""
    async with http.stream("GET", url) as response:
        response.raise_for_status()
        declared = response.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > max_bytes:
            raise ValueError("file too big")
        chunks: list[bytes] = []
        size = 0
        async for chunk in response.aiter_bytes():
            size += len(chunk)
            if size > max_bytes:
                raise ValueError("file too big")
            chunks.append(chunk)
    return b"".join(chunks)

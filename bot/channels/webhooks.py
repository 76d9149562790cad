"""What every webhook endpoint checks before it reads an update: secret, readiness, size.

A refusal is counted on /metrics by channel and reason (never by sender), and answered with a
bare status: 403 for a wrong or missing secret (nothing is read), 503 while the channel is not
taking updates (the platform retries, maybe on another instance), 413 for an oversized body.
"""

from __future__ import annotations

import hmac

from starlette.requests import Request
from starlette.responses import Response

from tinbao import metrics

# Updates are a few kB; a megabyte is generous and bounds what a forged request can make us hold.
MAX_BODY_BYTES = 1 << 20


def refuse(channel: str, reason: str, status: int) -> Response:
    """Count a refused webhook request and answer it."""
    metrics.WEBHOOK_REJECTED.labels(channel=channel, reason=reason).inc()
    return Response(status_code=status)


async def guarded_body(
    request: Request,
    *,
    channel: str,
    header: str,
    secret: bytes | None,
    accepting: bool,
) -> bytes | Response:
    """The request's body, or the refusal to answer with.

    With `secret` the header must hold it (compared in constant time, before the body is read);
    without, the header must merely be present (a signature the channel checks on the body).
    """
    given = request.headers.get(header, "").encode()
    if not given or (secret is not None and not hmac.compare_digest(given, secret)):
        return refuse(channel, "secret" if secret is not None else "signature", 403)
    if not accepting:
        return Response(status_code=503)
    body = await request.body()
    if len(body) > MAX_BODY_BYTES:
        return refuse(channel, "too_large", 413)
    return body

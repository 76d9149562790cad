"""Run the ASGI app under uvicorn, draining on SIGTERM.

SIGTERM (systemd stop, `docker stop`): /readyz turns 503 at once so the proxy stops choosing
this instance, uvicorn closes its socket and finishes the requests in flight, then the
lifespan shutdown handles every update already answered and stops the senders, whose batch in
hand is finished (what a SIGKILL would leave is reclaimed by lease elsewhere).
"""

from __future__ import annotations

import os
import tempfile
from types import FrameType
from typing import Any

import uvicorn

from tinbao.settings import Settings

# Enough for a busy instance's queued updates and its senders' batch; systemd's
# TimeoutStopSec and compose's stop_grace_period are set above it.
GRACEFUL_SECONDS = 30
# An idle connection must be closed by the client side first: a server closing it at the
# moment the proxy reuses it (uvicorn's default is 5 s) makes the proxy's request fail with
# nothing processed. Caddy keeps idle upstream connections 2 minutes, nginx's upstream
# keepalive_timeout is 60 s: stay above both.
KEEP_ALIVE_SECONDS = 130


class DrainingServer(uvicorn.Server):
    """A uvicorn server that marks the app as draining the moment a signal arrives."""

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        """Turn /readyz to 503 before uvicorn starts shutting down."""
        app = self.config.app
        state = getattr(getattr(app, "state", None), "tinbao", None)
        if state is not None:
            state.draining = True
        super().handle_exit(sig, frame)


def run(settings: Settings, *, host: str, port: int, workers: int) -> None:
    """Serve until stopped (`workers` > 1: that many processes on one socket)."""
    common: dict[str, Any] = {
        "host": host,
        "port": port,
        "lifespan": "on",
        "log_config": None,  # tinbao.logs configured the root logger (JSON, redaction)
        "access_log": False,  # one line per webhook request is noise; updates are logged
        "timeout_graceful_shutdown": GRACEFUL_SECONDS,
        "timeout_keep_alive": KEEP_ALIVE_SECONDS,
        "proxy_headers": True,
        "server_header": False,
    }
    if workers > 1:
        # Each worker is its own interpreter: counters are summed across them through files
        # (prometheus_client's multiprocess mode), set up before any worker imports it.
        os.environ.setdefault(
            "PROMETHEUS_MULTIPROC_DIR", tempfile.mkdtemp(prefix="tinbao-metrics-")
        )
        uvicorn.run(
            "tinbao.serve.app:app_from_environment", factory=True, workers=workers, **common
        )
        return
    from tinbao.serve.app import create_app

    config = uvicorn.Config(create_app(settings), **common)
    DrainingServer(config).run()

"""Serving an emulator's ASGI app: in a background thread, or inside the running loop.

Every emulator (Telegram Bot API, Zalo OA, Zalo Bot) keeps its state in the serving event loop
and has long polls or waits to release before the server can stop; `release` does that.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import uvicorn

START_TIMEOUT = 10.0


def bind_socket(host: str, port: int) -> socket.socket:
    """Bind a listening socket (port 0 picks a free port) before the server starts."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # An explicit IPPROTO_TCP matters: asyncio only sets TCP_NODELAY on accepted sockets whose
    # proto says TCP, and without it every keep-alive response stalls ~40 ms (Nagle + ACK).
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


def url_of(host: str, sock: socket.socket) -> str:
    """The base URL a bound socket serves."""
    port = sock.getsockname()[1]
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def make_server(app: Any) -> uvicorn.Server:
    """A quiet uvicorn server for an emulator app."""
    config = uvicorn.Config(
        app,
        log_config=None,  # leave the host application's logging alone
        log_level="warning",
        access_log=False,
        lifespan="on",
        timeout_graceful_shutdown=2,
        # Above httpx's 5 s keep-alive expiry (PTB's and the test clients' pools): with
        # uvicorn's default of 5 s both ends close an idle connection at the same moment and a
        # request sent on it meanwhile fails with ReadError, which no real Telegram causes.
        timeout_keep_alive=75,
    )
    return uvicorn.Server(config)


@dataclass
class RunningServer:
    """An emulator serving in a background thread."""

    url: str
    emulator: Any
    _server: uvicorn.Server
    _release: Callable[[], None]
    _thread: threading.Thread | None = None
    _loop: asyncio.AbstractEventLoop | None = field(default=None, repr=False)

    def stop(self, timeout: float = 10.0) -> None:
        """Stop serving and wait for the thread to end."""
        if self._loop is not None and not self._loop.is_closed():
            # State belongs to the server's loop, so waiters are released from inside it.
            with contextlib.suppress(RuntimeError):
                self._loop.call_soon_threadsafe(self._release)
        self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout)

    def __enter__(self) -> RunningServer:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


def start_in_thread(
    emulator: Any, app: Any, release: Callable[[], None], host: str = "127.0.0.1", port: int = 0
) -> RunningServer:
    """Serve in a daemon thread with its own event loop; returns once accepting."""
    sock = bind_socket(host, port)
    server = make_server(app)
    running = RunningServer(
        url=url_of(host, sock), emulator=emulator, _server=server, _release=release
    )

    async def serve() -> None:
        running._loop = asyncio.get_running_loop()
        await server.serve(sockets=[sock])

    thread = threading.Thread(target=asyncio.run, args=(serve(),), daemon=True)
    running._thread = thread
    thread.start()
    deadline = time.monotonic() + START_TIMEOUT
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            sock.close()
            raise RuntimeError("the emulator did not start")
        time.sleep(0.005)
    return running


@contextlib.asynccontextmanager
async def serving(
    app: Any, release: Callable[[], None], host: str = "127.0.0.1", port: int = 0
) -> AsyncIterator[str]:
    """Serve inside the running event loop; yields the base URL."""
    sock = bind_socket(host, port)
    server = make_server(app)
    task = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        while not server.started:
            if task.done():
                task.result()
                raise RuntimeError("the emulator did not start")
            await asyncio.sleep(0.005)
        yield url_of(host, sock)
    finally:
        release()
        server.should_exit = True
        await task
        sock.close()

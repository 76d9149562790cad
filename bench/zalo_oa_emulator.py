"""The Zalo OA emulator as a process of its own, for bench/intake.py --channel zalo_oa.

    python bench/zalo_oa_emulator.py --port 8301 --app-id ... --oa-secret-key ... --app-secret ...

A separate process keeps the emulator's CPU apart from the driver's (a thread would share the
driver's process and its GIL). Serves until SIGTERM or Ctrl+C.
"""

from __future__ import annotations

import argparse
import asyncio
import sys

from sandbox.serving import bind_socket, make_server, url_of
from sandbox.zalo_oa import ZaloOaEmulator


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Read the command line."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (127.0.0.1)")
    parser.add_argument("--port", type=int, required=True, help="port to listen on")
    parser.add_argument("--app-id", required=True, help="the OA's app id")
    parser.add_argument("--oa-secret-key", required=True, help="signs the webhook events")
    parser.add_argument("--app-secret", required=True, help="the token endpoint's secret_key")
    parser.add_argument(
        "--retry-delay", type=float, default=2.0, help="seconds before an event is sent again (2)"
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Serve one OA on the given port until stopped."""
    args = parse_args(argv)
    emulator = ZaloOaEmulator(
        app_id=args.app_id,
        oa_secret_key=args.oa_secret_key,
        app_secret=args.app_secret,
        retry_delay=args.retry_delay,
    )
    sock = bind_socket(args.host, args.port)
    emulator.url = url_of(args.host, sock)  # file links in events point here
    server = make_server(emulator.app)
    try:
        asyncio.run(server.serve(sockets=[sock]))
    except KeyboardInterrupt:
        pass
    finally:
        sock.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""A tip's location on a Leaflet map from the deployment's tile server, in Debian's Chromium;
when no tile can be loaded the map gives way to the coordinates and the link."""

from __future__ import annotations

import io
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from PIL import Image
from sqlmodel import select

from storage.models import Tip
from tests.console.browser import Officer
from tests.console.conftest import invite, point_telegram_webhook
from tests.faults.tipline import KHA_CUU, Processes, TipLine
from tests.serve.conftest import Instance, free_port

pytestmark = pytest.mark.faults  # real processes

LAT, LON = 21.2112, 105.2021  # a field in Khả Cửu


def _tile() -> bytes:
    """One 256x256 PNG, the answer to every tile request."""
    buffer = io.BytesIO()
    Image.new("RGB", (256, 256), (200, 220, 200)).save(buffer, "PNG")
    return buffer.getvalue()


@pytest.fixture
def tile_server() -> Iterator[tuple[str, list[str]]]:
    """A tile server on localhost (the province's own, in a real install); the paths asked."""
    asked: list[str] = []
    body = _tile()

    class Tiles(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            """Every path is a tile."""
            asked.append(self.path)
            self.send_response(200)
            self.send_header("Content-Type", "image/png")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            """Quiet."""

    server = ThreadingHTTPServer(("127.0.0.1", 0), Tiles)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/{{z}}/{{x}}/{{y}}.png", asked
    server.shutdown()


async def test_the_map_shows_tiles_or_falls_back_to_coordinates(
    start_serve: Callable[..., Any],
    processes: Processes,
    tipline: TipLine,
    chromium: Any,
    artifacts: Path,
    tile_server: tuple[str, list[str]],
) -> None:
    tiles, asked = tile_server
    mapped: Instance = await start_serve(TINBAO_CONSOLE_TILE_URL=tiles)
    # A tile server the network cannot reach: nothing listens on that port.
    unreachable = f"http://127.0.0.1:{free_port()}/{{z}}/{{x}}/{{y}}.png"
    cut_off: Instance = await start_serve(TINBAO_CONSOLE_TILE_URL=unreachable)
    point_telegram_webhook(processes, mapped.url)
    short_id = await tipline.send_tip(1)
    async with tipline.db.session() as session:
        tip = (await session.exec(select(Tip).where(Tip.short_id == short_id))).one()
        tip.location_lat, tip.location_lon = LAT, LON  # as if the citizen had shared it
        session.add(tip)
        await session.commit()
        tip_id = tip.id

    context = await chromium.new_context(viewport={"width": 1280, "height": 900}, locale="vi-VN")
    officer = Officer(await context.new_page(), mapped.url, artifacts)
    await officer.open_account(invite(processes, "officer", commune=KHA_CUU), "Cán bộ", "bando1")
    page = officer.page
    await page.goto(f"{mapped.url}/console/tips/{tip_id}")
    await page.wait_for_selector("#map[data-state='loaded']")
    assert await page.locator("#map .leaflet-marker-icon").count() == 1
    assert asked and all(path.endswith(".png") for path in asked)
    assert await page.locator("#map-fallback").is_hidden()
    await officer.shot("map")

    # The same page from the instance whose tile server is out of reach (cookies are per host).
    await page.goto(f"{cut_off.url}/console/tips/{tip_id}")
    await page.wait_for_selector("#map-fallback", state="visible")
    assert await page.locator("#map").is_hidden()
    assert "21.21120, 105.20210" in await page.locator(".location code").inner_text()
    await officer.shot("map-fallback")
    await context.close()
    assert not officer.errors, officer.errors

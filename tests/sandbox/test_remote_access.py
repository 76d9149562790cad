"""An emulator bound beyond loopback: refused without --allow-remote, and then its control API
asks other machines for the token (the Bot API stays open: the bot token guards it)."""

from __future__ import annotations

import httpx
import pytest
import typer
from typer.testing import CliRunner

from sandbox.access import TOKEN_COOKIE, TOKEN_HEADER, is_loopback
from sandbox.emulator import Emulator
from tinbao.cli import _control_token, app

TOKEN = "123456:REMOTE"
CONTROL = "control-secret-for-tests"


def test_loopback_addresses() -> None:
    assert all(is_loopback(h) for h in ("127.0.0.1", "127.0.0.53", "::1", "localhost"))
    assert not any(is_loopback(h) for h in ("0.0.0.0", "::", "10.0.0.5", "example.org", ""))


@pytest.mark.parametrize("command", [["emulator"], ["demo"]])
def test_a_public_host_is_refused_without_allow_remote(command: list[str]) -> None:
    result = CliRunner().invoke(app, [*command, "--host", "0.0.0.0", "--port", "1"])
    assert result.exit_code == 2
    assert "--allow-remote" in result.output


def test_allow_remote_needs_a_token() -> None:
    assert _control_token("127.0.0.1", False, None) is None
    assert _control_token("0.0.0.0", True, "given") == "given"
    generated = _control_token("0.0.0.0", True, None)
    assert generated and len(generated) >= 24
    with pytest.raises(typer.BadParameter):
        _control_token("192.168.1.10", False, None)


def _client(emulator: Emulator, peer: str) -> httpx.AsyncClient:
    """A client that the emulator sees coming from `peer`."""
    transport = httpx.ASGITransport(app=emulator.app, client=(peer, 40000))
    return httpx.AsyncClient(transport=transport, base_url="http://emulator")


async def test_other_machines_must_show_the_control_token() -> None:
    emulator = Emulator(control_token=CONTROL)
    emulator.add_bot(TOKEN, username="remote_bot")
    async with _client(emulator, "10.0.0.5") as remote, _client(emulator, "127.0.0.1") as local:
        refused = await remote.get("/control/bot")
        assert refused.status_code == 401 and "token" in refused.json()["error"]
        assert (
            await remote.get("/control/bot", headers={TOKEN_HEADER: "wrong"})
        ).status_code == 401
        assert (
            await remote.get("/control/bot", headers={TOKEN_HEADER: CONTROL})
        ).status_code == 200
        assert (await remote.get(f"/bot{TOKEN}/getMe")).json()["ok"], "the Bot API stays open"
        assert (await local.get("/control/bot")).status_code == 200, "this machine needs none"
        assert (await remote.get("/web/unlock", params={"token": "wrong"})).status_code == 401
        unlocked = await remote.get("/web/unlock", params={"token": CONTROL})
        assert unlocked.status_code == 303 and TOKEN_COOKIE in unlocked.headers["set-cookie"]
        page = await remote.get("/control/bot")  # the cookie the unlock set
        assert page.status_code == 200, "the browser page, after unlocking"


async def test_without_a_token_nothing_changes() -> None:
    emulator = Emulator()
    emulator.add_bot(TOKEN, username="local_bot")
    async with _client(emulator, "10.0.0.5") as client:
        assert (await client.get("/control/bot")).status_code == 200

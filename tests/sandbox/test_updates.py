"""getUpdates: long polling, offsets, limits, allowed_updates, conflicts."""

from __future__ import annotations

import asyncio

from sandbox.client import EmulatorClient
from tests.sandbox.support import ANN, BEN, BotApiClient


async def test_updates_carry_the_injected_message(api: BotApiClient, users: EmulatorClient) -> None:
    sent = await users.send_text(ANN, "/start tip_42", chat_id=None)
    updates = await api.ok("getUpdates")
    assert len(updates) == 1
    message = updates[0]["message"]
    assert message == sent["message"]
    assert message["chat"] == {
        "id": ANN.id,
        "type": "private",
        "first_name": "Ann",
        "username": "ann",
    }
    assert message["entities"] == [{"type": "bot_command", "offset": 0, "length": 6}]
    assert message["message_id"] == 1 and isinstance(message["date"], int)


async def test_offset_confirms_and_limit_caps(api: BotApiClient, users: EmulatorClient) -> None:
    for index in range(5):
        await users.send_text(ANN, f"m{index}")
    first = await api.ok("getUpdates", limit=2)
    assert [u["message"]["text"] for u in first] == ["m0", "m1"]
    ids = [u["update_id"] for u in first]
    assert ids[1] == ids[0] + 1
    # Unconfirmed updates come again; an offset drops everything below it.
    again = await api.ok("getUpdates", limit=2)
    assert again == first
    rest = await api.ok("getUpdates", offset=ids[1] + 1)
    assert [u["message"]["text"] for u in rest] == ["m2", "m3", "m4"]
    # A negative offset keeps only the last updates.
    tail = await api.ok("getUpdates", offset=-1)
    assert [u["message"]["text"] for u in tail] == ["m4"]


async def test_long_poll_returns_as_soon_as_an_update_arrives(
    api: BotApiClient, users: EmulatorClient
) -> None:
    poll = asyncio.create_task(api.ok("getUpdates", timeout=30))
    await asyncio.sleep(0)  # let the poll start waiting
    assert not poll.done()
    await users.send_text(BEN, "hello")
    updates = await asyncio.wait_for(poll, 5)
    assert [u["message"]["text"] for u in updates] == ["hello"]


async def test_empty_poll_with_zero_timeout(api: BotApiClient) -> None:
    assert await api.ok("getUpdates", timeout=0) == []


async def test_a_newer_poll_terminates_the_older_one(api: BotApiClient) -> None:
    older = asyncio.create_task(api.call("getUpdates", timeout=30))
    await asyncio.sleep(0)
    newer = asyncio.create_task(api.call("getUpdates", timeout=0))
    body = await asyncio.wait_for(older, 5)
    assert body["error_code"] == 409
    assert body["description"].startswith("Conflict: terminated by other getUpdates request")
    assert (await newer)["ok"]


async def test_allowed_updates_filters_later_updates(
    api: BotApiClient, users: EmulatorClient
) -> None:
    await users.send_text(ANN, "before")
    await api.ok("getUpdates", allowed_updates=["callback_query"], timeout=0)
    await users.send_text(ANN, "after")
    updates = await api.ok("getUpdates")
    # Telegram applies the filter to updates created after the call only.
    assert [u["message"]["text"] for u in updates] == ["before"]
    await api.ok("getUpdates", allowed_updates=[], offset=updates[-1]["update_id"] + 1)
    await users.send_text(ANN, "default again")
    assert [u["message"]["text"] for u in await api.ok("getUpdates")] == ["default again"]


async def test_update_ids_keep_rising_across_reset(
    api: BotApiClient, users: EmulatorClient
) -> None:
    await users.send_text(ANN, "one")
    (first,) = await api.ok("getUpdates")
    await users.reset()
    await users.send_text(ANN, "two")
    (second,) = await api.ok("getUpdates")
    assert second["update_id"] > first["update_id"]
    assert second["message"]["message_id"] == 1  # chats start over


async def test_token_and_method_errors(api: BotApiClient) -> None:
    response = await api.http.post("/botnope:bad/getMe")
    assert response.status_code == 401
    assert response.json() == {"ok": False, "error_code": 401, "description": "Unauthorized"}
    response = await api.http.post(f"/bot{api.token}/noSuchMethod")
    assert response.status_code == 404
    assert response.json() == {"ok": False, "error_code": 404, "description": "Not Found"}
    me = await api.ok("getme")  # method names are case-insensitive
    assert me["username"] == "tinbao_bot" and me["id"] == 123456 and me["is_bot"]


async def test_form_encoded_parameters(api: BotApiClient, users: EmulatorClient) -> None:
    await users.send_text(ANN, "hi")
    response = await api.http.post(
        f"/bot{api.token}/sendMessage",
        data={
            "chat_id": str(ANN.id),
            "text": "<i>form</i>",
            "parse_mode": "HTML",
            "reply_markup": '{"inline_keyboard": [[{"text": "a", "callback_data": "b"}]]}',
            "reply_parameters": '{"message_id": 1}',
        },
    )
    result = response.json()["result"]
    assert result["entities"] == [{"type": "italic", "offset": 0, "length": 4}]
    assert result["reply_to_message"]["text"] == "hi"
    assert result["reply_markup"]["inline_keyboard"][0][0]["callback_data"] == "b"


async def test_batch_injection(api: BotApiClient, users: EmulatorClient) -> None:
    summary = await users.send_texts([(ANN, "one"), (BEN, "two"), (ANN, "/three")])
    assert [(s["chat_id"], s["message_id"]) for s in summary] == [
        (ANN.id, 1),
        (BEN.id, 1),
        (ANN.id, 2),
    ]
    updates = await api.ok("getUpdates")
    assert [u["message"]["text"] for u in updates] == ["one", "two", "/three"]
    assert updates[2]["message"]["entities"][0]["type"] == "bot_command"
    await api.ok("sendMessage", chat_id=ANN.id, text="reply")
    (reply,) = await users.wait_bot_messages(ANN.id)
    assert reply["text"] == "reply"

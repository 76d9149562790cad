"""Chat behaviour: transcripts, edits, deletes, blocks, groups, buttons, waiting."""

from __future__ import annotations

import asyncio

import pytest

from sandbox.client import EmulatorClient, EmulatorError
from tests.sandbox.support import ANN, BEN, BotApiClient

KEYBOARD = {
    "inline_keyboard": [
        [{"text": "Yes", "callback_data": "yes"}, {"text": "No", "callback_data": "no"}]
    ]
}


async def test_transcript_shows_both_sides_with_edits_applied(
    api: BotApiClient, users: EmulatorClient
) -> None:
    hello = await users.send_text(ANN, "hello")
    sent = await api.ok(
        "sendMessage",
        chat_id=ANN.id,
        text="<b>Hi</b> Ann",
        parse_mode="HTML",
        reply_markup=KEYBOARD,
        reply_parameters={"message_id": hello["message_id"]},
    )
    edited = await api.ok(
        "editMessageText", chat_id=ANN.id, message_id=sent["message_id"], text="Thanks"
    )
    assert edited["text"] == "Thanks" and "edit_date" in edited
    # Editing without reply_markup removes the inline keyboard, as in Telegram.
    assert "reply_markup" not in edited
    transcript = await users.transcript(ANN.id)
    assert [(m["message_id"], m["from_bot"], m["text"], m["edited"]) for m in transcript] == [
        (1, False, "hello", False),
        (2, True, "Thanks", True),
    ]
    assert transcript[1]["reply_to"] == 1 and transcript[1]["reply_markup"] is None


async def test_edit_errors(api: BotApiClient, users: EmulatorClient) -> None:
    await users.send_text(ANN, "hello")
    sent = await api.ok("sendMessage", chat_id=ANN.id, text="same", reply_markup=KEYBOARD)
    body = await api.call(
        "editMessageText",
        chat_id=ANN.id,
        message_id=sent["message_id"],
        text="same",
        reply_markup=KEYBOARD,
    )
    assert body["description"].startswith("Bad Request: message is not modified: ")
    body = await api.call(
        "editMessageReplyMarkup",
        chat_id=ANN.id,
        message_id=sent["message_id"],
        reply_markup=KEYBOARD,
    )
    assert body["description"].startswith("Bad Request: message is not modified")
    body = await api.call("editMessageText", chat_id=ANN.id, message_id=99, text="x")
    assert body["description"] == "Bad Request: message to edit not found"
    body = await api.call("editMessageText", chat_id=ANN.id, message_id=1, text="x")
    assert body["description"] == "Bad Request: message can't be edited"
    changed = await api.ok("editMessageReplyMarkup", chat_id=ANN.id, message_id=sent["message_id"])
    assert "reply_markup" not in changed


async def test_delete_message(api: BotApiClient, users: EmulatorClient) -> None:
    await users.send_text(ANN, "hello")
    sent = await api.ok("sendMessage", chat_id=ANN.id, text="bye")
    assert await api.ok("deleteMessage", chat_id=ANN.id, message_id=sent["message_id"]) is True
    assert [m["text"] for m in await users.transcript(ANN.id)] == ["hello"]
    body = await api.call("deleteMessage", chat_id=ANN.id, message_id=sent["message_id"])
    assert body == {
        "ok": False,
        "error_code": 400,
        "description": "Bad Request: message to delete not found",
    }
    assert (await users.counters())["deleted_total"] == 1


async def test_blocked_user_gives_403(api: BotApiClient, users: EmulatorClient) -> None:
    await users.send_text(ANN, "hello")
    await users.block(ANN)
    body = await api.call("sendMessage", chat_id=ANN.id, text="still there?")
    assert body == {
        "ok": False,
        "error_code": 403,
        "description": "Forbidden: bot was blocked by the user",
    }
    updates = await api.ok("getUpdates")
    member = updates[-1]["my_chat_member"]
    assert member["new_chat_member"]["status"] == "kicked"
    await users.unblock(ANN)
    await api.ok("sendMessage", chat_id=ANN.id, text="welcome back")
    assert (await users.counters())["errors_by_code"] == {"403": 1}


async def test_unknown_chat(api: BotApiClient) -> None:
    body = await api.call("sendMessage", chat_id=424242, text="x")
    assert body["description"] == "Bad Request: chat not found"
    body = await api.call("getChat", chat_id=424242)
    assert body["description"] == "Bad Request: chat not found"


async def test_groups_membership(api: BotApiClient, users: EmulatorClient) -> None:
    await users.add_bot_to_group(ANN, -555, "Tổ dân phố 3")
    updates = await api.ok("getUpdates")
    assert updates[0]["my_chat_member"]["new_chat_member"]["status"] == "member"
    assert updates[0]["my_chat_member"]["chat"] == {
        "id": -555,
        "type": "group",
        "title": "Tổ dân phố 3",
    }
    assert updates[1]["message"]["new_chat_members"][0]["username"] == "tinbao_bot"
    await users.send_text(BEN, "/report@tinbao_bot", chat_id=-555)
    await api.ok("sendMessage", chat_id=-555, text="noted")
    chat = await api.ok("getChat", chat_id=-555)
    assert chat["title"] == "Tổ dân phố 3" and chat["type"] == "group"
    await users.remove_bot_from_group(ANN, -555)
    body = await api.call("sendMessage", chat_id=-555, text="x")
    assert body == {
        "ok": False,
        "error_code": 403,
        "description": "Forbidden: bot was kicked from the group chat",
    }
    await users.add_bot_to_group(ANN, -1001234567890, "Supergroup")
    await users.remove_bot_from_group(ANN, -1001234567890)
    body = await api.call("sendMessage", chat_id=-1001234567890, text="x")
    assert body["description"] == "Forbidden: bot was kicked from the supergroup chat"


async def test_button_press_and_callback_answer(api: BotApiClient, users: EmulatorClient) -> None:
    await users.send_text(ANN, "hello")
    sent = await api.ok("sendMessage", chat_id=ANN.id, text="Confirm?", reply_markup=KEYBOARD)
    query_id = await users.press(ANN, ANN.id, sent["message_id"], "yes")
    updates = await api.ok("getUpdates")
    query = updates[-1]["callback_query"]
    assert query["id"] == query_id and query["data"] == "yes"
    assert query["message"]["message_id"] == sent["message_id"]
    assert await users.callback_answer(query_id, timeout=0) is None
    await api.ok("answerCallbackQuery", callback_query_id=query_id, text="Saved", show_alert=True)
    answer = await users.callback_answer(query_id)
    assert answer is not None and answer["text"] == "Saved" and answer["show_alert"] is True
    body = await api.call("answerCallbackQuery", callback_query_id=query_id)
    assert body["description"] == (
        "Bad Request: query is too old and response timeout expired or query ID is invalid"
    )
    with pytest.raises(EmulatorError):
        await users.press(ANN, ANN.id, sent["message_id"], "maybe")
    assert await users.press(ANN, ANN.id, sent["message_id"], "maybe", force=True)


async def test_callback_answer_waits(api: BotApiClient, users: EmulatorClient) -> None:
    await users.send_text(ANN, "hello")
    sent = await api.ok("sendMessage", chat_id=ANN.id, text="?", reply_markup=KEYBOARD)
    query_id = await users.press(ANN, ANN.id, sent["message_id"], "no")
    waiting = asyncio.create_task(users.callback_answer(query_id, timeout=5))
    await asyncio.sleep(0)
    await api.ok("answerCallbackQuery", callback_query_id=query_id)
    answer = await asyncio.wait_for(waiting, 5)
    assert answer is not None and answer["text"] is None and answer["show_alert"] is False


async def test_wait_returns_exactly_the_replies(api: BotApiClient, users: EmulatorClient) -> None:
    await users.send_text(ANN, "first")
    await api.ok("sendMessage", chat_id=ANN.id, text="reply to first")
    await users.send_text(ANN, "second")

    async def bot_replies() -> None:
        await asyncio.sleep(0)
        await api.ok("sendMessage", chat_id=ANN.id, text="reply A")
        await api.ok("sendMessage", chat_id=ANN.id, text="reply B")

    replying = asyncio.create_task(bot_replies())
    replies = await users.wait_bot_messages(ANN.id, 2)
    await replying
    assert [m["text"] for m in replies] == ["reply A", "reply B"]
    # The cursor moved past them; an edit of an older message counts as new activity.
    await api.ok("editMessageText", chat_id=ANN.id, message_id=2, text="edited first reply")
    (edit,) = await users.wait_bot_messages(ANN.id)
    assert edit["message_id"] == 2 and edit["edited"]
    # An explicit message id counts everything the bot sent or edited after that message.
    again = await users.wait_bot_messages(ANN.id, 2, after_message_id=3)
    assert [m["text"] for m in again] == ["reply A", "reply B", "edited first reply"]
    with pytest.raises(TimeoutError, match="transcript tail"):
        await users.wait_bot_messages(ANN.id, timeout=0.05)


async def test_press_moves_the_cursor(api: BotApiClient, users: EmulatorClient) -> None:
    await users.send_text(ANN, "hello")
    sent = await api.ok("sendMessage", chat_id=ANN.id, text="?", reply_markup=KEYBOARD)
    (shown,) = await users.wait_bot_messages(ANN.id)
    assert shown["reply_markup"] == KEYBOARD
    await users.press(ANN, ANN.id, sent["message_id"], "yes")
    await api.ok("editMessageText", chat_id=ANN.id, message_id=sent["message_id"], text="Yes!")
    (after_press,) = await users.wait_bot_messages(ANN.id)
    assert after_press["text"] == "Yes!"


async def test_user_edit_sends_edited_message(api: BotApiClient, users: EmulatorClient) -> None:
    sent = await users.send_text(ANN, "tyop")
    await users.edit_text(ANN, ANN.id, sent["message_id"], "typo")
    updates = await api.ok("getUpdates")
    assert updates[-1]["edited_message"]["text"] == "typo"
    assert "edit_date" in updates[-1]["edited_message"]
    (entry,) = await users.transcript(ANN.id)
    assert entry["text"] == "typo" and entry["edited"]
    with pytest.raises(EmulatorError):
        await users.edit_text(BEN, ANN.id, sent["message_id"], "not mine")


async def test_reply_keyboard_state_and_copy(api: BotApiClient, users: EmulatorClient) -> None:
    tip = await users.send_text(ANN, "a tip")
    keyboard = {"keyboard": [["Gửi vị trí"], [{"text": "Hủy"}]], "one_time_keyboard": True}
    await api.ok("sendMessage", chat_id=ANN.id, text="Choose", reply_markup=keyboard)
    assert (await users.chat(ANN.id))["keyboard"] == keyboard
    await users.send_text(ANN, "Hủy")
    assert (await users.chat(ANN.id))["keyboard"] is None  # one-time keyboards hide
    await users.add_bot_to_group(BEN, -777, "Police")
    copied = await api.ok(
        "copyMessage", chat_id=-777, from_chat_id=ANN.id, message_id=tip["message_id"]
    )
    transcript = await users.transcript(-777)
    assert transcript[-1]["message_id"] == copied["message_id"]
    assert transcript[-1]["text"] == "a tip" and transcript[-1]["from_bot"]
    await api.ok("sendMessage", chat_id=ANN.id, text="bye", reply_markup={"remove_keyboard": True})
    forced = await api.ok(
        "sendMessage", chat_id=ANN.id, text="Why?", reply_markup={"force_reply": True}
    )
    assert "reply_markup" not in forced  # only inline keyboards belong to the message
    assert (await users.transcript(ANN.id))[-1]["reply_markup"] == {"force_reply": True}


async def test_commands_counters_and_reset(api: BotApiClient, users: EmulatorClient) -> None:
    commands = [
        {"command": "start", "description": "Bắt đầu"},
        {"command": "tip", "description": "Báo tin"},
    ]
    assert await api.ok("setMyCommands", commands=commands)
    assert await api.ok("getMyCommands") == commands
    assert await users.commands() == commands
    body = await api.call("setMyCommands", commands=[{"command": "Bad", "description": "x"}])
    assert body["description"] == "Bad Request: BOT_COMMAND_INVALID"
    await users.send_text(ANN, "hi")
    await api.ok("sendMessage", chat_id=ANN.id, text="x")
    await api.ok("sendChatAction", chat_id=ANN.id, action="typing")
    counters = await users.counters()
    assert counters["sent_total"] == 1 and counters["calls_by_method"]["sendChatAction"] == 1
    await users.reset()
    assert (await users.counters())["sent_total"] == 0
    assert await users.commands() == []
    with pytest.raises(EmulatorError):
        await users.transcript(ANN.id)

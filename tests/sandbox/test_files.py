"""Files: uploads both ways, getFile and download, the 20 MB refusal, albums."""

from __future__ import annotations

import json

from sandbox.client import EmulatorClient
from tests.sandbox.support import ANN, BotApiClient, png


async def download(api: BotApiClient, file_id: str) -> bytes:
    """getFile, then fetch /file/bot<token>/<file_path> as a bot library does."""
    info = await api.ok("getFile", file_id=file_id)
    response = await api.http.get(f"/file/bot{api.token}/{info['file_path']}")
    assert response.status_code == 200
    assert len(response.content) == info["file_size"]
    return response.content


async def test_bot_upload_round_trip(api: BotApiClient, users: EmulatorClient) -> None:
    await users.send_text(ANN, "hi")
    image = png(64, 48)
    response = await api.http.post(
        f"/bot{api.token}/sendPhoto",
        data={"chat_id": str(ANN.id), "caption": "<b>map</b>", "parse_mode": "HTML"},
        files={"photo": ("map.png", image, "image/png")},
    )
    message = response.json()["result"]
    (size,) = message["photo"]
    assert (size["width"], size["height"], size["file_size"]) == (64, 48, len(image))
    assert message["caption"] == "map"
    assert message["caption_entities"] == [{"type": "bold", "offset": 0, "length": 3}]
    assert await download(api, size["file_id"]) == image
    assert await users.file_bytes(size["file_id"]) == image
    # Re-sending by file_id reuses the stored file.
    again = await api.ok("sendPhoto", chat_id=ANN.id, photo=size["file_id"])
    assert again["photo"][0]["file_unique_id"] == size["file_unique_id"]
    body = await api.call("sendPhoto", chat_id=ANN.id, photo="no-such-file")
    assert body["description"] == "Bad Request: wrong file identifier/HTTP URL specified"
    body = await api.call("sendDocument", chat_id=ANN.id, document=size["file_id"])
    assert body["description"] == "Bad Request: type of file mismatch"


async def test_user_uploads_reach_the_bot(api: BotApiClient, users: EmulatorClient) -> None:
    photo = await users.send_photo(ANN, png(10, 20), caption="scene")
    document = await users.send_document(
        ANN, b"%PDF-1.4 report", filename="report.pdf", mime_type="application/pdf"
    )
    voice = await users.send_voice(ANN, b"OggS...", duration=3)
    updates = await api.ok("getUpdates")
    sizes = updates[0]["message"]["photo"]
    assert (sizes[-1]["width"], sizes[-1]["height"]) == (10, 20)
    assert updates[0]["message"]["caption"] == "scene"
    doc = updates[1]["message"]["document"]
    assert doc["file_name"] == "report.pdf" and doc["mime_type"] == "application/pdf"
    assert updates[2]["message"]["voice"]["duration"] == 3
    assert await download(api, doc["file_id"]) == b"%PDF-1.4 report"
    # file_id and file_unique_id are unique per file.
    ids = {sizes[-1]["file_id"], doc["file_id"], voice["media"]["file_id"]}
    assert len(ids) == 3
    assert photo["media"]["kind"] == "photo" and document["media"]["kind"] == "document"


async def test_files_over_20_mb_are_refused(api: BotApiClient, users: EmulatorClient) -> None:
    big = await users.send_declared_file(
        ANN, kind="video", size=25 * 1024 * 1024, filename="cctv.mp4", mime_type="video/mp4"
    )
    assert big["media"]["file_size"] == 25 * 1024 * 1024
    body = await api.call("getFile", file_id=big["media"]["file_id"])
    assert body == {"ok": False, "error_code": 400, "description": "Bad Request: file is too big"}
    small = await users.send_declared_file(ANN, kind="document", size=1000, filename="a.bin")
    assert await download(api, small["media"]["file_id"]) == bytes(1000)


async def test_bot_media_group_with_attachments(api: BotApiClient, users: EmulatorClient) -> None:
    await users.send_text(ANN, "hi")
    media = [
        {"type": "photo", "media": "attach://one", "caption": "<i>first</i>", "parse_mode": "HTML"},
        {"type": "photo", "media": "attach://two"},
    ]
    response = await api.http.post(
        f"/bot{api.token}/sendMediaGroup",
        data={"chat_id": str(ANN.id), "media": json.dumps(media)},
        files={"one": ("1.png", png(5, 5), "image/png"), "two": ("2.png", png(6, 6), "image/png")},
    )
    messages = response.json()["result"]
    assert len(messages) == 2
    assert messages[0]["media_group_id"] == messages[1]["media_group_id"]
    assert messages[0]["caption"] == "first" and "caption" not in messages[1]
    assert [m["photo"][0]["width"] for m in messages] == [5, 6]
    body = await api.call("sendMediaGroup", chat_id=ANN.id, media=media[:1])
    assert body["error_code"] == 400


async def test_user_album_arrives_as_separate_updates(
    api: BotApiClient, users: EmulatorClient
) -> None:
    sent = await users.send_album(
        ANN,
        [
            ("photo", png(8, 8), {}),
            ("video", b"\x00\x00mp4", {"duration": 4}),
            ("photo", png(9, 9), {"caption": "own caption"}),
        ],
        caption="album caption",
    )
    updates = await api.ok("getUpdates")
    assert len(updates) == 3
    messages = [update["message"] for update in updates]
    group_ids = {message["media_group_id"] for message in messages}
    assert len(group_ids) == 1
    assert [m["message_id"] for m in messages] == [m["message_id"] for m in sent]
    assert messages[0]["caption"] == "album caption" and "caption" not in messages[1]
    assert messages[2]["caption"] == "own caption"
    assert messages[1]["video"]["duration"] == 4


async def test_user_location_and_raw_fields(api: BotApiClient, users: EmulatorClient) -> None:
    await users.send_location(ANN, 21.0285, 105.8542)
    await users.send_raw(ANN, {"contact": {"phone_number": "+84900000000", "first_name": "Ann"}})
    await users.send_raw(
        ANN,
        {
            "sticker": {
                "file_id": "st",
                "file_unique_id": "u",
                "type": "regular",
                "width": 512,
                "height": 512,
                "is_animated": False,
                "is_video": False,
            }
        },
    )
    messages = [u["message"] for u in await api.ok("getUpdates")]
    assert messages[0]["location"] == {"latitude": 21.0285, "longitude": 105.8542}
    assert messages[1]["contact"]["phone_number"] == "+84900000000"
    assert messages[2]["sticker"]["width"] == 512
    transcript = await users.transcript(ANN.id)
    assert [m["media"]["kind"] for m in transcript] == ["location", "contact", "sticker"]


async def test_bot_sends_location_and_documents(api: BotApiClient, users: EmulatorClient) -> None:
    await users.send_text(ANN, "where?")
    sent = await api.ok("sendLocation", chat_id=ANN.id, latitude=10.5, longitude=106.1)
    assert sent["location"] == {"latitude": 10.5, "longitude": 106.1}
    response = await api.http.post(
        f"/bot{api.token}/sendDocument",
        data={"chat_id": str(ANN.id)},
        files={"document": ("guide.txt", b"read me", "text/plain")},
    )
    document = response.json()["result"]["document"]
    assert document["file_name"] == "guide.txt" and document["mime_type"] == "text/plain"
    assert await users.file_bytes(document["file_id"]) == b"read me"
    body = await api.call("sendDocument", chat_id=ANN.id)
    assert body["description"] == "Bad Request: there is no document in the request"

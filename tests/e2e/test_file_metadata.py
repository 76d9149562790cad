"""Files and their metadata through the real bot: the citizen is told, the police see it.

Assertions compare with the police/citizen locale's gettext of the new messages, so they hold
whether or not the Vietnamese catalog has these msgids yet (gettext falls back to the msgid).
"""

from __future__ import annotations

import io

from pypdf import PdfReader
from sqlmodel import select

from bot.i18n import translator
from bot.services import cards, intake_steps
from sandbox.client import EmulatorClient
from storage.db import Database
from storage.models import TipAttachment
from tests.e2e.flows import RECEIPT_CODE, SHORT_ID, begin_tip, pick_by_name
from tests.e2e.harness import BotUnderTest, Citizen, text_of
from tests.e2e.police import enroll, link_group
from tests.factories_media import AUTHOR, make_pdf

KHA_CUU = 8635
VI = translator("vi")
MP4 = b"\x00\x00\x00\x18ftypmp42\x00\x00\x00\x00mp42isom" + bytes(64)
OGG = b"OggS\x00\x02" + bytes(60)


async def _inbox(client: EmulatorClient, bot: BotUnderTest) -> Citizen:
    """The commune's inbox group, linked by an enrolled officer."""
    officer = await enroll(
        client,
        bot,
        bot.settings.database_url,
        role="officer",
        name="Hoàng Minh Khôi",
        commune=KHA_CUU,
    )
    return await link_group(officer, "Công an xã Khả Cửu")


def _files(messages: list[dict], short_id: str) -> list[dict]:
    """The inbox messages that carry a tip's files."""
    return [m for m in messages if m.get("media") and short_id in (m.get("caption") or "")]


async def test_video_is_announced_as_kept_and_the_pdf_is_cleaned(
    client: EmulatorClient, bot: BotUnderTest, citizen: Citizen
) -> None:
    inbox = await _inbox(client, bot)
    await begin_tip(citizen)
    prompt = await pick_by_name(citizen, "kha cuu", "Xã Khả Cửu (Phú Thọ)")
    assert VI.gettext(intake_steps.FILES_WARNING) in text_of(prompt), "told before sending"

    video = await citizen.send(citizen.client.send_video(citizen.user, MP4, filename="clip.mp4"))
    said = text_of(video)
    assert "⚠️" in said and VI.gettext(intake_steps.KEPT_AS_SENT["video"]) in said, said

    pdf = make_pdf(2)
    cleaned = await citizen.send(
        citizen.client.send_document(
            citizen.user, pdf, filename="bien-ban.pdf", mime_type="application/pdf"
        )
    )
    assert "⚠️" not in text_of(cleaned), "a cleaned PDF needs no warning"
    await citizen.say("Clip quay cảnh mua bán ở đầu ngõ 5.")
    await citizen.press("Xong")
    receipt = await citizen.press("📨")
    assert RECEIPT_CODE.search(text_of(receipt))
    short = SHORT_ID.search(text_of(receipt))
    assert short is not None
    short_id = short.group(0)

    files = _files(await inbox.messages(), short_id)
    assert len(files) == 2, files
    video_post = next(m for m in files if m["media"]["kind"] == "video")
    pdf_post = next(m for m in files if m["media"]["kind"] == "document")
    assert "⚠️" in video_post["caption"]
    assert (cards.file_note(VI, "video: kept") or "?") in video_post["caption"]
    assert len(video_post["caption"]) <= 1024
    assert "⚠️" not in pdf_post["caption"]
    copy = await client.file_bytes(pdf_post["media"]["file_id"])
    assert AUTHOR.encode() not in copy
    reader = PdfReader(io.BytesIO(copy))
    assert len(reader.pages) == 2
    assert not reader.metadata or "/Author" not in reader.metadata

    db = Database(bot.settings.database_url)
    try:
        async with db.session() as session:
            kept = (await session.exec(select(TipAttachment))).all()
    finally:
        await db.dispose()
    notes = {f.kind: f.note for f in kept}
    assert (notes["video"] or "").startswith("video:") and notes["document"] is None


async def test_an_addition_warns_before_and_after_and_its_caption_says_so(
    client: EmulatorClient, bot: BotUnderTest, citizen: Citizen
) -> None:
    inbox = await _inbox(client, bot)
    await begin_tip(citizen)
    await pick_by_name(citizen, "kha cuu", "Xã Khả Cửu (Phú Thọ)")
    await citizen.say("Có người bán ma túy ở đầu ngõ 5.")
    await citizen.press("Xong")
    receipt = await citizen.press("📨")
    code = RECEIPT_CODE.search(text_of(receipt))
    short = SHORT_ID.search(text_of(receipt))
    assert code is not None and short is not None

    prompt = await citizen.say(f"/add {code.group(0)}")
    assert VI.gettext(intake_steps.FILES_WARNING) in text_of(prompt)
    voice = await citizen.send(citizen.client.send_voice(citizen.user, OGG, caption="Ghi âm"))
    assert VI.gettext(intake_steps.KEPT_AS_SENT["voice"]) in text_of(voice)

    [post] = _files(await inbox.messages(), short.group(0))
    assert post["media"]["kind"] == "voice"
    assert "Ghi âm" in post["caption"] and "⚠️" in post["caption"]
    assert (cards.file_note(VI, "voice: kept") or "?") in post["caption"]

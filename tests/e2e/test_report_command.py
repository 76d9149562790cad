"""/thongke through the real bot: the reader's area only, the summary, a chart and the XLSX."""

from __future__ import annotations

import io
from collections.abc import Callable

import openpyxl
from PIL import Image

from sandbox.client import EmulatorClient
from tests.e2e.flows import send_tip
from tests.e2e.harness import BotUnderTest, Citizen, text_of
from tests.e2e.police import enroll

KHA_CUU = 8635
PHU_THO = 25


async def test_officer_gets_their_communes_figures(
    client: EmulatorClient,
    bot: BotUnderTest,
    new_citizen: Callable[..., Citizen],
) -> None:
    database_url = bot.settings.database_url
    await send_tip(new_citizen("Ngô Văn"))
    await send_tip(new_citizen("Bùi Thị"), "xuan lung", "Xã Xuân Lũng (Phú Thọ)")
    officer = await enroll(
        client, bot, database_url, role="officer", name="Cán bộ xã", commune=KHA_CUU
    )
    answers = await officer.private.say("/thongke")  # this month so far: 22/11 in the fake clock
    assert len(answers) == 3, answers
    paragraph, chart, document = answers
    assert "Từ 01/11/2026 đến 22/11/2026" in paragraph["text"]
    assert "cho Công an xã Khả Cửu 1 tin báo" in paragraph["text"], "its own commune only"
    assert "ngõ 5" not in str(answers), "no tip text in a report"
    assert chart["media"]["kind"] == "photo"
    picture = await client.file_bytes(chart["media"]["file_id"])
    with Image.open(io.BytesIO(picture)) as image:
        assert image.format == "PNG" and image.width > 800
    sent = document["message"]["document"]
    assert sent["file_name"] == "thong-ke-20261101-20261122.xlsx"
    book = openpyxl.load_workbook(io.BytesIO(await client.file_bytes(sent["file_id"])))
    summary = {row[0].value: row[1].value for row in book["Tổng hợp"].iter_rows() if len(row) > 1}
    assert summary["Phạm vi"] == "Xã Khả Cửu" and summary["Tin báo tiếp nhận"] == 1

    supervisor = await enroll(
        client, bot, database_url, role="supervisor", name="Cán bộ tỉnh", province=PHU_THO
    )
    province = await supervisor.private.say("/thongke nam")
    assert "Từ 01/01/2026 đến 31/12/2026" in province[0]["text"]
    assert "Công an tỉnh Phú Thọ 2 tin báo" in province[0]["text"]
    usage = await supervisor.private.say("/thongke hôm qua")
    assert "/thongke quy" in text_of(usage)


async def test_others_are_refused(
    client: EmulatorClient, bot: BotUnderTest, new_citizen: Callable[..., Citizen]
) -> None:
    outreach = await enroll(
        client,
        bot,
        bot.settings.database_url,
        role="outreach",
        name="Tuyên truyền",
        commune=KHA_CUU,
    )
    for chat in (new_citizen("Vương Thị"), outreach.private):
        refused = await chat.say("/thongke")
        assert len(refused) == 1 and "không có quyền" in text_of(refused).lower()

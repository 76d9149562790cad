"""After real conversations, no table holds a tipster's platform id, name or username."""

from __future__ import annotations

from collections.abc import Callable

from sandbox.client import EmulatorClient
from tests.anonymity import scan_database
from tests.e2e.flows import begin_tip, finish_tip, pick_by_name
from tests.e2e.harness import BotUnderTest, Citizen
from tests.e2e.police import enroll, link_group
from tests.factories_media import make_test_jpeg_with_gps
from tinbao.settings import Settings


def _needles(citizen: Citizen) -> list[str]:
    """What must never be stored: the id, the name and the username."""
    user = citizen.user
    return [str(user.id), user.first_name, user.username or ""]


async def test_no_table_holds_tipster_identity(
    new_citizen: Callable[..., Citizen],
    settings: Settings,
    client: EmulatorClient,
    bot: BotUnderTest,
) -> None:
    # With a police inbox, so cards, copies, replies and the outbox are scanned too.
    officer = await enroll(
        client, bot, settings.database_url, role="officer", name="Cán bộ", commune=8635
    )
    inbox = await link_group(officer, "Công an xã Khả Cửu")
    tipster = new_citizen("Trần Thị Bímật", "ttbimat_2026")
    await begin_tip(tipster, happening_now=True)
    await pick_by_name(tipster, "kha cuu", "Xã Khả Cửu (Phú Thọ)")
    await tipster.send(
        tipster.client.send_album(
            tipster.user, [("photo", make_test_jpeg_with_gps(), {}) for _ in range(2)]
        )
    )
    await tipster.send(tipster.client.send_location(tipster.user, 21.05, 105.2))
    code = await finish_tip(tipster, "Có đối tượng lạ lảng vảng quanh trường học.")
    await tipster.say(f"/add {code}")
    await tipster.say("Thêm: đối tượng mặc áo khoác đen.")
    await tipster.press("Xong")
    card = next(m for m in await inbox.messages() if "Lĩnh vực" in (m.get("text") or ""))
    await inbox.press("Nhận xử lý")
    await inbox.say("Cảm ơn, bạn thấy mấy người?", reply_to=card["message_id"])
    asked = (await tipster.messages())[-1]
    await tipster.press("Trả lời", message=asked)
    await tipster.say("Hai người.")
    for message in await inbox.messages():  # what the police see never names the tipster
        assert all(n not in (message.get("text") or "") for n in _needles(tipster))
    # A second citizen leaves an unfinished draft: drafts and flood counters are scanned too.
    lurker = new_citizen("Phạm Văn Ẩndanh", "pvandanh_2026")
    await begin_tip(lurker)

    needles = _needles(tipster) + _needles(lurker)
    # Staff are not anonymous: finding the officer proves the scan sees ids where they are.
    scan = await scan_database(settings.database_url, needles, str(officer.user.id))
    assert scan.scanned_cells > 1000  # the scan really read the database (communes included)
    assert "staff" in scan.control_seen_in
    assert not scan.found, scan.found

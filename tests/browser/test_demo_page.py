"""The demo page in headless Chromium, used as a person would: tip, inbox, reply, broadcast."""

from __future__ import annotations

import io
import json
import re
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from tests.browser.support import DemoProcess

RECEIPT_CODE = re.compile(r"\b[0-9A-Z]{4}-[0-9A-Z]{4}-[0-9A-Z]{4}\b")
SHORT_ID = re.compile(r"\bT-[0-9A-Z]{6}\b")
WAIT_MS = 20_000  # Telegram-like flood limits are on: the bot may wait out a 429 now and then
CITIZEN_NAME = "Nguyễn Thị Lan"
# The newest change the bot made in a phone's chat (message seq, raised by edits too).
_NEWEST_BOT_SEQ = (
    "root => Math.max(0, ...[...root.querySelectorAll(\".msg[data-from='bot']\")]"
    ".map(row => Number(row.dataset.seq)))"
)


def _expect() -> Any:
    """Playwright's expect with a timeout that allows for the flood limits."""
    from playwright.sync_api import expect

    expect.set_options(timeout=WAIT_MS)
    return expect


def _scene_jpeg() -> bytes:
    """A photo to attach, made on the spot."""
    image = Image.new("RGB", (640, 480), (70, 110, 150))
    for x in range(200, 440):
        for y in range(300, 340):
            image.putpixel((x, y), (220, 200, 90))
    buffer = io.BytesIO()
    image.save(buffer, "JPEG")
    return buffer.getvalue()


class PhoneView:
    """One phone on the page, driven through what is on screen."""

    def __init__(self, page: Any, key: str) -> None:
        self.page = page
        self.root = page.locator(f'[data-phone="{key}"]')

    def messages(self, text: str | re.Pattern[str] = "") -> Any:
        """Message rows (bubble plus buttons) whose bubble contains `text`."""
        rows = self.root.locator(".msg")
        return rows.filter(has=self.page.locator(".bubble", has_text=text)) if text else rows

    def press(self, label: str) -> None:
        """Press a button of the bot's newest message, once it shows one labelled `label`."""
        newest = self.root.locator(".msg[data-from='bot']").last
        button = newest.locator(".ikb button", has_text=label).first
        _expect()(button).to_be_visible()
        self._then_answer(button.click)

    def write(self, text: str) -> None:
        """Type a message, press Enter and wait for the bot's answer."""
        box = self.root.locator("input.text-input")
        box.fill(text)
        self._then_answer(lambda: box.press("Enter"))

    def _then_answer(self, action: Callable[[], None]) -> None:
        """Act, then wait until the bot sends or edits a message here (as a person waits)."""
        root = self.root.element_handle()
        before = self.page.evaluate(_NEWEST_BOT_SEQ, root)
        action()
        self.page.wait_for_function(
            f"([root, before]) => ({_NEWEST_BOT_SEQ})(root) > before",
            arg=[root, before],
            timeout=WAIT_MS,
        )

    def attach_photo(self, name: str, data: bytes) -> None:
        """Attach an image from disk (the file chooser of the paper-clip menu)."""
        self.root.get_by_role("button", name="Đính kèm").click()
        with self.page.expect_file_chooser() as chooser:
            self.root.get_by_role("button", name="Ảnh từ máy").click()
        chooser.value.set_files(files=[{"name": name, "mimeType": "image/jpeg", "buffer": data}])

    def share_location(self, place: str) -> None:
        """Share a location picked from the paper-clip menu's short list."""
        self.root.get_by_role("button", name="Đính kèm").click()
        self.root.get_by_role("button", name="Vị trí").click()
        self._then_answer(self.root.locator(".places button", has_text=place).click)

    def reply_to(self, row: Any, text: str) -> None:
        """Click a message, choose "Trả lời", and send `text` as the reply."""
        row.locator(".bubble").first.click(position={"x": 30, "y": 12})
        self.root.get_by_role("button", name="Trả lời").click()
        _expect()(self.root.locator(".reply-bar")).to_be_visible()
        self.write(text)

    def text(self) -> str:
        """Everything the phone shows."""
        return str(self.root.inner_text())


class ZaloView:
    """The Zalo phone: plain bubbles, choices typed back as their numbers."""

    CHOICE = re.compile(r"^(\d+)\. (.+)$", re.MULTILINE)

    def __init__(self, page: Any) -> None:
        self.page = page
        self.root = page.locator('[data-phone="zalo"]')
        self.incoming = self.root.locator(".zalo-bubble.in")

    def write(self, text: str, answer: str) -> None:
        """Type a message, press Enter, wait for an OA message containing `answer`."""
        before = self.incoming.count()
        box = self.root.locator("input.zalo-input")
        box.fill(text)
        box.press("Enter")
        self.page.wait_for_function(
            "([root, before]) => root.querySelectorAll('.zalo-bubble.in').length > before",
            arg=[self.root.element_handle(), before],
            timeout=WAIT_MS,
        )
        _expect()(self.incoming.filter(has_text=answer).last).to_be_visible()

    def choose(self, label: str, answer: str) -> None:
        """Type the number of the choice labelled `label` in the newest list of choices."""
        texts = self.incoming.all_inner_texts()
        for text in reversed(texts):
            numbers = {choice: number for number, choice in self.CHOICE.findall(text)}
            found = next((n for choice, n in numbers.items() if label in choice), None)
            if found:
                self.write(found, answer)
                return
        raise AssertionError(f"no choice {label!r} on the Zalo phone")


def _shot(page: Any, artifacts: Path, name: str) -> None:
    """Save a screenshot as a test artefact."""
    page.screenshot(path=str(artifacts / f"{name}.png"))


def _commands(demo: DemoProcess) -> list[str]:
    """The commands the bot registered, from the emulator's control API."""
    with urllib.request.urlopen(f"{demo.base}/control/commands", timeout=10) as response:
        data = json.load(response)
    return [command["command"] for command in data.get("commands", [])]


def test_tip_with_photo_card_acknowledge_and_anonymous_reply(
    page: Any, demo: DemoProcess, artifacts: Path
) -> None:
    expect = _expect()
    citizen, inbox = PhoneView(page, "citizen"), PhoneView(page, "inbox")
    expect(page.locator(".phone")).to_have_count(4)  # three Telegram phones, one Zalo
    expect(inbox.messages("Lĩnh vực").first).to_be_visible()  # the seeded cards
    _shot(page, artifacts, "01-start")

    # The citizen sends a tip with a photo.
    citizen.root.get_by_role("button", name="BẮT ĐẦU").click()
    citizen.press("Gửi tin báo")
    citizen.press("Ma túy")
    citizen.press("Không")
    citizen.write("kha cuu")
    citizen.press("Xã Khả Cửu (Phú Thọ)")
    details = "Tối nào cũng có nhóm thanh niên mua bán ma túy ở bãi đất trống cạnh nhà văn hóa."
    citizen.write(details)
    expect(citizen.messages("1 tin nhắn")).not_to_have_count(0)
    citizen.attach_photo("hien-truong.jpg", _scene_jpeg())
    expect(citizen.messages("1 tệp")).not_to_have_count(0)
    citizen.share_location("Nhà văn hóa khu 3")
    expect(citizen.messages("vị trí")).not_to_have_count(0)
    citizen.press("Xong")
    citizen.press("Gửi tin báo")
    receipt = citizen.messages(RECEIPT_CODE).last
    expect(receipt).to_be_visible()
    receipt_text = receipt.inner_text()
    short_id = SHORT_ID.search(receipt_text)
    assert short_id, receipt_text
    code = RECEIPT_CODE.search(receipt_text)
    assert code
    _shot(page, artifacts, "02-citizen-receipt")

    # The card reaches the commune inbox, with the photo copied under it and no name on it.
    card = inbox.messages(short_id.group(0)).filter(has=page.locator(".ikb")).last
    expect(card).to_be_visible()
    expect(card).to_contain_text("Ma túy")
    expect(card).to_contain_text("bãi đất trống")
    photo = inbox.root.locator(".msg img.photo").last
    expect(photo).to_be_visible()
    loaded = "img => img.complete && img.naturalWidth > 0"
    page.wait_for_function(loaded, arg=photo.element_handle())
    expect(inbox.root.locator(".msg .map").last).to_be_visible()  # the location pin
    assert CITIZEN_NAME not in inbox.text(), "officers never see who sent a tip"
    assert code.group(0) not in inbox.text(), "the receipt code never reaches the police"
    card.scroll_into_view_if_needed()
    _shot(page, artifacts, "03-inbox-card")

    # The officer acknowledges: the card is edited in place and the citizen is told.
    card.locator(".ikb button", has_text="Nhận xử lý").click()
    expect(card).to_contain_text("Đang xử lý")
    expect(card).to_contain_text("đã sửa")
    expect(card.locator(".ikb button", has_text="Nhận xử lý")).to_have_count(0)
    expect(citizen.messages("đang được xử lý").last).to_be_visible()

    # The officer replies to the card; the citizen gets it anonymously and answers back.
    question = "Bạn thấy nhóm này thường tụ tập vào khoảng mấy giờ?"
    inbox.reply_to(card, question)
    expect(inbox.messages("ẩn danh").last).to_be_visible()
    asked = citizen.messages(question).last
    expect(asked).to_be_visible()
    expect(asked).to_contain_text(short_id.group(0))
    assert "Hoàng Minh Khôi" not in citizen.text(), "tipsters do not see officers' names"
    asked.locator(".ikb button", has_text="Trả lời").click()
    answer = "Khoảng 22 giờ, gần cổng chợ."
    citizen.write(answer)
    citizen.press("Xong")
    threaded = inbox.messages(answer).last
    expect(threaded).to_be_visible()
    expect(threaded.locator(".quote")).to_contain_text(short_id.group(0))
    assert CITIZEN_NAME not in inbox.text()
    _shot(page, artifacts, "04-reply-round-trip")


def test_another_citizen_stays_anonymous_too(page: Any, demo: DemoProcess, artifacts: Path) -> None:
    expect = _expect()
    page.get_by_role("button", name="Thêm người dân").click()
    expect(page.locator(".phone")).to_have_count(5)
    second = PhoneView(page, "citizen-2")
    second.root.get_by_role("button", name="BẮT ĐẦU").click()
    expect(second.root.locator(".ikb button", has_text="Gửi tin báo")).to_be_visible()
    name = second.root.locator(".phone-caption .who").inner_text()
    assert name and name not in PhoneView(page, "inbox").text()
    _shot(page, artifacts, "05-second-citizen")


def test_narrow_screen_shows_one_phone_per_tab(
    browser: Any, demo: DemoProcess, artifacts: Path
) -> None:
    expect = _expect()
    context = browser.new_context(viewport={"width": 420, "height": 900}, locale="vi-VN")
    page = context.new_page()
    try:
        page.goto(demo.url)
        page.wait_for_selector("body[data-ready='true']")
        expect(page.locator(".phone:visible")).to_have_count(1)
        page.get_by_role("tab", name="Cán bộ công an xã").click()
        expect(page.locator('[data-phone="inbox"]')).to_be_visible()
        expect(page.locator('[data-phone="citizen"]')).to_be_hidden()
        _shot(page, artifacts, "06-narrow-inbox-tab")
    finally:
        context.close()


def test_subscribe_and_receive_a_broadcast(page: Any, demo: DemoProcess, artifacts: Path) -> None:
    if "subscribe" not in _commands(demo):
        pytest.skip("outreach (/subscribe, /broadcast) is not in this build yet")
    expect = _expect()
    page.get_by_role("button", name="Thêm người dân").click()
    subscriber = PhoneView(page, page.locator(".phone").last.get_attribute("data-phone") or "")
    staff = PhoneView(page, "staff")

    # A citizen subscribes to the commune's outreach news from the menu.
    subscriber.root.get_by_role("button", name="BẮT ĐẦU").click()
    subscriber.press("Nhận tin tuyên truyền")
    subscriber.write("kha cuu")
    subscriber.press("Xã Khả Cửu (Phú Thọ)")
    subscriber.press("lừa đảo qua mạng")
    subscriber.press("Xong")
    expect(subscriber.messages("🔔").last).to_contain_text("Xã Khả Cửu")

    # The outreach staff sends a broadcast from their chat.
    text = "Cảnh báo: giả danh công an gọi điện yêu cầu chuyển tiền là lừa đảo."
    staff.write("/broadcast")
    staff.press("Tin nhắn mới")
    staff.write(text)
    staff.press("Theo xã, phường")  # the demo's outreach staff work in Phú Thọ only
    staff.write("kha cuu")
    staff.press("Xã Khả Cửu (Phú Thọ)")
    staff.press("Gửi ngay")  # the demo's quiet hours are set away from now (conftest)
    expect(staff.messages("Đánh dấu khẩn")).to_have_count(0)  # urgent: supervisors only
    staff.press("Xác nhận")
    expect(staff.messages(re.compile(r"#\d+")).last).to_be_visible()
    _shot(page, artifacts, "07-broadcast-sent")

    # It reaches the subscriber.
    expect(subscriber.messages(text).last).to_be_visible()
    _shot(page, artifacts, "08-broadcast-received")


def test_a_tip_from_the_zalo_phone_reaches_the_inbox(
    page: Any, demo: DemoProcess, artifacts: Path
) -> None:
    expect = _expect()
    zalo, inbox = ZaloView(page), PhoneView(page, "inbox")
    # The seeded Zalo tip is already in the commune's inbox, like any other.
    expect(inbox.messages("đường tỉnh 316").first).to_be_visible()
    zalo.root.get_by_role("button", name="Quan tâm").click()
    expect(zalo.incoming.filter(has_text="Gửi tin báo").last).to_be_visible()
    zalo.choose("Gửi tin báo", "Ma túy")
    zalo.choose("Ma túy", "Không")
    zalo.choose("Không", "kha cuu")
    zalo.write("kha cuu", "Xã Khả Cửu")
    zalo.choose("Xã Khả Cửu (Phú Thọ)", "Xong")
    details = "Có người lạ bán ma túy ở cổng chợ Khả Cửu, gửi từ Zalo."
    zalo.write(details, "Xong")
    zalo.choose("Xong", "📨")
    zalo.choose("📨", "T-")
    receipt = zalo.incoming.filter(has_text=RECEIPT_CODE).last
    expect(receipt).to_be_visible()
    short_id = SHORT_ID.search(receipt.inner_text())
    assert short_id
    _shot(page, artifacts, "09-zalo-receipt")
    card = inbox.messages(short_id.group(0)).filter(has=page.locator(".ikb")).last
    expect(card).to_contain_text("cổng chợ Khả Cửu")
    assert "Người dân Zalo" not in inbox.text(), "officers never see who sent a tip"
    _shot(page, artifacts, "10-zalo-tip-in-inbox")


def test_the_console_opens_with_the_printed_demo_login(
    browser: Any, demo: DemoProcess, artifacts: Path
) -> None:
    import pyotp

    printed = "".join(demo.output)
    found = re.search(r"username (\S+)\s+password (\S+)\s+TOTP secret ([A-Z2-7]+)", printed)
    assert found, printed[-2000:]
    username, password, secret = found.groups()
    context = browser.new_context(viewport={"width": 1280, "height": 900}, locale="vi-VN")
    page = context.new_page()
    page.goto(demo.base + "/web/")
    link = page.locator("#console-link")
    assert link.get_attribute("href") == "/console/login"
    page.goto(demo.base + "/console/login")
    page.get_by_label("Tên đăng nhập").fill(username)
    page.get_by_label("Mật khẩu").fill(password)
    page.get_by_label("Mã 6 chữ số trong ứng dụng xác thực").fill(pyotp.TOTP(secret).now())
    page.get_by_role("button", name="Đăng nhập").click()
    page.wait_for_url("**/console/tips")
    page.wait_for_selector("body[data-live-ready='true']")
    rows = page.locator("tr[data-tip]")
    assert rows.count() >= 3  # the seeded tips of Xã Khả Cửu, the Zalo one among them
    page.screenshot(path=str(artifacts / "demo-console.png"), full_page=True)
    context.close()

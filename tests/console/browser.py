"""An officer in Chromium: opening an account, logging in, working a tip."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.console.support import PASSWORD, fresh_code

LIVE = "body[data-live-ready='true']"


class Officer:
    """One officer's browser tab on the console."""

    def __init__(self, page: Any, base: str, shots: Path) -> None:
        self.page = page
        self.base = base + "/console"
        self.shots = shots
        self.secret = ""
        self.used: list[int] = []
        self.errors: list[str] = []
        page.on("pageerror", lambda error: self.errors.append(str(error)))

    async def shot(self, name: str) -> None:
        """A screenshot under test-artifacts/browser/."""
        await self.page.screenshot(path=str(self.shots / f"console-{name}.png"), full_page=True)

    async def open_account(
        self, code: str, name: str, username: str, *, lands_on: str = "tips"
    ) -> None:
        """The invite link, the account form, the QR page, the first code."""
        page = self.page
        await page.goto(f"{self.base}/join?code={code}")
        await page.get_by_label("Họ tên (để đồng đội nhận ra)").fill(name)
        await page.get_by_label("Tên đăng nhập").fill(username)
        await page.get_by_label("Mật khẩu (ít nhất 10 ký tự)").fill(PASSWORD)
        await page.get_by_label("Nhập lại mật khẩu").fill(PASSWORD)
        await page.get_by_role("button", name="Mở tài khoản").click()
        await page.wait_for_url("**/console/enroll")
        assert await page.locator("figure.qr svg").count() == 1
        self.secret = await page.locator("#totp-secret").inner_text()
        await self.shot("enroll")
        await page.get_by_label("Mã 6 chữ số").fill(fresh_code(self.secret, self.used))
        await page.get_by_role("button", name="Xác nhận").click()
        await page.wait_for_url(f"**/console/{lands_on}")

    async def log_in(self, username: str) -> None:
        """The login form: password and a fresh code."""
        page = self.page
        await page.goto(f"{self.base}/login")
        await page.get_by_label("Tên đăng nhập").fill(username)
        await page.get_by_label("Mật khẩu").fill(PASSWORD)
        await page.get_by_label("Mã 6 chữ số trong ứng dụng xác thực").fill(
            fresh_code(self.secret, self.used)
        )
        await page.get_by_role("button", name="Đăng nhập").click()
        await page.wait_for_url("**/console/tips")
        await page.wait_for_selector(LIVE)

    async def open_tip(self, short_id: str) -> None:
        """Click a tip in the list; wait for its page to listen live."""
        await self.page.click(f"tr[data-tip='{short_id}'] a")
        await self.page.wait_for_url("**/console/tips/*")
        await self.page.wait_for_selector(LIVE)

    async def reply(self, text: str) -> None:
        """Answer the tipster from the tip page."""
        await self.page.get_by_label("Câu trả lời hoặc câu hỏi của bạn").fill(text)
        await self.page.get_by_role("button", name="Gửi cho người báo tin").click()
        await self.page.wait_for_selector(f"#thread .message.police:has-text('{text[:20]}')")

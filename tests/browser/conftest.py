"""Headless Chromium (Debian's, driven by Playwright) on the session's workbench stack.

Screenshots for docs/user-guide.md are taken here (`screenshot`), so the guide shows the page as it is.
"""

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from playwright.async_api import Browser, Page, async_playwright, expect

from devstack import Stack

CHROMIUM = "/usr/bin/chromium"
GUIDE_IMAGES = Path(__file__).resolve().parents[2] / "docs" / "images"
VIEWPORT = {"width": 1440, "height": 900}


@pytest.fixture
def chromium() -> str:
    if not Path(CHROMIUM).exists():
        pytest.fail("Chromium is missing: `make test` installs it (apt-get install chromium)")
    return CHROMIUM


@pytest.fixture
async def browser(chromium: str) -> AsyncIterator[Browser]:
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=chromium,
            args=["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"],
        )
        yield browser
        await browser.close()


def signed_in(stack: Stack, fragment: str = "") -> str:
    """The page's address as a one-time login link (the bootstrap admin's), plus `fragment` (e.g. dataset=<id>)."""
    link = stack.login_link()
    return f"{link}&{fragment}" if fragment else link


@pytest.fixture
async def page(browser: Browser, stack: Stack) -> AsyncIterator[Page]:
    page = await browser.new_page(viewport=VIEWPORT, accept_downloads=True)
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    await page.goto(signed_in(stack))
    # Signed in and following the live socket before the test acts: a result recorded earlier
    # would reach the grid by a fetch, not live (a test counting live frames would race the login).
    await expect(page.locator("#live-status")).to_have_text("live", timeout=30_000)
    yield page
    await page.close()
    assert not errors, f"the page raised: {errors}"


async def screenshot(page: Page, name: str) -> None:
    """A picture for the user guide (docs/images/<name>.png)."""
    GUIDE_IMAGES.mkdir(parents=True, exist_ok=True)
    await page.screenshot(path=str(GUIDE_IMAGES / f"{name}.png"))

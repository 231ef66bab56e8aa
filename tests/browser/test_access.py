"""Logging in in real Chromium: a one-time link becomes an HttpOnly session, no secret is left in an
address, the Content-Security-Policy holds (no violation while the page works), and a viewer sees
no admin controls and is told why a mark is refused."""

import httpx
from playwright.async_api import Browser, Page, expect

from devstack import Stack
from tests.browser.conftest import VIEWPORT, signed_in
from tests.conftest import store_answers, upload_records

# Records every CSP violation the page meets (a blocked script, style or connection) before any script runs.
CSP_WATCH = """
window.cspViolations = [];
document.addEventListener("securitypolicyviolation", (e) => {
  window.cspViolations.push(e.violatedDirective + " " + e.blockedURI);
});
"""


async def test_a_login_link_opens_the_page_once_and_leaves_no_secret_behind(browser: Browser, stack: Stack) -> None:
    page = await browser.new_page(viewport=VIEWPORT)
    await page.add_init_script(CSP_WATCH)
    requested: list[str] = []
    page.on("request", lambda request: requested.append(request.url))
    link = signed_in(stack)
    code = link.split("#login=")[1]

    await page.goto(link)
    await expect(page.locator("#whoami-name")).to_have_text("admin (admin)")
    await expect(page.locator("#live-status")).to_have_text("live")
    await page.locator("#export-menu summary").click()

    assert "login=" not in page.url  # out of the address bar (and so of the history)
    assert not [url for url in requested if code in url or "token=" in url]
    assert "wb_session" not in await page.evaluate("document.cookie")  # HttpOnly: no script can read it
    assert await page.evaluate("window.cspViolations") == []

    # The same link again, in a fresh browser: refused, and the page says what to do.
    other = await browser.new_page(viewport=VIEWPORT)
    await other.goto(link)
    await expect(other.locator("#login-form")).to_be_visible()
    await expect(other.locator("#notice")).to_contain_text("used already")
    await other.close()
    await page.close()


async def test_a_viewer_sees_no_admin_controls_and_is_told_why_a_mark_is_refused(
    browser: Browser, stack: Stack, api: httpx.AsyncClient
) -> None:
    dataset_id = await upload_records(api, "viewer.jsonl", [{"id": "v0", "prompt": "Capital?"}])
    await store_answers(stack, dataset_id, {"v0": {"tiny-a": "Paris", "tiny-b": "Lyon"}})
    added = await api.post("/admin/users", json={"name": "vera", "role": "viewer"})
    assert added.status_code == 201, added.text
    link = (await api.post("/admin/users/vera/login-link")).json()["url"]
    page: Page = await browser.new_page(viewport=VIEWPORT)
    await page.add_init_script(CSP_WATCH)

    await page.goto(f"{link}&dataset={dataset_id}")
    cell = page.locator('.cell[data-record-id="v0"][data-model-id="tiny-a"]')
    await expect(cell.locator(".output")).to_have_text("Paris", timeout=30_000)
    await expect(page.locator("#whoami-name")).to_have_text("vera (viewer)")
    await expect(page.locator("#drop-zone")).to_be_hidden()
    await expect(page.locator("#run-button")).to_be_hidden()

    await page.locator("#results").focus()
    await page.keyboard.press("g")
    await expect(page.locator("#notice")).to_contain_text("needs the annotator role; vera is viewer")
    assert await page.evaluate("window.cspViolations") == []
    await page.close()

"""The workbench page in real headless Chromium: upload, run two models, see outputs side by side, star one;
a record's metadata beside its input; a record id holding "/" annotated exactly."""

import json
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from playwright.async_api import Browser, Page, async_playwright, expect

from devstack import Stack

pytestmark = [pytest.mark.browser, pytest.mark.vllm]

CHROMIUM = "/usr/bin/chromium"
HOSTILE = "<img src=x onerror=\"document.title='pwned'\">"


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


@pytest.fixture
async def page(browser: Browser, stack: Stack) -> AsyncIterator[Page]:
    page = await browser.new_page()
    await page.goto(f"{stack.url}/#token={stack.token}")
    yield page
    await page.close()


async def test_a_user_uploads_runs_two_models_and_stars_an_answer(page: Page, tmp_path: Path) -> None:
    records = [{"id": "hostile", "prompt": HOSTILE}]
    records += [{"id": f"b{i}", "prompt": f"Tell me about {i}"} for i in range(4)]
    dataset_file = tmp_path / "browser-test.jsonl"
    dataset_file.write_text("".join(json.dumps(r) + "\n" for r in records))

    await page.set_input_files("#upload-input", str(dataset_file))
    await expect(page.locator("#dataset-list")).to_contain_text("browser-test.jsonl", timeout=30_000)
    await page.locator("#dataset-list").get_by_text("browser-test.jsonl").first.click()

    for model in ("tiny-a", "tiny-b"):
        await page.locator(f'#model-list input[value="{model}"]').check()
    await page.click("#run-button")

    for model in ("tiny-a", "tiny-b"):
        cell = page.locator(f'[data-record-id="b3"][data-model-id="{model}"]')
        await expect(cell).not_to_be_empty(timeout=240_000)
        await expect(cell.locator(".output")).not_to_have_text("", timeout=240_000)

    # Text from records and models is shown as text, never interpreted as HTML.
    await expect(page.locator("#results")).to_contain_text(HOSTILE, timeout=30_000)
    assert await page.locator("#results img").count() == 0
    assert await page.title() != "pwned"

    star = page.locator('[data-record-id="b1"][data-model-id="tiny-a"] .golden-button')
    await star.click()
    await expect(star).to_have_attribute("aria-pressed", "true", timeout=15_000)
    assert "/admin/export/" in (await page.locator("#export-link").get_attribute("href") or "")


async def test_a_record_shows_its_metadata_and_an_id_with_slashes_is_starred_exactly(
    page: Page, api: httpx.AsyncClient, tmp_path: Path
) -> None:
    # "team/7/" is annotated as record "team/7" by any form that puts the id in a URL path.
    records = [
        {"id": "team/7/", "prompt": "Describe candidate seven.", "name": "Ada", "years": 7, "pedigree": HOSTILE},
        {"id": "team/7", "prompt": "Describe candidate eight.", "name": "Bob", "years": 3},
    ]
    dataset_file = tmp_path / "metadata-test.jsonl"
    dataset_file.write_text("".join(json.dumps(r) + "\n" for r in records))

    await page.set_input_files("#upload-input", str(dataset_file))
    await expect(page.locator("#dataset-list")).to_contain_text("metadata-test.jsonl", timeout=30_000)
    await page.locator("#dataset-list").get_by_text("metadata-test.jsonl").first.click()
    dataset_id = await page.locator("#results").get_attribute("data-dataset-id")
    assert dataset_id
    await expect(page.locator("#dataset-list")).to_contain_text(dataset_id)

    # The record's own fields are shown beside its input, as text.
    input_cell = page.locator('tr[data-record-id="team/7/"] .input-col')
    await expect(input_cell).to_contain_text("Describe candidate seven.", timeout=30_000)
    await expect(input_cell.locator(".metadata")).to_contain_text("name: Ada")
    await expect(input_cell.locator(".metadata")).to_contain_text("years: 7")
    await expect(input_cell.locator(".metadata")).to_contain_text(f"pedigree: {HOSTILE}")
    assert await page.locator("#results img").count() == 0

    await page.locator('#model-list input[value="tiny-a"]').check()
    await page.click("#run-button")
    cell = page.locator('td[data-record-id="team/7/"][data-model-id="tiny-a"]')
    await expect(cell.locator(".output")).not_to_have_text("", timeout=240_000)

    star = cell.locator(".golden-button")
    await star.click()
    await expect(star).to_have_attribute("aria-pressed", "true", timeout=15_000)

    response = await api.get("/admin/workbench/results", params={"dataset_id": dataset_id})
    assert response.status_code == 200, response.text
    annotations = {r["record_id"]: r["annotations"] for r in response.json()["records"]}
    assert {m: a["kind"] for m, a in annotations["team/7/"].items()} == {"tiny-a": "golden"}
    assert annotations["team/7"] == {}  # the look-alike id (what a URL path makes of "team/7/") untouched

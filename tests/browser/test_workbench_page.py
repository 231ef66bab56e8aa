"""The workbench page in real headless Chromium: upload, run two models, see outputs side by side, star one;
a record's metadata beside its input; a record id holding "/" annotated exactly."""

import json
from pathlib import Path

import httpx
import pytest
from playwright.async_api import Page, expect

pytestmark = [pytest.mark.browser, pytest.mark.vllm]

HOSTILE = "<img src=x onerror=\"document.title='pwned'\">"


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
    jsonl_link = page.locator('a.export-link[data-format="jsonl"]')
    assert "/admin/export/" in (await jsonl_link.get_attribute("href") or "")


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
    input_cell = page.locator('[role="row"][data-record-id="team/7/"] .input-col')
    await expect(input_cell).to_contain_text("Describe candidate seven.", timeout=30_000)
    await expect(input_cell.locator(".metadata")).to_contain_text("name: Ada")
    await expect(input_cell.locator(".metadata")).to_contain_text("years: 7")
    await expect(input_cell.locator(".metadata")).to_contain_text(f"pedigree: {HOSTILE}")
    assert await page.locator("#results img").count() == 0

    await page.locator('#model-list input[value="tiny-a"]').check()
    await page.click("#run-button")
    cell = page.locator('.cell[data-record-id="team/7/"][data-model-id="tiny-a"]')
    await expect(cell.locator(".output")).not_to_have_text("", timeout=240_000)

    star = cell.locator(".golden-button")
    # The star lights up as soon as the mark is stored (the WebSocket tells every page); the read
    # model has it once the POST has answered.
    async with page.expect_response(
        lambda r: r.url.endswith("/admin/annotations") and r.request.method == "POST"
    ) as posted:
        await star.click()
    assert (await posted.value).status == 201
    await expect(star).to_have_attribute("aria-pressed", "true", timeout=15_000)

    response = await api.get("/admin/workbench/results", params={"dataset_id": dataset_id})
    assert response.status_code == 200, response.text
    annotations = {r["record_id"]: r["annotations"] for r in response.json()["records"]}
    assert {m: a["kind"] for m, a in annotations["team/7/"].items()} == {"tiny-a": "golden"}
    assert annotations["team/7"] == {}  # the look-alike id (what a URL path makes of "team/7/") untouched


VERDICT = {
    "type": "object",
    "properties": {"recommendation": {"enum": ["accept", "reject"]}, "confident": {"type": "boolean"}},
    "required": ["recommendation", "confident"],
    "additionalProperties": False,
}


async def test_a_run_with_sampling_and_a_schema_from_the_page_records_them_and_a_long_run_is_cancelled(
    page: Page, api: httpx.AsyncClient, tmp_path: Path
) -> None:
    records = [{"id": f"v{i}", "prompt": f"Give a verdict on paper {i}"} for i in range(3)]
    dataset_file = tmp_path / "verdicts.jsonl"
    dataset_file.write_text("".join(json.dumps(r) + "\n" for r in records))
    await page.set_input_files("#upload-input", str(dataset_file))
    await page.locator("#dataset-list").get_by_text("verdicts.jsonl").first.click(timeout=30_000)

    # The model shows the worker that serves it.
    await expect(page.locator('#model-list label:has(input[value="tiny-a"]) .worker-state')).to_contain_text(
        "1 worker", timeout=30_000
    )
    await page.locator('#model-list input[value="tiny-a"]').check()
    await page.locator(".run-options summary").click()
    await page.fill("#sampling-temperature", "1")
    await page.fill("#sampling-max-tokens", "96")
    await page.fill("#sampling-seed", "3")
    await page.fill("#json-schema", json.dumps(VERDICT))
    await page.click("#run-button")

    card = page.locator("#runs li.run").first
    await expect(card).to_have_attribute("data-status", "completed", timeout=240_000)
    await card.locator(".reproducibility summary").click()
    facts = card.locator(".reproducibility")
    await expect(facts).to_contain_text("seed 3")
    await expect(facts).to_contain_text("max_tokens 96")
    await expect(facts).to_contain_text('"recommendation"')
    await expect(facts).to_contain_text("weights sha256")
    dataset_id = await page.locator("#results").get_attribute("data-dataset-id")
    view = (await api.get("/admin/workbench/results", params={"dataset_id": dataset_id})).json()
    answers = [record["results"]["tiny-a"]["output_text"] for record in view["records"]]
    assert len(answers) == 3 and all(json.loads(a)["recommendation"] in ("accept", "reject") for a in answers)

    # A long run is cancelled from its card; what it recorded stays.
    many = [{"id": f"l{i}", "prompt": f"Tell a long story about the river {i}"} for i in range(300)]
    long_file = tmp_path / "long-stories.jsonl"
    long_file.write_text("".join(json.dumps(r) + "\n" for r in many))
    await page.set_input_files("#upload-input", str(long_file))
    await page.locator("#dataset-list").get_by_text("long-stories.jsonl").first.click(timeout=30_000)
    await page.fill("#json-schema", "")
    await page.fill("#sampling-max-tokens", "400")
    await page.click("#run-button")
    running = page.locator('#runs li.run[data-status="running"]').first
    page.once("dialog", lambda dialog: dialog.accept())
    await running.locator("button.cancel").click(timeout=120_000)
    await expect(page.locator("#runs li.run").first).to_have_attribute("data-status", "cancelled", timeout=30_000)
    await expect(page.locator("#runs li.run").first.locator("button.cancel")).to_have_count(0)

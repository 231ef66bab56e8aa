"""Reviewing on the page, in real headless Chromium: the seed's manual test from a dropped file to a
deleted dataset with the keyboard only; hostile answers shown as text with the differing JSON field
highlighted; the gateway restarted mid-run and every result on the page once.

The first test also takes the user guide's screenshots (docs/images)."""

import asyncio
import csv
import io
import json
import re
import time
from pathlib import Path

import httpx
import pytest
from label_studio_sdk import LabelStudio
from playwright.async_api import Browser, Page, WebSocketRoute, expect

from annotations_service.domain.label_studio_tasks import model_key
from devstack import Stack
from tests.browser.conftest import VIEWPORT, screenshot, signed_in
from tests.conftest import LabelStudioServer, store_answers, upload_records

pytestmark = [pytest.mark.browser]

RUN_WAIT_MS = 240_000


async def drop_file(page: Page, name: str, text: str) -> None:
    """Drops a file on the upload zone as a browser does (a DataTransfer on dragover and drop)."""
    await page.evaluate(
        """([name, text]) => {
            const data = new DataTransfer();
            data.items.add(new File([text], name, { type: "application/x-ndjson" }));
            const zone = document.getElementById("drop-zone");
            for (const type of ["dragover", "drop"]) {
                zone.dispatchEvent(new DragEvent(type, { dataTransfer: data, bubbles: true, cancelable: true }));
            }
        }""",
        [name, text],
    )


def lines(records: list[dict[str, object]]) -> str:
    return "".join(json.dumps(r) + "\n" for r in records)


async def download(page: Page, export_format: str) -> str:
    await page.locator("#export-menu summary").click()
    async with page.expect_download() as started:
        await page.locator(f'a.export-link[data-format="{export_format}"]').click()
    path = await (await started.value).path()
    await page.locator("#export-menu summary").click()  # folds the menu again
    return await asyncio.to_thread(Path(path).read_text, encoding="utf-8")


@pytest.mark.vllm
async def test_the_seeds_manual_test_from_a_dropped_file_to_a_deleted_dataset(page: Page) -> None:
    # Drag and drop a dataset.
    records = [{"id": f"q{i}", "prompt": f"Summarise report {i} in one line", "team": f"t{i % 3}"} for i in range(6)]
    await drop_file(page, "review-drop.jsonl", lines(records))
    await expect(page.locator("#upload-status")).to_contain_text("Registered review-drop.jsonl: 6 records")
    await expect(page.locator('#dataset-list [aria-current="true"]')).to_contain_text("review-drop.jsonl")
    await screenshot(page, "upload")

    # Tick two models and run them; the progress bars finish.
    for model in ("tiny-a", "tiny-b"):
        await page.locator(f'#model-list input[value="{model}"]').check()
    await page.click("#run-button")
    cards = page.locator("#runs li.run")
    await expect(cards).to_have_count(2, timeout=30_000)
    for i in range(2):
        await expect(cards.nth(i)).to_have_attribute("data-status", "completed", timeout=RUN_WAIT_MS)
        bar = cards.nth(i).locator("progress")
        await expect(bar).to_have_attribute("value", "6")
        assert await bar.get_attribute("max") == "6"

    # The rows filled in live, from the WebSocket.
    assert int(await page.locator("#results").get_attribute("data-live-applied") or 0) >= 12
    for model in ("tiny-a", "tiny-b"):
        await expect(page.locator(f'.cell[data-record-id="q5"][data-model-id="{model}"] .output')).not_to_be_empty()
    await expect(page.locator('#counts [data-count="total"]')).to_have_text("6")
    await screenshot(page, "results")

    # Review the records whose answers differ, with the keyboard only.
    async with page.expect_response(lambda response: "filter=differences" in response.url):
        await page.select_option("#filter", "differences")
    await page.focus("#results")
    rows = page.locator('#results [role="row"][data-record-id]')
    await expect(rows.nth(2)).to_be_visible()
    first_id = await rows.nth(0).get_attribute("data-record-id")
    second_id = await rows.nth(1).get_attribute("data-record-id")
    third_id = await rows.nth(2).get_attribute("data-record-id")
    # A model's key is its column's number (columns in the order the runs were requested).
    columns = [
        await head.get_attribute("data-model-id") for head in await page.locator(".grid-head [data-model-id]").all()
    ]
    key = {model_id: str(number) for number, model_id in enumerate(columns, start=1)}
    assert set(key) == {"tiny-a", "tiny-b"}

    await page.keyboard.press(key["tiny-a"])
    await page.keyboard.press("g")  # golden: record 1, tiny-a
    await expect(page.locator(f'.cell[data-record-id="{first_id}"][data-model-id="tiny-a"]')).to_have_attribute(
        "data-annotation", "golden"
    )
    await page.keyboard.press("j")
    await page.keyboard.press(key["tiny-b"])
    await page.keyboard.press("f")  # fix: an editor prefilled with the answer
    answer = await page.locator(f'.cell[data-record-id="{second_id}"][data-model-id="tiny-b"] .output').inner_text()
    editor = page.locator("#edit-text")
    await expect(editor).to_be_visible()
    assert (await editor.input_value()).strip() == answer.strip()
    await screenshot(page, "fix")
    await editor.fill("A corrected one-line summary.")
    await page.keyboard.press("Control+Enter")
    fixed = page.locator(f'.cell[data-record-id="{second_id}"][data-model-id="tiny-b"]')
    await expect(fixed).to_have_attribute("data-annotation", "fixed")
    await expect(fixed.locator(".fixed-output")).to_have_text("A corrected one-line summary.")

    await page.keyboard.press("j")
    await page.keyboard.press(key["tiny-a"])
    await page.keyboard.press("w")  # wrong, then undo it
    flagged = page.locator(f'.cell[data-record-id="{third_id}"][data-model-id="tiny-a"]')
    await expect(flagged).to_have_attribute("data-annotation", "wrong")
    await page.keyboard.press("u")
    await expect(flagged).not_to_have_attribute("data-annotation", "wrong")
    await page.keyboard.press("w")
    await expect(flagged).to_have_attribute("data-annotation", "wrong")

    # The counts follow, live.
    await expect(page.locator('#counts [data-count="golden"]')).to_have_text("1")
    await expect(page.locator('#counts [data-count="fixed"]')).to_have_text("1")
    await expect(page.locator('#counts [data-count="wrong"]')).to_have_text("1")
    await screenshot(page, "review")

    # A record's detail view: every answer in full and the history of its marks (the undo included).
    await page.keyboard.press("Enter")
    detail = page.locator("#record-detail")
    await expect(detail).to_be_visible()
    await expect(detail.locator(".history")).to_contain_text("wrong")
    await expect(detail.locator(".history")).to_contain_text("cleared")
    await screenshot(page, "detail")
    await page.keyboard.press("Escape")
    await page.keyboard.press("?")
    await expect(page.locator("#keys-dialog")).to_be_visible()
    await page.keyboard.press("Escape")

    # Export JSONL and CSV, and read the downloads: golden and fixed, by default.
    exported = [json.loads(line) for line in (await download(page, "jsonl")).splitlines()]
    assert sorted((row["record_id"], row["kind"]) for row in exported) == sorted(
        [(first_id, "golden"), (second_id, "fixed")]
    )
    assert next(row for row in exported if row["kind"] == "fixed")["fixed_text"] == "A corrected one-line summary."
    table = list(csv.DictReader(io.StringIO((await download(page, "csv")).lstrip("\ufeff"))))
    assert sorted(row["kind"] for row in table) == ["fixed", "golden"]
    await page.locator("#export-menu summary").click()
    await screenshot(page, "export")
    await page.locator("#export-menu summary").click()

    # Rename the dataset, then delete it after saying yes.
    page.once("dialog", lambda dialog: dialog.accept("reviewed reports"))
    await page.locator(".rename-dataset").click()
    await expect(page.locator('#dataset-list [aria-current="true"] .name')).to_have_text("reviewed reports")
    await expect(page.locator("#results-dataset")).to_have_text("· reviewed reports")
    page.once("dialog", lambda dialog: dialog.accept())
    await page.locator(".delete-dataset").click()
    await expect(page.locator("#dataset-list")).not_to_contain_text("reviewed reports")
    await expect(page.locator("#results-summary")).to_have_text("Select a dataset.")


HOSTILE_ANSWERS = {
    "tiny-a": '{"recommendation": "hire", "pedigree": "<img src=x onerror=\\"document.title=\'pwned\'\\">"}',
    "tiny-b": '{"recommendation": "pass", "pedigree": "<img src=x onerror=\\"document.title=\'pwned\'\\">"}',
}
SCRIPT_END = "</script><script>document.title='pwned'</script>"
LINK = "[click](javascript:document.title='pwned') javascript:alert(1)"
BIDI = "\u202egnp.exe\u202c and \u2067isolated\u2069"


async def test_hostile_answers_are_text_and_the_differing_json_field_is_highlighted(
    page: Page, stack: Stack, api: httpx.AsyncClient
) -> None:
    # A dataset whose answers (stored as a run would store them) try to be HTML, script, links and bidi tricks.
    dataset_id = await upload_records(api, "hostile.jsonl", [{"id": f"h{i}", "prompt": f"Judge {i}"} for i in range(3)])
    answers = {
        "h0": HOSTILE_ANSWERS,
        "h1": dict.fromkeys(HOSTILE_ANSWERS, SCRIPT_END),
        "h2": {"tiny-a": LINK, "tiny-b": BIDI},
    }
    await store_answers(stack, dataset_id, answers)

    await page.goto(signed_in(stack, f"dataset={dataset_id}"))
    await page.reload()  # the fragment alone does not load a page again
    results = page.locator("#results")
    await expect(page.locator('.cell[data-record-id="h2"][data-model-id="tiny-b"] .output')).to_have_text(
        BIDI, timeout=30_000
    )
    await expect(results).to_contain_text("<img src=x onerror=")
    await expect(results).to_contain_text(SCRIPT_END)
    await expect(results).to_contain_text("javascript:alert(1)")
    assert await page.locator("#results img, #results script, #results a").count() == 0
    assert await page.title() != "pwned"

    # The JSON answers are formatted, and the field where they differ is the one highlighted.
    cell = page.locator('.cell[data-record-id="h0"][data-model-id="tiny-a"]')
    await expect(cell.locator(".diff-line")).to_have_count(1, timeout=30_000)
    assert await cell.locator(".diff-line").get_attribute("data-path") == "$.recommendation"
    await expect(cell.locator('[data-path="$.pedigree"]')).not_to_have_class("json-line diff-line")
    await page.locator("#results").focus()
    await page.keyboard.press("Enter")
    await expect(page.locator("#record-detail .answer .diff-line").first).to_have_attribute(
        "data-path", "$.recommendation"
    )
    assert await page.locator("#record-detail img, #record-detail script, #record-detail a").count() == 0


@pytest.mark.vllm
@pytest.mark.restarts_stack
async def test_the_gateway_restarted_mid_run_leaves_every_result_on_the_page_once(page: Page, stack: Stack) -> None:
    records = [{"id": f"g{i:03d}", "prompt": f"Write a long story about harbour {i}"} for i in range(60)]
    await drop_file(page, "restart.jsonl", lines(records))
    await expect(page.locator("#upload-status")).to_contain_text("Registered restart.jsonl", timeout=30_000)
    await page.locator('#model-list input[value="tiny-a"]').check()
    await page.locator(".run-options summary").click()
    await page.fill("#sampling-max-tokens", "200")
    await page.click("#run-button")
    results = page.locator("#results")
    await expect(results).not_to_have_attribute("data-live-applied", "0", timeout=RUN_WAIT_MS)

    # The gateway goes away mid-run and comes back; the page says so meanwhile.
    stack.stop(("gateway",))
    await expect(page.locator("#live-banner")).to_be_visible(timeout=15_000)
    stack.start(("gateway",))
    await expect(page.locator("#live-status")).to_have_text("live", timeout=60_000)
    await expect(page.locator("#live-banner")).to_be_hidden()

    card = page.locator("#runs li.run").first
    await expect(card).to_have_attribute("data-status", "completed", timeout=RUN_WAIT_MS)
    # Every result reached the page live exactly once: the socket resumed where it stopped.
    await expect(results).to_have_attribute("data-live-applied", "60", timeout=30_000)
    assert await results.get_attribute("data-live-duplicates") == "0"
    # And every row shows its answer (scrolled through: only the rows on screen are in the page).
    seen: set[str] = set()
    for _ in range(20):
        for row in await page.locator('#results [role="row"][data-record-id]').all():
            if await row.locator('.cell[data-model-id="tiny-a"] .output').count():
                seen.add(await row.get_attribute("data-record-id") or "")
        await results.evaluate("(grid) => { grid.scrollTop += grid.clientHeight; }")
        await page.wait_for_timeout(100)
    assert seen == {record["id"] for record in records}


async def test_a_mark_made_meanwhile_by_someone_else_is_shown_with_theirs_and_mine_and_never_overwritten(
    browser: Browser, stack: Stack, api: httpx.AsyncClient
) -> None:
    dataset_id = await upload_records(api, "conflict.jsonl", [{"id": "c0", "prompt": "Judge"}])
    await store_answers(stack, dataset_id, {"c0": {"tiny-a": "accept", "tiny-b": "reject"}})
    page = await browser.new_page(viewport=VIEWPORT)

    # This page does not hear of other people's marks (its annotation frames are held back).
    def without_annotation_frames(socket: WebSocketRoute) -> None:
        server = socket.connect_to_server()
        server.on_message(lambda message: None if '"type":"annotation"' in str(message) else socket.send(message))

    await page.route_web_socket(re.compile(r"/ws/workbench"), without_annotation_frames)
    await page.goto(signed_in(stack, f"dataset={dataset_id}"))
    cell = page.locator('.cell[data-record-id="c0"][data-model-id="tiny-a"]')
    await expect(cell.locator(".output")).to_have_text("accept", timeout=30_000)
    await expect(page.locator("#live-status")).to_have_text("live")
    await page.wait_for_load_state("networkidle")  # the page has fetched what it shows

    # Someone else flags the answer wrong; then this page, still showing it unmarked, stars it.
    added = await api.post("/admin/users", json={"name": "Mallory", "role": "annotator"})
    assert added.status_code == 201, added.text
    theirs = await api.post(
        "/admin/annotations",
        json={
            "kind": "wrong",
            "dataset_id": dataset_id,
            "record_id": "c0",
            "model_id": "tiny-a",
            "expected_version": 0,
        },
        headers={"Authorization": f"Bearer {added.json()['token']}"},
    )
    assert theirs.status_code == 201, theirs.text
    await page.locator("#results").focus()
    await page.keyboard.press("g")

    dialog = page.locator("#conflict-dialog")
    await expect(dialog).to_be_visible()
    await expect(dialog).to_contain_text("Theirs: wrong by Mallory")
    await expect(dialog).to_contain_text("Yours: golden")
    await expect(cell).to_have_attribute("data-annotation", "wrong")  # the stored version, shown
    stored = (await api.get("/admin/workbench/results", params={"dataset_id": dataset_id})).json()["records"][0]
    assert stored["annotations"]["tiny-a"]["kind"] == "wrong"  # nothing was overwritten

    await page.locator("#conflict-apply").click()
    await expect(cell).to_have_attribute("data-annotation", "golden")
    stored = (await api.get("/admin/workbench/results", params={"dataset_id": dataset_id})).json()["records"][0]
    assert stored["annotations"]["tiny-a"]["kind"] == "golden"
    await page.close()


NO_WEBSOCKET = """
window.WebSocket = class extends EventTarget {
  constructor() {
    super();
    setTimeout(() => this.dispatchEvent(Object.assign(new Event("close"), { code: 1006 })), 10);
  }
  close() {}
};
"""


async def test_where_no_websocket_opens_the_page_says_so_and_polls_the_active_runs_every_two_seconds(
    browser: Browser, stack: Stack
) -> None:
    page = await browser.new_page(viewport=VIEWPORT)
    await page.add_init_script(NO_WEBSOCKET)  # a proxy that passes no WebSocket
    polls: list[float] = []
    page.on(
        "request", lambda request: polls.append(time.monotonic()) if "/admin/benchmarks/active" in request.url else None
    )
    await page.goto(signed_in(stack))

    await expect(page.locator("#live-status")).to_have_text("polling", timeout=20_000)
    await expect(page.locator("#live-banner")).to_contain_text("refreshed every 2 seconds")
    began = time.monotonic()
    await page.wait_for_timeout(5_000)
    assert len([moment for moment in polls if moment >= began]) >= 2
    await page.close()


@pytest.mark.restarts_stack
async def test_label_studio_link_push_and_pull_from_the_export_menu(
    browser: Browser, stack: Stack, api: httpx.AsyncClient, label_studio: LabelStudioServer
) -> None:
    # The annotations service, told where a real Label Studio server is.
    configured = {"WB_LABEL_STUDIO_URL": label_studio.url, "WB_LABEL_STUDIO_TOKEN": label_studio.token}
    stack.extra_env.update(configured)
    stack.stop(("annotations",))
    stack.start(("annotations",))
    page = await browser.new_page(viewport=VIEWPORT)
    try:
        dataset_id = await upload_records(
            api, "to-label-studio.jsonl", [{"id": "s0", "prompt": "Capital?"}, {"id": "s1", "prompt": "River?"}]
        )
        answers = {"s0": {"tiny-a": "Paris", "tiny-b": "Lyon"}, "s1": {"tiny-a": "Seine", "tiny-b": "Loire"}}
        await store_answers(stack, dataset_id, answers)
        await page.goto(signed_in(stack, f"dataset={dataset_id}"))
        cell = page.locator('.cell[data-record-id="s0"][data-model-id="tiny-a"]')
        await expect(cell.locator(".output")).to_have_text("Paris", timeout=30_000)

        await page.locator("#export-menu summary").click()
        box = page.locator("#label-studio")
        await expect(box).to_contain_text("not linked")
        await page.locator("#label-studio-link").click()
        await expect(page.locator("#label-studio-status")).to_contain_text("Linked to project")
        await page.locator("#label-studio-push").click()
        await expect(page.locator("#label-studio-status")).to_have_text("Pushed 2 tasks (0 skipped).", timeout=60_000)
        await expect(box).to_contain_text("2 tasks pushed")

        # Someone marks tiny-a's answer to s0 golden in Label Studio; the pull brings it to the grid.
        project_id = int((await api.get(f"/admin/label-studio/{dataset_id}")).json()["link"]["project_id"])
        client = LabelStudio(base_url=label_studio.url, api_key=label_studio.token)  # type: ignore[no-untyped-call]
        tasks = {task.data["record_id"]: task.id for task in client.tasks.list(project=project_id, fields="all")}
        key = model_key("tiny-a")
        verdict = {"from_name": f"verdict_{key}", "to_name": f"answer_{key}", "type": "choices"}
        client.annotations.create(tasks["s0"], result=[{**verdict, "value": {"choices": ["golden"]}}])
        await page.locator("#label-studio-pull").click()
        await expect(page.locator("#label-studio-status")).to_have_text(
            "Recorded 1 annotation (0 unchanged).", timeout=60_000
        )
        await expect(cell).to_have_attribute("data-annotation", "golden")
    finally:
        await page.close()
        for name in configured:
            stack.extra_env.pop(name)
        stack.stop(("annotations",))
        stack.start(("annotations",))
        await gateway_reaches_every_service(api)


async def gateway_reaches_every_service(api: httpx.AsyncClient, within_s: float = 30) -> None:
    """Waits until the gateway's /health finds every service serving again (after a restart)."""
    deadline = time.monotonic() + within_s
    while (health := await api.get("/health")).status_code != 200:
        assert time.monotonic() < deadline, f"the gateway does not reach every service: {health.text}"
        await asyncio.sleep(0.2)

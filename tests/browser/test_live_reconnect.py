"""The page's live socket in real headless Chromium, on the session's stack, with a socket the test
scripts: after a "reload" close (4000) the page waits a random delay that doubles with each reload
in a row before it reconnects and refetches what it shows, once; so a gateway that tells every page
to reload is not asked for every view at the same moment (a reload storm). After a "fell behind"
close (4001) it comes back soon with `since` and refetches nothing.

Time is Playwright's fake clock: the page's delays are read from the clock, not waited for.
"""

import asyncio
import itertools
import json
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs, urlparse

import pytest
from playwright.async_api import Page

pytestmark = [pytest.mark.browser]

START = datetime(2026, 11, 27, 9, 0, tzinfo=UTC)
RELOAD = 4000
FELL_BEHIND = 4001

# Each socket the page opens is greeted (a hello, then the plan's frames) and closed with the plan's
# code; once the plan is used up a socket stays open. The page's calls to the API are noted.
SCRIPTED_SOCKET = """
const plan = %s;
window.__sockets = [];
window.__fetched = [];
const realFetch = window.fetch.bind(window);
window.fetch = (input, init) => {
  window.__fetched.push(String(input instanceof Request ? input.url : input));
  return realFetch(input, init);
};
window.WebSocket = class extends EventTarget {
  constructor(url) {
    super();
    const step = plan.shift() || { frames: [] };
    window.__sockets.push({ url, at: Date.now() });
    window.__closeLast = (code) => this.dispatchEvent(new CloseEvent("close", { code }));
    queueMicrotask(() => {
      this.dispatchEvent(new Event("open"));
      const resumed = new URL(url).searchParams.has("since");
      for (const frame of [{ type: "hello", resumed, seq: 7 }, ...step.frames]) {
        this.dispatchEvent(new MessageEvent("message", { data: JSON.stringify(frame) }));
      }
      if (step.close) this.dispatchEvent(new CloseEvent("close", { code: step.close }));
    });
  }
  send() {}
  close() {}
};
"""


async def open_with_scripted_socket(page: Page, plan: list[dict[str, Any]]) -> None:
    """Loads the page again (logged in by the fixture) with the socket scripted and the clock paused."""
    await page.add_init_script(SCRIPTED_SOCKET % json.dumps(plan))
    await page.clock.install(time=START)
    await page.clock.pause_at(START + timedelta(minutes=1))
    await page.reload()


async def sockets(page: Page) -> list[dict[str, Any]]:
    opened: list[dict[str, Any]] = await page.evaluate("window.__sockets")
    return opened


async def until_sockets(page: Page, count: int) -> list[dict[str, Any]]:
    """The sockets once the page has opened `count` (it starts on real replies of the API)."""
    for _ in range(600):
        if len(opened := await sockets(page)) >= count:
            return opened
        await asyncio.sleep(0.05)
    raise AssertionError(f"the page opened {len(opened)} sockets, not {count}")


async def refetches(page: Page) -> int:
    """How often the page has asked for the active runs: once at start, then once per refetch."""
    fetched: list[str] = await page.evaluate("window.__fetched")
    return sum("/admin/benchmarks/active" in url for url in fetched)


def since(socket: dict[str, Any]) -> list[str]:
    return parse_qs(urlparse(socket["url"]).query).get("since", [])


async def test_reload_closes_in_a_row_wait_longer_each_time_and_each_reconnect_refetches_once(page: Page) -> None:
    await open_with_scripted_socket(page, [{"frames": [], "close": RELOAD}] * 6)
    await until_sockets(page, 1)

    # No reconnect at once: the first wait is a random 1-3 s.
    await page.clock.run_for(999)
    assert len(await sockets(page)) == 1

    await page.clock.run_for(10 * 60_000)
    opened = await sockets(page)
    assert len(opened) == 7  # six reload closes, then a socket that stays open
    waits = [later["at"] - earlier["at"] for earlier, later in itertools.pairwise(opened)]
    windows = [2_000, 4_000, 8_000, 16_000, 32_000, 60_000]  # doubling, capped
    assert all(0.5 * window <= wait <= 1.5 * window for wait, window in zip(waits, windows, strict=True)), waits
    assert all(since(socket) == [] for socket in opened)  # a reload starts over
    assert await refetches(page) == 1 + len(opened)  # once at start, once per reconnect

    # A socket that stayed open a while ends the series: the next reload waits 1-3 s again.
    await page.evaluate(f"window.__closeLast({RELOAD})")
    await page.clock.run_for(999)
    assert len(await sockets(page)) == 7
    await page.clock.run_for(2_002)
    assert len(await sockets(page)) == 8


async def test_a_page_that_fell_behind_resumes_with_since_soon_and_refetches_nothing(page: Page) -> None:
    elsewhere = {"type": "annotation", "event": "AnnotationCleared", "dataset_id": "elsewhere", "seq": 9}
    await open_with_scripted_socket(page, [{"frames": [elsewhere], "close": FELL_BEHIND}])
    await until_sockets(page, 1)
    fetched_before = await refetches(page)

    await page.clock.run_for(249)
    assert len(await sockets(page)) == 1
    await page.clock.run_for(502)  # the wait is a random 0.25-0.75 s

    opened = await sockets(page)
    assert len(opened) == 2, opened
    assert since(opened[0]) == [] and since(opened[1]) == ["9"]  # the last sequence it applied
    assert await refetches(page) == fetched_before
    assert await page.evaluate("document.getElementById('live-status').textContent") == "live"

"""End to end in a real headless Chromium (Debian's chromium + chromium-driver, driven by Selenium).

Log in, find an event by its txid, open it and read the decision reasons, replay a dead-lettered
notification and see it delivered to a local receiver, disable a subscriber. With
CALLGATE_CONSOLE_SCREENSHOTS=<folder> a screenshot of each page is written there (docs/console/).
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import shutil
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest
from aiohttp.test_utils import TestServer
from redis.asyncio import Redis

from gateway.console.app import create_console_app
from gateway.console.keys import ConsoleOptions
from shared.config import Settings
from shared.db import Pool, insert_events
from shared.notify import subscribers
from tests.conftest import RunWorker
from tests.console.conftest import ADMIN_TOKEN
from tests.receiver import Receiver
from tests.workers.notify_support import notify_env, store, wyre_event
from workers.deliver import deliver

CHROMIUM = shutil.which("chromium")
DRIVER = shutil.which("chromedriver")
pytestmark = [
    pytest.mark.skipif(not (CHROMIUM and DRIVER), reason="needs Debian's chromium and chromium-driver"),
    pytest.mark.slow,
]

if CHROMIUM and DRIVER:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions
    from selenium.webdriver.support.ui import WebDriverWait


@pytest.fixture
async def receiver(redis: Redis) -> AsyncIterator[Receiver]:
    r = await Receiver().start()
    yield r
    await r.stop()


def _browser() -> webdriver.Chrome:
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--window-size=1400,1000"):
        options.add_argument(flag)
    return webdriver.Chrome(options=options, service=Service(str(DRIVER)))


class Pages:
    """The browser's side, run in a thread (Selenium blocks; the console runs on this test's loop)."""

    def __init__(self, base: str, shots: Path | None) -> None:
        self.base = base
        self.shots = shots
        self.driver = _browser()

    def open(self, path: str) -> str:
        self.driver.get(self.base + path)
        return self.driver.page_source

    def shot(self, name: str) -> None:
        if self.shots is not None:
            self.driver.save_screenshot(str(self.shots / f"{name}.png"))

    def click(self, css: str) -> str:
        # Every console control navigates (links, form posts). WebDriver's click may return before
        # the next page has replaced this one, and page_source would then be the old page: wait
        # until the old document is gone.
        old = self.driver.find_element(By.TAG_NAME, "html")
        self.driver.find_element(By.CSS_SELECTOR, css).click()
        WebDriverWait(self.driver, 15).until(expected_conditions.staleness_of(old))
        return self.driver.page_source

    def log_in(self) -> str:
        self.open("/")
        self.shot("login")
        self.driver.find_element(By.ID, "token").send_keys(ADMIN_TOKEN)
        return self.click("main button[type=submit]")

    def search(self, needle: str) -> str:
        self.open("/events")
        self.driver.find_element(By.ID, "q").send_keys(needle)
        page = self.click("form[role=search] button[type=submit]")
        self.shot("events")
        return page


async def _in_thread(fn: Callable[..., str], *args: str) -> str:
    return await asyncio.to_thread(fn, *args)


async def test_an_operator_session_in_chromium(
    settings: Settings, db: Pool, redis: Redis, receiver: Receiver, run_worker: RunWorker, tmp_path: Path
) -> None:
    # A rejected signing request with a txid, and a notification the subscriber killed with a 410.
    decided = dataclasses.replace(
        wyre_event("TR_BROWSER01"),
        payload={"txid": "0xbrowser0001", "amount": "5"},
        decision={"action": "REJECT", "reasons": [{"code": "amount_over_limit", "rule": "eth-max", "detail": "5 > 1"}]},
        policy_version=3,
    )
    async with db.acquire() as conn:
        await insert_events(conn, [decided])
    receiver.behave("ledger", status=410)
    async with db.acquire() as conn:
        await subscribers.add(conn, "ledger", receiver.endpoint("ledger"))
    await store(db, wyre_event("TR_BROWSER02"))
    nid = str(await db.fetchval("SELECT id FROM notifications"))
    async with notify_env(settings) as env:
        assert (await deliver(env.deps, env.runtime, nid, 1)).outcome == "gone"
    async with db.acquire() as conn:
        await subscribers.set_enabled(conn, "ledger", True)
        await subscribers.add(conn, "archive", "https://archive.example/hook")
    receiver.behave("ledger", status=200)

    app = create_console_app(dataclasses.replace(settings, admin_token=ADMIN_TOKEN), ConsoleOptions())
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    shots = Path(os.environ.get("CALLGATE_CONSOLE_SCREENSHOTS") or tmp_path)
    pages = await asyncio.to_thread(Pages, str(server.make_url("")).rstrip("/"), shots)
    try:
        assert "Overview" in await _in_thread(pages.log_in)  # a Secure cookie: Chromium keeps it on 127.0.0.1
        await asyncio.to_thread(pages.shot, "overview")
        found = await _in_thread(pages.search, "0xbrowser0001")
        assert "TR_BROWSER01" in found and "TR_BROWSER02" not in found
        detail = await _in_thread(pages.click, "tbody a")
        assert "amount_over_limit" in detail and "eth-max" in detail and "policy version 3" in detail
        await asyncio.to_thread(pages.shot, "event")
        letters = await _in_thread(pages.open, "/dead-letters")
        assert nid in letters
        await asyncio.to_thread(pages.shot, "dead-letters")
        assert "Replayed 1 notification(s)." in await _in_thread(pages.click, f"button[name=one][value='{nid}']")
        await run_worker(settings)
        assert [r.webhook_id for r in receiver.at("ledger")] == [nid, nid]
        subs = await _in_thread(pages.open, "/subscribers")
        assert "Disable archive" in subs
        await asyncio.to_thread(pages.shot, "subscribers")
        assert "archive: disabled." in await _in_thread(pages.click, "button[value=archive]")
        for path, name in (("/policies", "policies"), ("/tss", "tss")):
            await _in_thread(pages.open, path)
            await asyncio.to_thread(pages.shot, name)
    finally:
        await asyncio.to_thread(pages.driver.quit)
        await server.close()
    async with db.acquire() as conn:
        archive = await subscribers.find(conn, "archive")
    assert archive is not None and not archive.enabled
    assert await db.fetchval("SELECT status FROM notifications WHERE id = $1", nid) == "delivered"

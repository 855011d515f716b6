"""Several ``callcenter serve`` as one system (issue 14): on PostgreSQL a browser connected to
instance B gets the pop and the countdown of a call whose events were posted to instance A;
on SQLite a second instance on the same file is refused at start, in one line."""

from __future__ import annotations

import asyncio
import concurrent.futures
import copy
import os
import subprocess

import pytest

from tests.browser import CHROMIUM, launch
from tests.conftest import PG_SKIP, PG_URL, free_port, reset_postgres
from tests.e2e.conftest import CLI, Service, base_env

pytestmark = pytest.mark.slow


def test_a_second_instance_on_one_sqlite_file_is_refused(tmp_path, service_factory):
    url = f"sqlite+aiosqlite:///{tmp_path}/one.sqlite3"
    first = service_factory(base_env(CALLCENTER_DATABASE_URL=url), args=())
    env = base_env(
        CALLCENTER_DATABASE_URL=url,
        CALLCENTER_HTTP_PORT=str(free_port()),
        CALLCENTER_FASTAGI_PORT=str(free_port()),
    )
    proc = subprocess.run(
        [*CLI, "serve"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60
    )
    assert proc.returncode != 0
    assert proc.stderr.strip().splitlines() == [
        f"callcenter: error: [database] {tmp_path}/one.sqlite3 is already served by another "
        "callcenter serve: SQLite serves one instance (several instances need PostgreSQL)"
    ]
    assert first.proc.poll() is None  # the first one serves on
    first.stop()
    # the lock goes with its process: the file can be served again
    again = service_factory(base_env(CALLCENTER_DATABASE_URL=url), args=())
    assert again.proc.poll() is None


WINDOW, WARNING = 24, 12


@pytest.mark.postgres
@pytest.mark.skipif(not os.path.exists(CHROMIUM), reason=f"no browser at {CHROMIUM}")
def test_a_browser_on_b_gets_the_pop_and_countdown_of_a_call_posted_to_a(tmp_path_factory):
    if not PG_URL:
        pytest.skip(PG_SKIP)
    from tests.e2e.desk_stack import DeskStack
    from tests.e2e.test_agent_page import Desk, expect, finish, playwright_api

    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        pool.submit(asyncio.run, reset_postgres(PG_URL)).result()
    a = DeskStack(
        tmp_path_factory.mktemp("a"),
        database_url=PG_URL,
        CALLCENTER_POLICY_ORAL_WINDOW_SECONDS=str(WINDOW),
        CALLCENTER_POLICY_WARNING_SECONDS=str(WARNING),
        CALLCENTER_TIMERS_GRACE_SECONDS="0.5",
        CALLCENTER_TIMERS_RESYNC_SECONDS="1",
    )
    b_service = Service(tmp_path_factory.mktemp("b"), a.env, args=())
    try:
        b_service.wait_ready()
        b = copy.copy(a)  # the same set-up, seen through instance B
        b.url = b_service.url
        with playwright_api.sync_playwright() as p:
            browser = launch(p)
            try:
                d = Desk(browser, b, "agent1")
                expect(d.page.locator("#idle")).to_be_visible()
                call_id = a.new_call(connect=False)  # every event to A
                a.connect(call_id, "PJSIP/101")
                expect(d.page.locator("#holder")).to_have_text(
                    "Сидоров Пётр Иванович", timeout=5000
                )
                countdown = d.page.locator("#countdown")
                expect(countdown).to_have_attribute("data-phase", "running", timeout=5000)
                expect(countdown).to_have_attribute(
                    "data-phase", "warning", timeout=(WARNING + 10) * 1000
                )
                expect(countdown).to_have_attribute(
                    "data-phase", "overrun", timeout=(WINDOW + 10) * 1000
                )
                # the overrun's ticket, made by whichever instance's scheduler claimed it
                expect(d.page.locator("#ticket")).to_be_visible(timeout=15_000)
                frames = "".join(d.frames)
                assert frames.count('"type": "call_connected"') == 1
                assert frames.count('"type": "window_warning"') == 1
                assert frames.count('"type": "window_overrun"') == 1
                finish(a, d, call_id)
                assert not d.errors, d.errors
                d.close()
            finally:
                browser.close()
    finally:
        b_service.stop()
        a.stop()

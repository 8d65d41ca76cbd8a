"""The demo page through the session router: Chromium → ``avatar route`` → two workers."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from streaming.config import AppConfig
from streaming.router import create_router_app
from streaming.session_ids import worker_of
from tests.web.conftest import LoopThread, PageLog, RunningApp, _start
from tests.web.page_scripts import MEDIA_FLOWING_JS, call_from_demo_page

pytestmark = pytest.mark.timeout(120)

OpenPage = Callable[..., tuple[Any, PageLog]]


@pytest.fixture
def routed(
    loop_thread: LoopThread, make_service: Callable[..., RunningApp], service_config: AppConfig
) -> Iterator[tuple[RunningApp, dict[str, RunningApp]]]:
    """Two one-slot workers and a router in front of them."""
    workers = {
        wid: make_service(worker_id=wid, max_sessions=1, trusted_proxies=["127.0.0.1"])
        for wid in ("w1", "w2")
    }
    config = service_config.model_copy(
        update={
            "router": service_config.router.model_copy(
                update={"workers": [w.url for w in workers.values()], "poll_interval_s": 0.2}
            )
        }
    )
    router = loop_thread.run(_start(create_router_app(config)))
    yield router, workers
    loop_thread.run(router.runner.cleanup(), timeout=30)


def _call(page: Any) -> str:
    """Call from the demo page; the session id once audio and video flow."""
    session_id = call_from_demo_page(page)
    assert page.evaluate(MEDIA_FLOWING_JS), "no audio and video from the worker"
    return session_id


def test_demo_page_through_the_router_lands_on_workers_with_room(
    routed: tuple[RunningApp, dict[str, RunningApp]], open_page: OpenPage
) -> None:
    router, workers = routed
    first_page, first_log = open_page(f"{router.url}/")
    second_page, second_log = open_page(f"{router.url}/")
    first = _call(first_page)
    second = _call(second_page)
    # One slot each: the router put the two calls on different workers, and each session
    # lives on the worker its id names.
    assert {worker_of(first), worker_of(second)} == {"w1", "w2"}
    for sid in (first, second):
        assert sid in workers[str(worker_of(sid))].state.sessions

    # Hanging up reaches the worker that holds the session (pinned through the router).
    first_page.locator("#avatar-widget").get_by_role("button", name="Hang up").click()
    first_page.wait_for_function("() => hostLog.some((e) => e.type === 'ended')")
    holder = workers[str(worker_of(first))]
    deadline = time.monotonic() + 5
    while first in holder.state.sessions:
        assert time.monotonic() < deadline, "the hang-up did not reach the session's worker"
        time.sleep(0.05)
    assert second in workers[str(worker_of(second))].state.sessions
    second_page.locator("#avatar-widget").get_by_role("button", name="Hang up").click()
    second_page.wait_for_function("() => hostLog.some((e) => e.type === 'ended')")
    assert not first_log.unexpected() and not second_log.unexpected()

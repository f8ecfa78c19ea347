"""The live view in a real browser (headless Chromium) against a running
stack with data flowing: the chart gains points and the device's latest value
changes, read through the API with the key given in the URL fragment."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import pytest

from bridge.alarms import store
from bridge.alarms.evaluate import Transition
from bridge.alarms.rules import parse_rule
from tests.integration.harness import wait_until
from tests.view.browser import Chromium
from tests.view.conftest import DEVICES, Flowing

DEVICE = "pump-0001"
METRIC = "flow_rate"


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[Chromium]:
    chromium = Chromium(tmp_path / "profile", tmp_path / "chromium.log")
    try:
        yield chromium
    finally:
        chromium.close()


def _latest(browser: Chromium) -> str | None:
    value: str | None = browser.evaluate(
        f"document.querySelector('#latest tr[data-metric=\"{METRIC}\"] .value')?.textContent"
    )
    return value


def _chart(browser: Chromium) -> tuple[int, int]:
    points, last = browser.evaluate(
        "(() => { const c = document.getElementById('chart');"
        " return c ? [Number(c.dataset.points), Number(c.dataset.last || 0)] : [0, 0]; })()"
    )
    return int(points), int(last)


def test_the_live_view_shows_data_flowing(
    flowing: Flowing, browser: Chromium, tmp_path: Path
) -> None:
    base = f"http://127.0.0.1:{flowing.api.port}/"
    browser.navigate(f"{base}#key={flowing.read_key}&device={DEVICE}&metric={METRIC}")

    wait_until(lambda: _chart(browser)[0] > 0 and _latest(browser), 30, "the first chart")
    # The key left the address bar for localStorage.
    assert flowing.read_key not in browser.evaluate("location.href")
    assert browser.evaluate("localStorage.getItem('bridge.apiKey')") == flowing.read_key
    first_points, first_last = _chart(browser)
    first_value = _latest(browser)

    wait_until(
        lambda: _chart(browser)[0] > first_points and _chart(browser)[1] > first_last,
        30,
        f"the chart to gain points (it had {first_points})",
    )
    wait_until(
        lambda: _latest(browser) != first_value, 30, f"{METRIC} to change from {first_value}"
    )
    wait_until(
        lambda: (
            browser.evaluate("document.getElementById('devices-online').textContent")
            == str(DEVICES)
        ),
        30,
        f"{DEVICES} devices online",
    )
    assert float(browser.evaluate("document.getElementById('ingest-rate').textContent")) > 0
    assert browser.evaluate("document.getElementById('device').value") == DEVICE
    assert not browser.errors, browser.errors

    shot = tmp_path / "live-view.png"
    browser.screenshot(shot)
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert shot.stat().st_size > 10_000


def test_without_a_key_the_page_asks_for_one(flowing: Flowing, browser: Chromium) -> None:
    browser.navigate(f"http://127.0.0.1:{flowing.api.port}/")
    wait_until(
        lambda: browser.evaluate("document.getElementById('key-form').hidden") is False,
        30,
        "the key form",
    )
    assert browser.evaluate("document.getElementById('live').hidden") is True
    # A wrong key is refused by the API and the form comes back.
    browser.evaluate(
        "document.getElementById('key-input').value = 'not-a-key';"
        "document.getElementById('key-form').requestSubmit()"
    )
    wait_until(
        lambda: "refused" in browser.evaluate("document.getElementById('status').textContent"),
        30,
        "the refusal",
    )
    assert browser.evaluate("document.getElementById('key-form').hidden") is False


async def _alarm(db_url: str, device: str) -> int:
    """An alarm as the evaluator writes it (bridge.alarms.store.commit)."""
    conn = await asyncpg.connect(db_url)
    try:
        rule = parse_rule(
            {
                "name": "view-hot",
                "kind": "threshold",
                "severity": "critical",
                "direction": "above",
                "threshold": 50.0,
            }
        )
        rule_id = await conn.fetchval(
            "INSERT INTO alarm_rules (name, spec) VALUES ('view-hot', '{}') RETURNING id"
        )
        now = time.time_ns() // 1000
        raised = Transition(rule_id, device, "temperature", "site-1", "raised", now, 71.5, 71.5)
        await store.commit(
            conn,
            stream="view",
            last_id="1-0",
            dirty=[],
            transitions=[raised],
            rules={rule_id: rule},
        )
        return int(await conn.fetchval("SELECT id FROM alerts WHERE rule_id = $1", rule_id))
    finally:
        await conn.close()


async def _clear(db_url: str, alert_id: int) -> None:
    conn = await asyncpg.connect(db_url)
    try:
        await store.resolve(conn, alert_id, "test")
    finally:
        await conn.close()


def _rows(browser: Chromium) -> list[list[str]]:
    rows: list[list[str]] = browser.evaluate(
        "[...document.querySelectorAll('#alarms tbody tr')]"
        ".map((r) => [...r.cells].map((c) => c.textContent))"
    )
    return rows


def test_the_overheating_pump_is_listed_as_an_open_alarm(
    flowing: Flowing, browser: Chromium
) -> None:
    """The whole chain: simulated fault -> MQTT -> bridge -> alarm stream ->
    evaluator -> alerts -> API -> the page."""
    browser.navigate(f"http://127.0.0.1:{flowing.api.port}/#key={flowing.read_key}")

    def overheat() -> list[list[str]]:
        return [r for r in _rows(browser) if r[1] == "pump-0003" and r[3] == "view-overheat"]

    wait_until(lambda: bool(overheat()), 60, "pump-0003's overheat alarm in the page")
    (row,) = overheat()
    assert (row[0], row[2], row[5], row[6]) == ("major", "temperature", "120", "active")
    assert [r[1] for r in _rows(browser) if r[3] == "view-overheat"] == ["pump-0003"]
    assert not browser.errors, browser.errors


def test_the_live_view_lists_open_alarms(flowing: Flowing, browser: Chromium) -> None:
    browser.navigate(f"http://127.0.0.1:{flowing.api.port}/#key={flowing.read_key}")
    count = "document.getElementById('alarm-count').textContent"
    wait_until(lambda: str(browser.evaluate(count)).isdigit(), 30, "the alarm count")
    before = int(browser.evaluate(count))
    alert_id = asyncio.run(_alarm(flowing.scenario.db_url, "pump-0002"))
    row = f"document.querySelector('#alarms tr[data-alarm=\"{alert_id}\"]')"
    wait_until(lambda: browser.evaluate(f"!!{row}"), 30, "the alarm listed")
    cells = browser.evaluate(f"[...{row}.cells].map((c) => c.textContent)")
    assert cells[:4] == ["critical", "pump-0002", "temperature", "view-hot"]
    assert cells[5:] == ["71.5", "active"]
    assert int(browser.evaluate(count)) >= before + 1
    asyncio.run(_clear(flowing.scenario.db_url, alert_id))
    wait_until(lambda: not browser.evaluate(f"!!{row}"), 30, "the cleared alarm gone")
    assert not browser.errors, browser.errors

"""Summaries from the rollups equal a plain computation over the raw points,
for ranges with ragged edges, in both schema modes."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bridge.api.store import Selection
from bridge.api.summary import HOUR, MINUTE, parts, summarize
from tests.api.conftest import DEVICE, S, World


def expected(w: World, device: str | None, start: int, end: int) -> dict[tuple[str, str], tuple]:  # type: ignore[type-arg]
    out: dict[tuple[str, str], list[tuple[int, float]]] = {}
    for p in sorted(w.points):
        if (device is None or p.device_id == device) and start <= p.time_us < end:
            out.setdefault((p.device_id, p.metric), []).append((p.time_us, p.value))
    return {
        k: (
            len(v),
            min(x for _, x in v),
            max(x for _, x in v),
            sum(x for _, x in v) / len(v),
            v[-1][1],
        )
        for k, v in out.items()
    }


async def check(w: World, device: str | None, start: int, end: int) -> None:
    sel = Selection(None if device is None else [device], None, start, end)
    got = await summarize(w.conn, w.mode, sel)
    want = expected(w, device, start, end)
    assert sorted(got) == sorted(want)
    for key, (count, lo, hi, avg, last) in want.items():
        s = got[key]
        assert (s.count, s.min, s.max, s.last) == (count, lo, hi, last), key
        assert s.avg == pytest.approx(avg, rel=1e-9, abs=1e-9)


@pytest.mark.parametrize(
    ("start_ago_s", "end_ago_s"),
    [(3 * 3600 + 60, 0), (2 * 3600 + 7, 3600 + 53), (4000, 3990), (125, 5), (1000, 999)],
)
async def test_summary_equals_the_raw_points(
    world: World, start_ago_s: int, end_ago_s: int
) -> None:
    await check(world, DEVICE, world.now_us - start_ago_s * S, world.now_us - end_ago_s * S)


async def test_fleet_summary_covers_every_device(world: World) -> None:
    await check(world, None, world.now_us - 2 * HOUR - 13 * S, world.now_us)


@settings(
    max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    start=st.integers(min_value=0, max_value=3 * 3600 * S),
    length=st.integers(min_value=1, max_value=3 * 3600 * S),
)
async def test_any_range(world: World, start: int, length: int) -> None:
    begin = world.now_us - 3 * HOUR + start
    await check(world, DEVICE, begin, begin + length)


@given(
    start=st.integers(min_value=0, max_value=10**13),
    length=st.integers(min_value=1, max_value=10**12),
)
def test_the_parts_tile_the_range_in_order(start: int, length: int) -> None:
    cut = parts(start, start + length)
    assert cut[0][0] == start
    assert cut[-1][1] == start + length
    for (_, hi, _), (lo, _, _) in itertools.pairwise(cut):
        assert hi == lo
    for lo, hi, source in cut:
        width = {"raw": 1, "1m": MINUTE, "1h": HOUR}[source]
        assert lo % width == 0
        assert hi % width == 0


async def test_materialized_rollups_give_the_same_figures(world: World) -> None:
    # Until now every rollup row was computed from raw rows at query time (plain
    # mode's pending hours, TimescaleDB's real-time part); materialize them.
    if world.mode == "plain":
        await world.conn.fetchval("SELECT bridge_refresh_rollups()")
        assert await world.conn.fetchval("SELECT count(*) FROM telemetry_rollup_pending") == 0
    else:
        for view in ("telemetry_1m", "telemetry_1h") * 2:  # twice: see test_schema_timescale
            await world.conn.execute("CALL refresh_continuous_aggregate($1, NULL, NULL)", view)
    await check(world, DEVICE, world.now_us - 3 * HOUR + 17 * S, world.now_us - 61 * S)
    await check(world, None, world.now_us - 2 * HOUR, world.now_us)

"""The cache's writer and reader against a real Redis: the shared test
instance (flushed per test) for the data model, and redis-servers of the tests' own, on ports in
36000-36999, for the failure modes (killed, restarted, read-only, full)."""

from __future__ import annotations

import asyncio
import random
import socket
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path

import pytest
import redis
import redis.asyncio as aioredis

import bridge.cache.writer as cache_writer
from bridge.cache.keys import Keys
from bridge.cache.reader import CacheReader
from bridge.cache.writer import CacheWriter
from bridge.errors import RedisUnavailable
from core.types import Point

S = 1_000_000  # microseconds in a second
NOW = 1_795_773_600 * S  # 2026-11-27T10:00:00Z
WINDOW_S = 60
FOREVER = 2**62


class Cache:
    """A writer and a reader on one Redis, as the bridge and the API hold them."""

    def __init__(
        self,
        url: str,
        *,
        window_s: int = 900,
        prefix: str = "bridge:",
        timeout_s: float = 2.0,
        future_skew_s: float = 300.0,
    ) -> None:
        self.writer = CacheWriter(
            url,
            window_s=window_s,
            prefix=prefix,
            timeout_s=timeout_s,
            future_skew_s=future_skew_s,
        )
        self.reader = CacheReader(url, prefix=prefix, timeout_s=timeout_s)

    async def __aenter__(self) -> Cache:
        await self.writer.__aenter__()
        await self.reader.__aenter__()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.reader.__aexit__()
        await self.writer.__aexit__()


@pytest.fixture
async def cache(redis_url: str) -> AsyncIterator[Cache]:
    async with Cache(redis_url, window_s=WINDOW_S) as c:
        yield c


@pytest.fixture
def client(redis_url: str) -> Iterator[redis.Redis]:
    c = redis.Redis.from_url(redis_url, decode_responses=True)
    yield c
    c.close()


def points(device: str, metric: str, *pairs: tuple[int, float]) -> list[Point]:
    return [Point(t, device, metric, v) for t, v in pairs]


# ---------------------------------------------------------------- own servers


def _port_is_free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def free_port() -> int:
    """A port in 36000-36999 where nothing listens (the range this project's
    tests may use for their own servers)."""
    ports = list(range(36000, 37000))
    random.shuffle(ports)
    return next(p for p in ports if _port_is_free(p))


async def wait_for(condition: Callable[[], Awaitable[bool]], timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not await condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} within {timeout_s} s")
        await asyncio.sleep(0.02)


class OwnRedis:
    """A redis-server this test starts, kills and starts again on the same port."""

    def __init__(self, workdir: Path, *options: str) -> None:
        self.workdir = workdir
        self.options = options
        self.port = free_port()
        self.proc: asyncio.subprocess.Process | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    async def start(self) -> None:
        argv = ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1"]
        argv += ["--save", "", "--appendonly", "no", "--dir", str(self.workdir), *self.options]
        self.proc = await asyncio.create_subprocess_exec(*argv, stdout=asyncio.subprocess.DEVNULL)
        await wait_for(self._answers, 10, f"redis-server did not answer on port {self.port}")

    async def _answers(self) -> bool:
        assert self.proc is not None
        if self.proc.returncode is not None:
            raise AssertionError(f"redis-server on port {self.port} exited: {self.proc.returncode}")
        probe = aioredis.Redis(port=self.port, socket_connect_timeout=1)
        try:
            return bool(await probe.ping())
        except redis.ConnectionError:
            return False
        finally:
            await probe.aclose()

    async def kill(self) -> None:
        if self.proc is not None and self.proc.returncode is None:
            self.proc.kill()
            async with asyncio.timeout(10):
                await self.proc.wait()


@pytest.fixture
async def own_redis(tmp_path: Path) -> AsyncIterator[Callable[..., Awaitable[OwnRedis]]]:
    started: list[OwnRedis] = []

    async def start(*options: str) -> OwnRedis:
        server = OwnRedis(tmp_path, *options)
        started.append(server)
        await server.start()
        return server

    yield start
    for server in started:
        await server.kill()


# ---------------------------------------------------------------- data model


async def test_latest_keeps_the_newest_when_an_older_batch_arrives_later(
    cache: Cache,
) -> None:
    await cache.writer.write(
        points("pump-1", "temp", (NOW - 10 * S, 70.0)) + points("pump-1", "flow", (NOW, 5.0)),
        NOW,
    )
    late = points("pump-1", "temp", (NOW - 20 * S, 60.0)) + points(
        "pump-1", "flow", (NOW - 30 * S, 4.0)
    )
    await cache.writer.write([*late, Point(NOW - 40 * S, "pump-1", "rpm", 900.0)], NOW)
    assert await cache.reader.latest("pump-1") == {
        "temp": (NOW - 10 * S, "70.0"),
        "flow": (NOW, "5.0"),
        "rpm": (NOW - 40 * S, "900.0"),  # a metric seen for the first time is taken
    }
    # ... but the late points do belong to the recent window, in time order.
    assert await cache.reader.recent("pump-1", "temp", 0, FOREVER) == [
        (NOW - 20 * S, "60.0"),
        (NOW - 10 * S, "70.0"),
    ]
    # A newer point moves latest, per metric; a redelivery changes nothing.
    await cache.writer.write(points("pump-1", "temp", (NOW + S, 71.0)), NOW + S)
    await cache.writer.write(late, NOW + S)
    latest = await cache.reader.latest("pump-1")
    assert latest["temp"] == (NOW + S, "71.0")
    assert latest["flow"] == (NOW, "5.0")
    assert await cache.reader.devices() == {"pump-1": NOW + S}


async def test_devices_never_move_back(cache: Cache) -> None:
    await cache.writer.write([Point(NOW, "a", "m", 1.0), Point(NOW - S, "b", "m", 1.0)], NOW)
    await cache.writer.write([Point(NOW - 5 * S, "a", "m", 2.0), Point(NOW, "b", "m", 2.0)], NOW)
    assert await cache.reader.devices() == {"a": NOW, "b": NOW}


async def test_a_later_write_at_the_same_time_replaces_the_value(cache: Cache) -> None:
    await cache.writer.write(points("d", "m", (NOW - 2 * S, 1.0), (NOW - S, 2.0)), NOW)
    # A correction of the newest point, and one of an older point.
    await cache.writer.write(points("d", "m", (NOW - S, 3.0)), NOW)
    await cache.writer.write(points("d", "m", (NOW - 2 * S, 4.0)), NOW)
    # Within one batch, the later of two points at one time wins.
    await cache.writer.write(points("d", "m", (NOW, 5.0), (NOW, 6.0)), NOW)
    assert await cache.reader.recent("d", "m", 0, FOREVER) == [
        (NOW - 2 * S, "4.0"),
        (NOW - S, "3.0"),
        (NOW, "6.0"),
    ]
    assert await cache.reader.latest("d") == {"m": (NOW, "6.0")}


async def test_the_window_trims_exactly_the_points_older_than_now_minus_window(
    cache: Cache,
) -> None:
    edge = NOW - WINDOW_S * S
    batch = points("d", "m", (edge - 1, 1.0), (edge, 2.0), (NOW - 1, 3.0), (NOW, 4.0))
    await cache.writer.write(batch, NOW)
    assert await cache.reader.recent("d", "m", 0, FOREVER) == [
        (edge, "2.0"),
        (NOW - 1, "3.0"),
        (NOW, "4.0"),
    ]

    # Later, members already stored fall out as the caller's clock moves on.
    later = NOW + WINDOW_S * S - 1  # its cutoff is NOW - 1
    await cache.writer.write(points("d", "m", (later, 5.0)), later)
    assert await cache.reader.recent("d", "m", 0, FOREVER) == [
        (NOW - 1, "3.0"),
        (NOW, "4.0"),
        (later, "5.0"),
    ]
    # A point already outside the window still counts for latest and devices.
    await cache.writer.write(points("d", "old", (edge - S, 6.0)), NOW)
    assert await cache.reader.recent("d", "old", 0, FOREVER) == []
    assert (await cache.reader.latest("d"))["old"] == (edge - S, "6.0")


async def test_recent_bounds_are_inclusive_and_ascending(cache: Cache) -> None:
    times = [NOW - k * S for k in (5, 1, 3, 0, 4, 2)]
    await cache.writer.write([Point(t, "d", "m", float(t % 1000)) for t in times], NOW)
    got = await cache.reader.recent("d", "m", NOW - 4 * S, NOW - S)
    assert [t for t, _ in got] == [NOW - 4 * S, NOW - 3 * S, NOW - 2 * S, NOW - S]
    assert await cache.reader.recent("d", "other", 0, FOREVER) == []
    assert await cache.reader.latest("nobody") == {}


@pytest.mark.parametrize(
    "value",
    [
        70.2,
        0.1 + 0.2,
        1e-7,
        5e-324,
        -40.5,
        -0.0,
        -1e-300,
        9007199254740993.0,  # 2**53 + 1 is not a float: stored as 2**53
        123456789012345.0,
        1e22,
        1.7976931348623157e308,
    ],
)
async def test_value_text_is_exact(cache: Cache, client: redis.Redis, value: float) -> None:
    await cache.writer.write([Point(NOW, "d", "m", value)], NOW)
    (t, text) = (await cache.reader.latest("d"))["m"]
    assert (t, text) == (NOW, repr(value))
    assert float(text) == value
    assert await cache.reader.recent("d", "m", NOW, NOW) == [(NOW, repr(value))]
    assert client.hget("bridge:latest:d", "m") == f"{NOW} {value!r}"


async def test_the_script_writes_exactly_the_keys_that_keys_names(
    cache: Cache, client: redis.Redis
) -> None:
    await cache.writer.write([Point(NOW, "a:b", "c", 1.0)], NOW)
    keys = Keys("bridge:")
    assert set(client.scan_iter("*")) == {
        keys.latest("a:b"),
        keys.recent("a:b", "c"),
        keys.devices,
        keys.complete_since,
    }


async def test_70_2_stays_70_2(cache: Cache, client: redis.Redis) -> None:
    await cache.writer.write([Point(NOW, "d", "temperature", 70.2)], NOW)
    assert client.hget("bridge:latest:d", "temperature") == f"{NOW} 70.2"
    assert client.zrange("bridge:recent:d|temperature", 0, -1) == [f"{NOW}:70.2"]


async def test_many_devices_and_metrics_in_one_batch(cache: Cache) -> None:
    devices = [f"dev-{i:03d}" for i in range(200)]
    metrics = ["temp", "flow", "pip", "rpm", "amps"]
    batch = [
        Point(NOW - k * S, d, m, float(i * 10 + k))
        for i, d in enumerate(devices)
        for m in metrics
        for k in range(3)
    ]
    random.Random(7).shuffle(batch)
    await cache.writer.write(batch, NOW)

    assert await cache.reader.devices() == dict.fromkeys(devices, NOW)
    for i, d in enumerate(devices):
        assert await cache.reader.latest(d) == {m: (NOW, f"{float(i * 10)}") for m in metrics}
    for m in metrics:
        assert await cache.reader.recent("dev-042", m, 0, FOREVER) == [
            (NOW - 2 * S, "422.0"),
            (NOW - S, "421.0"),
            (NOW, "420.0"),
        ]


async def test_huge_groups_fit_within_lua_limits(cache: Cache) -> None:
    # Lua's unpack() takes about 8000 values: one series of 9500 points and a
    # device with 2500 metrics must still go through in slices.
    series = [Point(NOW - k * 1000, "big", "m", float(k)) for k in range(9_500)]
    wide = [Point(NOW, "wide", f"m{k}", float(k)) for k in range(2_500)]
    await cache.writer.write(series, NOW)
    await cache.writer.write(wide, NOW)
    assert len(await cache.reader.recent("big", "m", 0, FOREVER)) == 9_500
    assert len(await cache.reader.latest("wide")) == 2_500


async def test_a_huge_batch_is_split_and_still_whole(
    cache: Cache, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = 0
    evalsha = cache.writer._evalsha

    async def counting(args: list[object]) -> None:
        nonlocal calls
        calls += 1
        await evalsha(args)

    monkeypatch.setattr(cache.writer, "_evalsha", counting)
    monkeypatch.setattr(cache_writer, "MAX_POINTS_PER_CALL", 1000)
    batch = [Point(NOW - k * S // 100, f"d{k % 7}", "m", float(k)) for k in range(2_500)]
    await cache.writer.write(batch, NOW)
    assert calls == 3
    assert await cache.reader.devices() == {f"d{k}": NOW - k * S // 100 for k in range(7)}
    assert (
        sum([len(await cache.reader.recent(f"d{k}", "m", 0, FOREVER)) for k in range(7)]) == 2_500
    )


async def test_keys_expire_after_about_two_windows(cache: Cache, client: redis.Redis) -> None:
    await cache.writer.write([Point(NOW, "d", "m", 1.0)], NOW)
    keys = ["bridge:latest:d", "bridge:recent:d|m", "bridge:devices"]
    for key in keys:
        assert 0.9 * 2 * WINDOW_S * 1000 < client.pttl(key) <= 2 * WINDOW_S * 1000


async def test_devices_silent_for_two_windows_leave_the_index(cache: Cache) -> None:
    await cache.writer.write([Point(NOW, "quiet", "m", 1.0)], NOW)
    later = NOW + 2 * WINDOW_S * S + 1
    await cache.writer.write([Point(later, "busy", "m", 1.0)], later)
    assert await cache.reader.devices() == {"busy": later}


async def test_an_empty_batch_is_a_no_op(cache: Cache, client: redis.Redis) -> None:
    await cache.writer.write([], NOW)
    assert client.dbsize() == 0
    # It does not even need Redis.
    async with CacheWriter(f"redis://127.0.0.1:{free_port()}/0") as offline:
        await offline.write([], NOW)


async def test_every_encoding_stores_the_same(redis_url: str, client: redis.Redis) -> None:
    batch = [Point(NOW - k * S, f"d{k % 3}", f"m{k % 5}", k / 7 - 3) for k in range(WINDOW_S + 30)]
    dumps = {}
    for name in cache_writer._ENCODINGS:

        class Writer(CacheWriter):
            _encoding = name

        prefix = f"{name}:"
        async with Writer(redis_url, window_s=WINDOW_S, prefix=prefix) as s:
            await s.write(batch, NOW)
        dumps[name] = {
            key.removeprefix(prefix): (client.type(key), _dump(client, key))
            for key in client.scan_iter(f"{prefix}*")
            if key != f"{prefix}complete_since"  # a time of the writer's, not of the batch
        }
    first, *others = dumps.values()
    assert len(first) == 1 + 3 + 15
    assert all(other == first for other in others)


def _dump(client: redis.Redis, key: str) -> object:
    if client.type(key) == "hash":
        return client.hgetall(key)
    return client.zrange(key, 0, -1, withscores=True)


# ---------------------------------------------------------------- failures


async def test_a_flushed_script_cache_is_reloaded(cache: Cache, client: redis.Redis) -> None:
    await cache.writer.write([Point(NOW - S, "d", "m", 1.0)], NOW)
    client.script_flush()
    await cache.writer.write([Point(NOW, "d", "m", 2.0)], NOW)
    assert await cache.reader.recent("d", "m", 0, FOREVER) == [(NOW - S, "1.0"), (NOW, "2.0")]


async def test_nothing_listening_fails_fast() -> None:
    url = f"redis://127.0.0.1:{free_port()}/0"
    async with Cache(url, timeout_s=1.0) as cache:  # entering does not connect
        started = time.monotonic()
        with pytest.raises(RedisUnavailable, match=r"start Redis or fix redis\.url"):
            await cache.writer.write([Point(NOW, "d", "m", 1.0)], NOW)
        with pytest.raises(RedisUnavailable):
            await cache.reader.latest("d")
        with pytest.raises(RedisUnavailable):
            await cache.reader.recent("d", "m", 0, NOW)
        with pytest.raises(RedisUnavailable):
            await cache.reader.devices()
        assert time.monotonic() - started < 3


async def test_the_message_hides_the_password() -> None:
    url = f"redis://bridge:s3cret@127.0.0.1:{free_port()}/0"
    async with Cache(url, timeout_s=1.0) as cache:
        with pytest.raises(RedisUnavailable) as caught:
            await cache.writer.write([Point(NOW, "d", "m", 1.0)], NOW)
    assert "s3cret" not in str(caught.value)
    assert f"redis://bridge:***@127.0.0.1:{url.rsplit(':', 1)[1]}" in str(caught.value)


async def test_a_server_that_never_answers_times_out() -> None:
    async def swallow(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while await reader.read(65536):
            pass
        writer.close()

    server = await asyncio.start_server(swallow, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    async with server, Cache(f"redis://127.0.0.1:{port}/0", timeout_s=0.5) as cache:
        started = time.monotonic()
        with pytest.raises(RedisUnavailable, match=r"no answer within 0\.5 s"):
            await cache.writer.write([Point(NOW, "d", "m", 1.0)], NOW)
        assert time.monotonic() - started < 2


async def test_writes_fail_while_redis_is_down_and_resume_when_it_is_back(
    own_redis: Callable[..., Awaitable[OwnRedis]],
) -> None:
    server = await own_redis()
    async with Cache(server.url, window_s=WINDOW_S, timeout_s=1.0) as cache:
        await cache.writer.write([Point(NOW - 2 * S, "d", "m", 1.0)], NOW)
        await server.kill()
        for _ in range(2):  # the pooled connection is dead, then connecting is refused
            started = time.monotonic()
            with pytest.raises(RedisUnavailable, match="start Redis"):
                await cache.writer.write([Point(NOW - S, "d", "m", 2.0)], NOW)
            assert time.monotonic() - started < 3
        await server.start()  # same port, empty, and an empty script cache
        await cache.writer.write([Point(NOW, "d", "m", 3.0)], NOW)
        assert await cache.reader.latest("d") == {"m": (NOW, "3.0")}
        assert await cache.reader.recent("d", "m", 0, FOREVER) == [(NOW, "3.0")]


async def test_a_read_only_replica_is_reported(
    own_redis: Callable[..., Awaitable[OwnRedis]],
) -> None:
    server = await own_redis("--replicaof", "127.0.0.1", str(free_port()))
    async with Cache(server.url) as cache:
        with pytest.raises(RedisUnavailable, match=r"read-only replica; point redis\.url"):
            await cache.writer.write([Point(NOW, "d", "m", 1.0)], NOW)


async def test_a_full_redis_is_reported(own_redis: Callable[..., Awaitable[OwnRedis]]) -> None:
    server = await own_redis("--maxmemory", "1", "--maxmemory-policy", "noeviction")
    async with Cache(server.url) as cache:
        with pytest.raises(RedisUnavailable, match="out of memory"):
            await cache.writer.write([Point(NOW, "d", "m", 1.0)], NOW)


async def test_a_foreign_key_under_the_prefix_is_reported(
    cache: Cache, client: redis.Redis
) -> None:
    client.set("bridge:latest:d", "not a hash")
    with pytest.raises(RedisUnavailable, match="WRONGTYPE"):
        await cache.writer.write([Point(NOW, "d", "m", 1.0)], NOW)


async def test_using_a_writer_or_reader_outside_async_with_is_a_bug() -> None:
    with pytest.raises(RuntimeError, match="use CacheWriter inside 'async with'"):
        await CacheWriter("redis://127.0.0.1:1/0").write([Point(NOW, "d", "m", 1.0)], NOW)
    with pytest.raises(RuntimeError, match="use CacheReader inside 'async with'"):
        await CacheReader("redis://127.0.0.1:1/0").latest("d")


async def test_series_whose_names_share_colons_stay_apart(redis_url: str) -> None:
    async with Cache(redis_url) as cache:
        await cache.writer.write([Point(NOW, "a:b", "c", 1.0), Point(NOW, "a", "b:c", 2.0)], NOW)
        assert await cache.reader.recent("a:b", "c", NOW - 1, NOW + 1) == [(NOW, "1.0")]
        assert await cache.reader.recent("a", "b:c", NOW - 1, NOW + 1) == [(NOW, "2.0")]


# ------------------------------------------------------- complete_since


async def test_no_marker_until_a_writer_vouches_for_the_cache(cache: Cache) -> None:
    assert await cache.reader.complete_since() is None


async def test_a_new_writer_vouches_only_from_its_start_plus_the_skew(redis_url: str) -> None:
    before = time.time_ns() // 1000
    async with Cache(redis_url, window_s=WINDOW_S, future_skew_s=30) as cache:
        after = time.time_ns() // 1000
        await cache.writer.write(points("d", "m", (NOW, 1.0)), NOW)
        marker = await cache.reader.complete_since()
    assert marker is not None
    # A predecessor may have died with committed batches it never cached,
    # timed up to its last moment plus the allowed future skew.
    assert before + 30 * S <= marker <= max(after + 30 * S, NOW + 30 * S)


async def test_a_failed_write_moves_the_marker_past_its_points(
    own_redis: Callable[..., Awaitable[OwnRedis]],
) -> None:
    server = await own_redis()
    async with Cache(server.url, window_s=WINDOW_S, timeout_s=1.0, future_skew_s=0) as cache:
        await cache.writer.write(points("d", "m", (NOW, 1.0)), NOW)
        first = await cache.reader.complete_since()
        assert first is not None
        late = first + 50 * S  # a point timed after everything vouched for so far
        await server.kill()
        with pytest.raises(RedisUnavailable):
            await cache.writer.write(points("d", "m", (late, 2.0)), late)
        await server.start()  # empty: the marker went with the data
        await cache.writer.write(points("d", "m", (late + S, 3.0)), late + S)
    # Past the lost point, and past anything the lost data held (now + skew).
    # (A reader of its own: the old one's pooled connection died with the server.)
    async with CacheReader(server.url, timeout_s=1.0) as reader:
        assert await reader.complete_since() == late + S


async def test_a_skipped_batch_moves_the_marker_and_it_never_moves_back(
    redis_url: str,
) -> None:
    async with Cache(redis_url, window_s=WINDOW_S, future_skew_s=0) as cache:
        await cache.writer.write(points("d", "m", (NOW, 1.0)), NOW)
        start = await cache.reader.complete_since()
        assert start is not None
        cache.writer.note_lost(points("d", "m", (start + 7 * S, 2.0), (start + 5 * S, 3.0)))
        await cache.writer.write(points("d", "m", (NOW + S, 4.0)), NOW + S)
        assert await cache.reader.complete_since() == start + 7 * S + 1
        cache.writer.note_lost(points("d", "m", (start + 2 * S, 5.0)))  # older than the marker
        await cache.writer.write(points("d", "m", (NOW + 2 * S, 6.0)), NOW + 2 * S)
        assert await cache.reader.complete_since() == start + 7 * S + 1

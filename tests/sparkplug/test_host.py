"""bridge.sparkplug.host: births, aliases, seq, rebirths and deaths, on
payloads built by the independent encoder (wire.py). No services: the host
is synchronous; what it would keep and publish is collected in lists."""

from __future__ import annotations

import asyncio

import pytest

from bridge.config import SparkplugSettings
from bridge.router import Routed
from bridge.sparkplug.host import Host
from bridge.sparkplug.state import Birth, Status
from core.limits import Limits
from tests.sparkplug import wire

NOW_MS = 1_800_000_000_000
NOW_US = NOW_MS * 1000
G, N = "plant", "edge1"


class Harness:
    def __init__(self, **settings: object) -> None:
        self.rebirths: list[tuple[str, str, str]] = []
        self.stored: list[Birth | Status] = []
        self.counted: list[tuple[str, bool]] = []
        self.stale = 0
        self.host = Host(
            SparkplugSettings(enabled=True, **settings),  # type: ignore[arg-type]
            Limits(),
            on_rebirth=lambda g, n, r: self.rebirths.append((g, n, r)),
            on_store=self.stored.append,
            count_rebirth=lambda r, sent: self.counted.append((r, sent)),
            count_stale_death=self.count_stale,
        )

    def count_stale(self) -> None:
        self.stale += 1

    def send(self, kind: str, data: bytes, device: str | None = None) -> Routed:
        topic = f"spBv1.0/{G}/{kind}/{N}" + (f"/{device}" if device else "")
        return self.host.route(topic, data, NOW_US)


def nbirth(seq: int = 0, bd_seq: int = 7) -> bytes:
    return wire.payload(
        [
            wire.metric("bdSeq", None, wire.INT64, bd_seq),
            wire.metric("Inputs/Temp", 1, wire.INT32, -12),
            wire.metric("Count", 2, wire.UINT64, 2**40),
            wire.metric("Running", 3, wire.BOOLEAN, True),
        ],
        timestamp=NOW_MS,
        seq=seq,
    )


def ndata(seq: int, *metrics: bytes) -> bytes:
    return wire.payload(metrics, timestamp=NOW_MS, seq=seq)


def by_alias(alias: int, datatype: int, value: object, **kw: object) -> bytes:
    return wire.metric(None, alias, None, value, value_type=datatype, **kw)  # type: ignore[arg-type]


def values(routed: Routed) -> dict[str, float]:
    return {p.metric: p.value for p in routed.points}


async def test_birth_then_data_by_alias_only() -> None:
    h = Harness()
    born = h.send("NBIRTH", nbirth())
    assert values(born) == {"Inputs.Temp": -12.0, "Count": float(2**40), "Running": 1.0}
    data = h.send("NDATA", ndata(1, by_alias(1, wire.INT32, -7), by_alias(3, wire.BOOLEAN, False)))
    assert values(data) == {"Inputs.Temp": -7.0, "Running": 0.0}
    assert (data.device_id, data.site_id) == (N, G)
    assert data.dead_letters == []
    assert h.rebirths == []
    assert isinstance(h.stored[0], Birth)
    assert h.stored[0].bd_seq == 7
    assert Status(N, G, True) in h.stored


async def test_data_before_birth_requests_rebirth_once_within_cooldown() -> None:
    h = Harness(rebirth_cooldown_s=60)
    first = h.send("NDATA", ndata(0, by_alias(1, wire.INT32, 1)))
    second = h.send("NDATA", ndata(1, by_alias(1, wire.INT32, 1)))
    assert [d.reason for d in first.dead_letters + second.dead_letters] == ["no_birth"] * 2
    assert h.rebirths == [(G, N, "no_birth")]
    assert h.counted == [("no_birth", True), ("no_birth", False)]


async def test_unknown_alias_is_dead_lettered_and_the_rest_kept() -> None:
    h = Harness()
    h.send("NBIRTH", nbirth())
    routed = h.send(
        "NDATA", ndata(1, by_alias(1, wire.INT32, 5), by_alias(2**64 - 1, wire.DOUBLE, 1.0))
    )
    assert values(routed) == {"Inputs.Temp": 5.0}
    assert [d.reason for d in routed.dead_letters] == ["unknown_alias"]
    assert "18446744073709551615" in routed.dead_letters[0].detail
    assert h.rebirths == [(G, N, "unknown_alias")]


async def test_seq_gap_requests_rebirth_after_the_reorder_timeout() -> None:
    h = Harness(reorder_timeout_s=0.05)
    h.send("NBIRTH", nbirth(seq=250))
    h.send("NDATA", ndata(251, by_alias(1, wire.INT32, 1)))
    routed = h.send("NDATA", ndata(254, by_alias(1, wire.INT32, 2)))  # 252, 253 missing
    assert values(routed) == {"Inputs.Temp": 2.0}  # stored all the same
    assert not h.rebirths
    await asyncio.sleep(0.2)
    assert h.rebirths == [(G, N, "seq_gap")]


async def test_a_late_message_closes_the_gap_without_rebirth() -> None:
    h = Harness(reorder_timeout_s=0.05)
    h.send("NBIRTH", nbirth(seq=255))
    h.send("NDATA", ndata(1, by_alias(1, wire.INT32, 1)))  # seq wraps; 0 missing
    h.send("NDATA", ndata(0, by_alias(1, wire.INT32, 2)))  # arrives late
    await asyncio.sleep(0.2)
    assert h.rebirths == []


async def test_ndeath_with_a_stale_bdseq_is_ignored_and_a_matching_one_honoured() -> None:
    h = Harness()
    h.send("NBIRTH", nbirth(bd_seq=7))
    h.send("DBIRTH", wire.payload([wire.metric("Level", 1, wire.FLOAT, 1.5)], seq=1), "tank")
    h.stored.clear()
    h.send("NDEATH", wire.payload([wire.metric("bdSeq", None, wire.INT64, 6)]))
    assert (h.stale, h.stored) == (1, [])
    h.send("NDEATH", wire.payload([wire.metric("bdSeq", None, wire.INT64, 7)]))
    assert set(h.stored) == {Status(N, G, False), Status(f"{N}:tank", G, False)}


async def test_device_identity_edge_node_puts_device_metrics_under_the_node() -> None:
    h = Harness(identity="edge_node")
    h.send("NBIRTH", nbirth())
    routed = h.send(
        "DBIRTH", wire.payload([wire.metric("Level", 9, wire.FLOAT, 1.5)], seq=1), "tank 2"
    )
    assert routed.device_id == N
    assert values(routed) == {"tank_2.Level": 1.5}


async def test_flags_transient_null_historical() -> None:
    h = Harness()
    h.send("NBIRTH", nbirth())
    routed = h.send(
        "NDATA",
        ndata(
            1,
            by_alias(1, wire.INT32, 1, transient=True),
            wire.metric(None, 2, None, null=True),
            by_alias(3, wire.BOOLEAN, True, historical=True, timestamp=NOW_MS - 60_000),
        ),
    )
    assert (routed.points, routed.dead_letters) == ([], [])
    assert [(p.metric, p.value, p.time_us) for p in routed.historical] == [
        ("Running", 1.0, NOW_US - 60_000_000)
    ]


async def test_strings_are_texts() -> None:
    h = Harness()
    h.send(
        "NBIRTH",
        wire.payload(
            [
                wire.metric("bdSeq", None, wire.INT64, 0),
                wire.metric("Mode", 4, wire.STRING, "auto"),
            ],
            seq=0,
        ),
    )
    routed = h.send("NDATA", ndata(1, by_alias(4, wire.STRING, "manual")))
    assert [(t.metric, t.text) for t in routed.texts] == [("Mode", "manual")]


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"\xff\xff\xff\xff", "malformed_protobuf"),
        (b"\x12\xff\x01" + b"\x00" * 10, "malformed_protobuf"),
    ],
)
async def test_malformed_payload_is_dead_lettered_and_requests_rebirth(
    data: bytes, reason: str
) -> None:
    h = Harness()
    routed = h.send("NDATA", data)
    assert routed.rejected_message == reason
    assert h.rebirths == [(G, N, "malformed_payload")]


async def test_wrong_type_in_data_keeps_the_good_metrics() -> None:
    h = Harness()
    h.send("NBIRTH", nbirth())
    routed = h.send(
        "NDATA", ndata(1, by_alias(1, wire.STRING, "hot"), by_alias(3, wire.BOOLEAN, True))
    )
    assert values(routed) == {"Running": 1.0}
    assert [d.reason for d in routed.dead_letters] == ["wrong_type"]


async def test_births_loaded_decode_data_without_rebirth() -> None:
    first = Harness()
    first.send("NBIRTH", nbirth())
    births = [s for s in first.stored if isinstance(s, Birth)]
    second = Harness()
    second.host.load(births)
    routed = second.send("NDATA", ndata(42, by_alias(1, wire.INT32, -3)))
    assert values(routed) == {"Inputs.Temp": -3.0}
    assert second.rebirths == []


async def test_with_edge_node_identity_a_ddeath_leaves_the_node_online() -> None:
    h = Harness(identity="edge_node")
    h.send("NBIRTH", nbirth())
    h.send("DBIRTH", wire.payload([wire.metric("Level", 9, wire.FLOAT, 1.5)], seq=1), "tank")
    h.stored.clear()
    h.send("DDEATH", wire.payload([], seq=2), "tank")
    assert h.stored == []

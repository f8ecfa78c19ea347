"""The pure parts: register decoding and request planning, the simulator's
determinism and shapes, and message packing within the bridge's codecs."""

from __future__ import annotations

import math
import statistics

from core.codec import CODECS, DecodeContext
from core.limits import Limits
from edge_agent.collect.modbus import plan
from edge_agent.collect.registers import RegisterSpec, decode
from edge_agent.collect.simulator import Fleet
from edge_agent.config import SimulatorSettings
from edge_agent.pack import Packer


def spec(**kw: object) -> RegisterSpec:
    return RegisterSpec.model_validate({"metric": "m", "address": 0, **kw})


def test_float32_1234_5_in_all_four_orders() -> None:
    # 1234.5 is 0x449A5000
    for word, byte, regs in [
        ("big", "big", [0x449A, 0x5000]),
        ("little", "big", [0x5000, 0x449A]),
        ("big", "little", [0x9A44, 0x0050]),
        ("little", "little", [0x0050, 0x9A44]),
    ]:
        assert decode(spec(type="float32", word_order=word, byte_order=byte), regs) == 1234.5


def test_integers_signs_scale_and_bits() -> None:
    assert decode(spec(type="int16"), [0xFFFF]) == -1
    assert decode(spec(type="uint16"), [0xFFFF]) == 65535
    assert decode(spec(type="int32"), [0xFFFF, 0xFFFE]) == -2
    assert decode(spec(type="int32", word_order="little"), [0xFFFE, 0xFFFF]) == -2
    assert decode(spec(type="uint32"), [0x1234, 0x5678]) == 0x12345678
    assert decode(spec(type="uint16", scale=0.1, offset=-10), [1234]) == 1234 * 0.1 - 10
    assert decode(spec(type="float64"), [0x4058, 0xFF5C, 0x28F5, 0xC28F]) == 99.99
    assert decode(spec(function="coil", type="bool"), [True]) == 1.0
    assert decode(spec(function="discrete", type="bool"), [False]) == 0.0


def test_adjacent_registers_share_a_request_and_gaps_are_never_read() -> None:
    blocks = plan(
        [
            spec(metric="a", address=0, type="float32"),
            spec(metric="b", address=2, type="int16"),
            spec(metric="c", address=4, type="int16"),  # gap at 3
            spec(metric="d", address=0, function="input"),
            spec(metric="e", address=0, function="coil", type="bool"),
            spec(metric="f", address=1, function="coil", type="bool"),
            spec(metric="g", address=200, type="float64"),
            spec(metric="h", address=120, type="float64"),  # 120..123, 200 is too far
        ]
    )
    got = [(b.function, b.start, b.count, [s.metric for s in b.specs]) for b in blocks]
    assert got == [
        ("coil", 0, 2, ["e", "f"]),
        ("holding", 0, 3, ["a", "b"]),
        ("holding", 4, 1, ["c"]),
        ("holding", 120, 4, ["h"]),
        ("holding", 200, 4, ["g"]),
        ("input", 0, 1, ["d"]),
    ]


def test_the_simulator_is_deterministic_and_realistic() -> None:
    settings = SimulatorSettings(devices=50, rate=1.0, seed=11)  # type: ignore[call-arg]
    a, b = Fleet(settings, 1_700_000_000_000_000), Fleet(settings, 1_700_000_000_000_000)
    ticks = range(0, 86_400, 60)  # a day, a reading a minute
    readings = [r for t in ticks for r in a.readings(t)]
    assert readings == [r for t in ticks for r in b.readings(t)]
    other = Fleet(settings.model_copy(update={"seed": 12}), 1_700_000_000_000_000)
    assert other.readings(0) != a.readings(0)

    flow = [r.value for r in readings if r.metric == "flow_rate"]
    assert {r.metric for r in readings} == {"flow_rate", "pip", "temperature"}
    assert 1000 <= statistics.median(flow) <= 1500
    inside = sum(1000 - 10 <= v <= 1500 + 10 for v in flow) / len(flow)
    assert 0.98 < inside < 1.0  # mostly in range, with a few spikes beyond it
    expected = len(ticks) * 50 * 3
    assert 0.99 * expected < len(readings) < expected  # dropouts, about 0.2%
    one = [r.value for r in readings if r.device_id == "esp-0000" and r.metric == "temperature"]
    assert max(one) - min(one) > 2  # the daily cycle moves it
    assert all(math.isfinite(v) and round(v, 3) == v for v in flow)


def test_packed_messages_decode_to_the_same_readings_in_both_codecs() -> None:
    rows = [
        (
            i + 1,
            f"dev-{i % 3}",
            ("flow_rate", "pip")[i % 2],
            1_795_000_000_000_000 + i // 6,
            i * 1.5,
        )
        for i in range(1200)
    ]
    for codec in ("seed_json", "flat_json"):
        packer = Packer("t/{site_id}/{device_id}", "s1", codec, max_points=100, max_bytes=65_536)
        messages = packer.pack(rows)
        assert all(m.points <= 100 for m in messages)
        got = set()
        for m in messages:
            device = m.topic.rsplit("/", 1)[1]
            ctx = DecodeContext(device, None, 1_795_000_000_000_000, Limits())  # type: ignore[call-arg]
            decoded = CODECS[codec].decode(m.payload, ctx)
            assert not decoded.rejects
            got |= {(p.device_id, p.metric, p.time_us, p.value) for p in decoded.points}
            assert sorted(m.ids) == sorted(r[0] for r in rows if r[0] in set(m.ids))
        assert got == {(d, m, t, v) for _, d, m, t, v in rows}


def test_a_message_stays_under_its_byte_budget() -> None:
    rows = [
        (i + 1, "dev", f"metric_{i:04d}_" + "x" * 40, 1_795_000_000_000_000, 1e300)
        for i in range(500)
    ]
    messages = Packer("t/{device_id}", "s", "flat_json", 500, 4096).pack(rows)
    assert len(messages) > 1
    assert all(len(m.payload) <= 4096 for m in messages)


def test_an_injected_fault_replaces_one_signal_of_one_device_for_its_window() -> None:
    import pytest
    from pydantic import ValidationError

    from edge_agent.collect.simulator import Fleet
    from edge_agent.config import Fault, SimulatorSettings

    plain = SimulatorSettings(devices=2, rate=1.0, seed=5)  # type: ignore[call-arg]
    fault = Fault(device=1, signal="temperature", start_s=3, end_s=5, value=120.0)
    faulty = plain.model_copy(update={"faults": [fault]})
    for bad, says in [({"signal": "x"}, "unknown signal"), ({"end_s": 2}, "end_s must be after")]:
        wrong = fault.model_dump() | bad
        with pytest.raises(ValidationError, match=says):
            SimulatorSettings.model_validate({"faults": [wrong]})
    a, b = Fleet(plain, 0), Fleet(faulty, 0)
    for tick in range(8):
        for p, q in zip(a.readings(tick), b.readings(tick), strict=True):
            changed = p.device_id.endswith("0001") and p.metric == "temperature" and 3 <= tick < 5
            assert q.value == (120.0 if changed else p.value), (tick, p, q)

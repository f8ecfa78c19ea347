"""core.sparkplug.payload: payloads built by the independent encoder (wire.py)
decode to what was encoded; hostile ones reject with a reason."""

from __future__ import annotations

import contextlib
import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from core.limits import Limits
from core.rules import CodecError, Rejected
from core.sparkplug import payload as sp
from tests.sparkplug import wire

LIMITS = Limits()


def one(metric_bytes: bytes) -> sp.Metric:
    parsed = sp.parse(wire.payload([metric_bytes]), LIMITS)
    assert parsed.damage is None
    return parsed.payload.metrics[0]


SIGNED = [(wire.INT8, 8), (wire.INT16, 16), (wire.INT32, 32), (wire.INT64, 64)]
UNSIGNED = [(wire.UINT8, 8), (wire.UINT16, 16), (wire.UINT32, 32), (wire.UINT64, 64)]


@pytest.mark.parametrize(("datatype", "bits"), SIGNED)
@given(data=st.data())
def test_signed_types_are_sign_extended(datatype: int, bits: int, data: st.DataObject) -> None:
    value = data.draw(st.integers(-(2 ** (bits - 1)), 2 ** (bits - 1) - 1))
    m = one(wire.metric("x", 1, datatype, value))
    assert sp.values(m, datatype, "x") == [("", float(value))]


def test_minus_twelve_as_int32_arrives_as_4294967284_and_is_minus_twelve() -> None:
    m = one(wire.metric("x", 1, wire.INT32, -12))
    assert m.int_value == 4294967284
    assert sp.values(m, wire.INT32, "x") == [("", -12.0)]


@pytest.mark.parametrize(("datatype", "bits"), UNSIGNED)
@given(data=st.data())
def test_unsigned_types(datatype: int, bits: int, data: st.DataObject) -> None:
    value = data.draw(st.integers(0, 2**bits - 1))
    m = one(wire.metric("x", 1, datatype, value))
    assert sp.values(m, datatype, "x") == [("", float(value))]


@given(st.floats(allow_nan=False, allow_infinity=False))
def test_double(value: float) -> None:
    assert sp.values(one(wire.metric("x", 1, wire.DOUBLE, value)), wire.DOUBLE, "x") == [
        ("", value)
    ]


@given(st.floats(width=32, allow_nan=False, allow_infinity=False))
def test_float(value: float) -> None:
    assert sp.values(one(wire.metric("x", 1, wire.FLOAT, value)), wire.FLOAT, "x") == [("", value)]


@pytest.mark.parametrize(("value", "stored"), [(True, 1.0), (False, 0.0)])
def test_boolean_is_one_or_zero(value: bool, stored: float) -> None:
    m = one(wire.metric("x", 1, wire.BOOLEAN, value))
    assert sp.values(m, wire.BOOLEAN, "x") == [("", stored)]


@given(st.text())
def test_string_is_text(value: str) -> None:
    for datatype in (wire.STRING, wire.TEXT):
        assert sp.values(one(wire.metric("x", 1, datatype, value)), datatype, "x") == [("", value)]


def test_non_finite_double_is_rejected() -> None:
    m = one(wire.metric("x", 1, wire.DOUBLE, math.inf))
    with pytest.raises(Rejected) as err:
        sp.values(m, wire.DOUBLE, "x")
    assert err.value.reject.reason == "non_finite_value"


def test_value_in_the_wrong_field_is_wrong_type() -> None:
    m = one(wire.metric("x", 1, wire.INT32, "12", value_type=wire.STRING))
    with pytest.raises(Rejected) as err:
        sp.values(m, wire.INT32, "x")
    assert err.value.reject.reason == "wrong_type"
    assert "int_value" in err.value.reject.detail


def test_bytes_are_unsupported_with_a_reason() -> None:
    m = one(wire.metric("blob", 1, wire.BYTES, b"\x00\x01"))
    with pytest.raises(Rejected) as err:
        sp.values(m, wire.BYTES, "blob")
    assert err.value.reject.reason == "unsupported_type"


def test_dataset_numeric_cells_are_flattened() -> None:
    ds = wire.dataset(["a", "b"], [wire.INT32, wire.DOUBLE], [[-1, 1.5], [2, 2.5]])
    m = one(wire.metric("t", 1, wire.DATASET, raw_value=ds))
    assert sp.values(m, wire.DATASET, "t") == [
        ("0.a", -1.0),
        ("0.b", 1.5),
        ("1.a", 2.0),
        ("1.b", 2.5),
    ]


def test_dataset_with_a_bytes_column_is_not_numeric() -> None:
    ds = wire.dataset(["a"], [wire.INT32], [[1]])
    ds_bad = ds.replace(wire.f_varint(3, wire.INT32), wire.f_varint(3, wire.BYTES))
    m = one(wire.metric("t", 1, wire.DATASET, raw_value=ds_bad))
    with pytest.raises(Rejected) as err:
        sp.values(m, wire.DATASET, "t")
    assert err.value.reject.reason == "not_numeric"


def test_template_members_are_flattened_and_nested() -> None:
    inner = wire.template([wire.metric("speed", None, wire.FLOAT, 2.5)])
    outer = wire.template(
        [
            wire.metric("level", None, wire.INT16, -3),
            wire.metric("motor", None, wire.TEMPLATE, raw_value=inner),
            wire.metric("label", None, wire.STRING, "ok"),
        ]
    )
    m = one(wire.metric("pump", 1, wire.TEMPLATE, raw_value=outer))
    assert sp.values(m, wire.TEMPLATE, "pump") == [
        ("level", -3.0),
        ("motor.speed", 2.5),
        ("label", "ok"),
    ]


def test_template_with_a_bytes_member_is_rejected() -> None:
    outer = wire.template([wire.metric("raw", None, wire.BYTES, b"x")])
    m = one(wire.metric("pump", 1, wire.TEMPLATE, raw_value=outer))
    with pytest.raises(Rejected) as err:
        sp.values(m, wire.TEMPLATE, "pump")
    assert err.value.reject.reason == "unsupported_type"


def test_truncated_payload_keeps_the_metrics_before_the_cut() -> None:
    good = [wire.metric(None, i, None, float(i), value_type=wire.DOUBLE) for i in range(5)]
    data = wire.payload(good, seq=3)
    cut = data[: len(data) - len(wire.f_varint(3, 3)) - 4]  # into the last metric
    parsed = sp.parse(cut, LIMITS)
    assert parsed.damage is not None
    assert parsed.damage.reason == "truncated_protobuf"
    assert [m.alias for m in parsed.payload.metrics] == [0, 1, 2, 3]


def test_garbage_is_malformed_protobuf() -> None:
    with pytest.raises(CodecError) as err:
        sp.parse(b"\xff\xff\xff\xff\xff", LIMITS)
    assert err.value.reason == "malformed_protobuf"


def test_payload_over_the_size_limit() -> None:
    data = wire.payload([wire.metric("x", 1, wire.STRING, "y" * 300_000)])
    with pytest.raises(CodecError) as err:
        sp.parse(data, LIMITS)
    assert err.value.reason == "payload_too_large"


def test_a_million_metrics_is_too_many_points() -> None:
    limits = Limits(max_payload_bytes=16_777_216)
    one_metric = wire.f_bytes(2, wire.f_varint(2, 1))  # alias 1, 4 bytes
    data = one_metric * 1_000_000
    with pytest.raises(CodecError) as err:
        sp.parse(data, limits)
    assert err.value.reason == "too_many_points"
    assert "1000000 metrics" in err.value.detail


@given(st.binary(max_size=200))
def test_any_bytes_parse_or_reject(data: bytes) -> None:
    """Whatever the bytes: a CodecError or metrics whose values are values or
    Rejected; nothing else escapes."""
    try:
        parsed = sp.parse(data, LIMITS)
    except CodecError as exc:
        reason = exc.reason
    else:
        reason = "parsed"
        for m in parsed.payload.metrics:
            with contextlib.suppress(Rejected):
                sp.values(m, m.datatype, "x")
    assert reason in ("parsed", "malformed_protobuf")


def test_metric_names_become_metric_keys() -> None:
    assert sp.metric_key("Inputs/Tank Level") == "Inputs.Tank_Level"
    assert sp.metric_key("Node Control/Rebirth") == "Node_Control.Rebirth"
    assert sp.metric_key("1st") == "_1st"


@pytest.mark.parametrize("datatype", sorted(sp.FAST_SCALARS))
@given(data=st.data())
def test_the_fast_path_stores_what_values_stores(datatype: int, data: st.DataObject) -> None:
    """bridge.sparkplug.host reads numeric metrics through FAST_SCALARS: the
    same value as the general path, for any raw field value."""
    field, convert = sp.FAST_SCALARS[datatype]
    if field in ("float_value", "double_value"):
        raw: object = data.draw(st.floats(width=32 if field == "float_value" else 64))
    elif field == "boolean_value":
        raw = data.draw(st.booleans())
    else:
        raw = data.draw(st.integers(0, 2**32 - 1 if field == "int_value" else 2**64 - 1))
    try:
        general: object = sp.scalar(raw, datatype, "x")
    except Rejected as exc:
        general = exc.reject.reason
    try:
        fast: object = convert(raw)
    except Rejected as exc:
        fast = exc.reject.reason
    assert fast == general


@pytest.mark.timeout(10)
@pytest.mark.parametrize("tail", [b"\xff", b"\x80\x80", b"\x08\xff"])
def test_a_tag_cut_short_after_good_fields_keeps_them_and_ends(tail: bytes) -> None:
    """A payload whose last field's tag (or its varint) is cut short: the
    fields before it are kept with a truncated_protobuf reject. (The tag's
    cut was once read from the end of the buffer, looping for ever while the
    list of field ends grew: found by test_any_bytes_parse_or_reject.)"""
    parsed = sp.parse(b"\x08\x01" + tail, LIMITS)  # timestamp = 1, then the cut
    assert parsed.payload.timestamp == 1
    assert parsed.damage is not None
    assert parsed.damage.reason == "truncated_protobuf"

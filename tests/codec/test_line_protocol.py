"""The line_protocol codec: lines written by an independent encoder
(tests/codec/line_protocol_encoder.py) decode to exactly the points they
hold, whatever the names, escapes, types and precision; hostile lines cost
only themselves, each one Reject naming its line."""

from __future__ import annotations

import math
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from core.codec import CodecError, DecodeContext, Decoded, build_codec
from core.codec.line_protocol import LineProtocol
from core.limits import Limits
from core.types import Point, TextPoint
from tests.codec.line_protocol_encoder import Field, write_line

RECEIVED = 1_795_773_600_000_000  # 2026-11-27T10:00:00Z
DEVICE = "dev-1"
LIMITS = Limits()
UNIT_US = {"ns": 1, "us": 1, "ms": 1000, "s": 1_000_000}  # µs per unit (ns: finer)


def decode(payload: bytes | str, limits: Limits = LIMITS, **options: Any) -> Decoded:
    data = payload.encode() if isinstance(payload, str) else payload
    codec = build_codec("line_protocol", options)
    return codec.decode(data, DecodeContext(DEVICE, None, RECEIVED, limits))


# ------------------------------------------------------------------ examples


def test_the_documented_example() -> None:
    got = decode(
        "weather,location=us-midwest,device=ws-1 temperature=82,humidity=71i,ok=t,"
        'note="a \\"quoted\\" \\\\ word" 1795773600000000000',
        device_tag="device",
    )
    t = RECEIVED
    assert got.points == [
        Point(t, "ws-1", "weather.temperature", 82.0),
        Point(t, "ws-1", "weather.humidity", 71.0),
        Point(t, "ws-1", "weather.ok", 1.0),
    ]
    assert got.texts == [TextPoint(t, "ws-1", "weather.note", 'a "quoted" \\ word')]
    assert (got.rejects, got.sites) == ([], {"ws-1": None})


def test_many_lines_comments_and_receive_time() -> None:
    got = decode("# a comment\n\ncpu usage=1.5\r\n  \ncpu usage=2.5 1795773599000000000\n")
    assert got.points == [
        Point(RECEIVED, DEVICE, "cpu.usage", 1.5),
        Point(RECEIVED - 1_000_000, DEVICE, "cpu.usage", 2.5),
    ]


def test_tags_name_device_and_site_and_metrics_are_renamed() -> None:
    got = decode(
        "env,host=gw-7,plant=north t=1\nenv t=2\nenv,host=gw-8 t=3",
        device_tag="host",
        site_tag="plant",
        metrics={"env.t": "temperature"},
    )
    assert [(p.device_id, p.metric, p.value) for p in got.points] == [
        ("gw-7", "temperature", 1.0),
        (DEVICE, "temperature", 2.0),  # no device tag: the topic's device
        ("gw-8", "temperature", 3.0),
    ]
    assert got.sites == {"gw-7": "north", DEVICE: None, "gw-8": None}  # for the registry


@pytest.mark.parametrize(
    ("precision", "stamp"),
    [
        ("ns", "1795773600123456789"),
        ("us", "1795773600123456"),
        ("ms", "1795773600123"),
        ("s", "1795773600"),
    ],
)
def test_precision(precision: str, stamp: str) -> None:
    [point] = decode(f"m f=1 {stamp}", precision=precision).points
    whole = {"ns": 123456, "us": 123456, "ms": 123000, "s": 0}[precision]
    assert point.time_us == RECEIVED + whole


@pytest.mark.parametrize(
    ("line", "metric"),
    [
        ("my\\ m,t=x f=1", None),  # "my m.f" is not a metric name: rejected, not misread
        ("m\\,n f=1", None),
        ("m,t\\ k=a\\=b\\,c f=1", "m.f"),  # escaped tag key and value
        ("m f\\=g=1", None),  # field key "f=g"
        ("m\\\\x f=1", None),  # "m\\x": a literal backslash
        ("m\\x f=1", None),  # backslash before an ordinary character stays
        ("m,t=a\\\\ f=1", "m.f"),  # tag value "a\\"; the space after it separates
    ],
)
def test_escapes(line: str, metric: str | None) -> None:
    got = decode(line)
    if metric is None:
        assert [r.reason for r in got.rejects] == ["bad_metric_name"]
    else:
        assert [p.metric for p in got.points] == [metric]


def test_escaped_names_through_the_metrics_option() -> None:
    got = decode(
        'my\\ m\\,x f\\=g\\ h=1,s="\\\\d" 1795773600000000000\nm\\x f=2',
        metrics={"my m,x.f=g h": "a", "my m,x.s": "b", "m\\x.f": "c"},
    )
    assert [(p.metric, p.value) for p in got.points] == [("a", 1.0), ("c", 2.0)]
    assert got.texts == [TextPoint(RECEIVED, DEVICE, "b", "\\d")]


def test_values_of_each_type() -> None:
    got = decode("m a=-1.5e3,b=-9223372036854775808i,c=18446744073709551615u,d=F,e=TRUE,f=.5,g=7")
    assert [p.value for p in got.points] == [
        -1500.0,
        -(2.0**63),
        float(2**64 - 1),
        0.0,
        1.0,
        0.5,
        7.0,
    ]


# ------------------------------------------------------------------ hostile


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        ("m f=NaN", "non_finite_value"),
        ("m f=-inf", "non_finite_value"),
        ("m f=1e400", "non_finite_value"),
        ("m f=9223372036854775808i", "bad_value"),
        ("m f=-1u", "bad_value"),
        ("m f=18446744073709551616u", "bad_value"),
        ("m f=1_000", "bad_value"),
        ("m f=yes", "bad_value"),
        ("m f=", "bad_value"),
        ('m f="open', "bad_line"),
        ('m f="a"b', "bad_line"),
        ('m f="a\\"', "bad_line"),  # the closing quote is escaped
        ("m", "bad_line"),
        ("m f=1 1 2", "bad_line"),
        ("m,t f=1", "bad_line"),
        ("m,t= f=1", "bad_line"),
        ("m =1", "bad_line"),
        (",t=x f=1", "bad_line"),
        ("m f=1 12.5", "bad_timestamp"),
        ("m f=1 123456789012345678901234567890", "bad_timestamp"),
        ("m f=1 9999999999999999999", "time_in_future"),
        ("m f=1 0", "time_too_old"),
        ("m f=1\\", "bad_value"),  # a trailing backslash
        ('m s="nul\x00"', "bad_text"),
        ('m s="' + "x" * 4097 + '"', "text_too_long"),
        ("m,device=a/b f=1", "bad_device"),
    ],
)
def test_a_bad_line_is_rejected_with_its_number_and_the_rest_kept(line: str, reason: str) -> None:
    got = decode(f"m ok=1\n{line}\nm ok=2", device_tag="device")
    assert [p.value for p in got.points] == [1.0, 2.0]
    assert [r.reason for r in got.rejects] == [reason], got.rejects
    assert got.rejects[0].detail.startswith("line 2: ")


def test_one_reject_per_bad_line_and_none_of_a_bad_lines_points() -> None:
    got = decode(b"m a=1,b=NaN\nm c=1\nm d=x\n\xff\xfe f=1\nm e=2")
    assert [p.metric for p in got.points] == ["m.c", "m.e"]
    assert [r.detail.split(":")[0] for r in got.rejects] == ["line 1", "line 3", "line 4"]
    assert got.rejects[2].reason == "bad_line"


def test_message_bounds() -> None:
    with pytest.raises(CodecError) as exc:
        decode(b"m f=1\n" * 100_000)
    assert exc.value.reason == "payload_too_large"
    with pytest.raises(CodecError) as exc:
        decode("m " + ",".join(f"f{i}=1" for i in range(10_001)))
    assert exc.value.reason == "too_many_points"
    small = Limits(max_points_per_message=3)
    with pytest.raises(CodecError) as exc:
        decode("m a=1,b=2\nm c=3,d=4", small)
    assert exc.value.reason == "too_many_points"
    with pytest.raises(CodecError) as exc:
        decode("m a=1\nbad\nbad\nbad", small)  # rejected lines count too
    assert exc.value.reason == "too_many_points"
    for empty in ("", "\n\n", "# only a comment"):
        with pytest.raises(CodecError) as exc:
            decode(empty)
        assert exc.value.reason == "no_points"


@pytest.mark.parametrize(
    "options",
    [{"precision": "minutes"}, {"metrics": {"m.f": "1bad"}}, {"device": "x"}],
)
def test_bad_options_are_refused_naming_the_key(options: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match="line_protocol options"):
        build_codec("line_protocol", options)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=600))
def test_any_bytes_keep_the_codec_contract(payload: bytes) -> None:
    try:
        got = decode(payload, device_tag="device", site_tag="site")
    except CodecError as exc:
        reason = exc.reason
    else:
        reason = None
        for p in got.points:
            assert math.isfinite(p.value)
            assert p.metric
        assert got.points or got.texts or got.rejects
        assert all(r.detail.startswith("line ") for r in got.rejects)
    assert reason in {None, "no_points", "too_many_points"}


def test_encode_round_trips_through_decode() -> None:
    codec = LineProtocol.from_options({"precision": "us"})
    samples = [(RECEIVED - 5, "cpu.usage", 0.1), (RECEIVED, "disk.free", -3e300)]
    got = codec.decode(codec.encode(samples), DecodeContext(DEVICE, None, RECEIVED, LIMITS))
    assert got.points == [Point(t, DEVICE, m, v) for t, m, v in samples]
    with pytest.raises(ValueError, match="measurement"):
        codec.encode([(RECEIVED, "flat", 1.0)])


# ------------------------------------------------------------------ properties

# Names with every character the format escapes, and others; no newline (the
# format has none inside a line) and no NUL.
NAME = st.text(
    st.characters(blacklist_categories=("Cs",), blacklist_characters="\n\r\x00"),
    min_size=1,
    max_size=12,
).filter(lambda s: not s.startswith("#") and not s.isspace())
ESCAPY = st.text(st.sampled_from(list(',= \\"#\tabé')), min_size=1, max_size=8)
KEY = st.one_of(NAME, ESCAPY)
TEXT = st.text(
    st.characters(blacklist_categories=("Cs",), blacklist_characters="\n\r\x00"), max_size=40
) | st.text(st.sampled_from(list('\\"= ,x')), max_size=10)
ID = st.from_regex(r"[A-Za-z0-9_.:-]{1,16}", fullmatch=True)


@st.composite
def field(draw: st.DrawFn) -> Field:
    kind = draw(st.sampled_from(["float", "int", "uint", "bool", "string"]))
    value: float | int | bool | str
    if kind == "float":
        value = draw(st.floats(allow_nan=False, allow_infinity=False))
    elif kind == "int":
        value = draw(st.integers(-(2**63), 2**63 - 1))
    elif kind == "uint":
        value = draw(st.integers(0, 2**64 - 1))
    elif kind == "bool":
        value = draw(st.booleans())
    else:
        value = draw(TEXT)
    return Field(draw(KEY), kind, value, draw(st.integers(0, 4)))


@st.composite
def line(draw: st.DrawFn) -> tuple[str, dict[str, str], list[Field], int | None]:
    # Not all whitespace: a tab is written unescaped, and a line that is blank up
    # to its first field key is read as that key's line (a comment, for "#").
    measurement = draw(
        st.one_of(NAME, ESCAPY).filter(lambda s: not s.lstrip().startswith("#") and not s.isspace())
    )
    plain_key = KEY.filter(lambda k: k not in ("device", "site"))
    tags = draw(st.dictionaries(plain_key, st.one_of(NAME, ESCAPY), max_size=3))
    if draw(st.booleans()):
        tags["device"] = draw(ID)
        tags["site"] = draw(ID)
    fields = draw(st.lists(field(), min_size=1, max_size=5, unique_by=lambda f: f.key))
    offset = draw(st.none() | st.integers(-86_400_000_000, 60_000_000))
    return measurement, tags, fields, offset


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(line(), min_size=1, max_size=6), st.sampled_from(["ns", "us", "ms", "s"]))
def test_encoded_lines_decode_to_the_same_points(
    lines: list[tuple[str, dict[str, str], list[Field], int | None]], precision: str
) -> None:
    names: dict[str, str] = {}  # "<measurement>.<field>" as written -> a metric name
    want_points: list[Point] = []
    want_texts: list[TextPoint] = []
    want_sites: dict[str, str | None] = {}
    text_lines = []
    for measurement, tags, fields, offset in lines:
        if offset is None:
            stamp, time_us = None, RECEIVED
        else:  # a time the precision holds exactly
            unit = UNIT_US[precision]
            time_us = (RECEIVED + offset) // unit * unit
            stamp = time_us * 1000 + offset % 1000 if precision == "ns" else time_us // unit
        device = tags.get("device", DEVICE)
        if "site" in tags:
            want_sites[device] = tags["site"]
        else:
            want_sites.setdefault(device, None)
        for f in fields:
            metric = names.setdefault(f"{measurement}.{f.key}", f"m{len(names)}")
            if f.kind == "string":
                want_texts.append(TextPoint(time_us, device, metric, str(f.value)))
            else:
                want_points.append(Point(time_us, device, metric, float(f.value)))
        text_lines.append(write_line(measurement, tags, fields, stamp))
    got = decode(
        "\n".join(text_lines),
        device_tag="device",
        site_tag="site",
        precision=precision,
        metrics=names,
    )
    assert got.rejects == []
    assert got.points == want_points
    assert got.texts == want_texts
    assert got.sites == want_sites

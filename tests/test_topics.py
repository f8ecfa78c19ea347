"""Topic templates: which templates load, what they subscribe to, and what a
topic yields: its fields, None (another route's), or TopicError (dead letter)."""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from core.rules import METRIC_NAME
from core.topics import TopicError, TopicFields, TopicTemplate

# --- templates ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("template", "subscription"),
    [
        ("telemetry/{site_id}/{device_id}", "telemetry/+/+"),
        ("telemetry/{device_id}/{metric}", "telemetry/+/+"),
        ("sensors/{device_id}/data", "sensors/+/data"),
        ("{device_id}", "+"),
        ("{device_id}/state", "+/state"),
        ("a/{site_id}/b/{device_id}/c/{metric}/d", "a/+/b/+/c/+/d"),
        ("esphome/{device_id}/sensor/{metric}/state", "esphome/+/sensor/+/state"),
        ("Plant 1/{device_id}", "Plant 1/+"),  # literal levels may hold any character but + #
    ],
)
def test_valid_templates_and_their_subscriptions(template: str, subscription: str) -> None:
    parsed = TopicTemplate(template)
    assert parsed.template == template
    assert parsed.subscription == subscription


@pytest.mark.parametrize(
    ("template", "message"),
    [
        ("", "empty level"),
        ("telemetry/{site_id}", "no {device_id}"),
        ("telemetry/site", "no {device_id}"),
        ("a/{device_id}/{device_id}", "{device_id} more than once"),
        ("{metric}/{device_id}/{metric}", "{metric} more than once"),
        ("a/{site}/{device_id}", "unknown field {site}"),
        ("a/{Device_ID}", "unknown field"),
        ("a/{}/{device_id}", "unknown field {}"),
        ("a/dev-{device_id}", "whole level"),
        ("a/{device_id}x", "whole level"),
        ("a/{device_id}{metric}", "whole level"),
        ("a/{device_id/b}", "whole level"),
        ("a/{{device_id}}", "whole level"),
        ("a/+/{device_id}", "wildcards"),
        ("a/{device_id}/#", "wildcards"),
        ("a/x+y/{device_id}", "wildcards"),
        ("a//{device_id}", "empty level"),
        ("/a/{device_id}", "empty level"),
        ("a/{device_id}/", "empty level"),
        ("$SYS/{device_id}", "starting with $"),
        ("$share/g/{device_id}", "starting with $"),
        ("a\x00/{device_id}", "NUL"),
    ],
)
def test_invalid_templates_say_what_is_wrong(template: str, message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        TopicTemplate(template)


# --- matching -------------------------------------------------------------------


def test_match_returns_the_fields() -> None:
    assert TopicTemplate("telemetry/{site_id}/{device_id}").match(
        "telemetry/north-1/pump-0001"
    ) == TopicFields(device_id="pump-0001", site_id="north-1", metric=None)
    assert TopicTemplate("telemetry/{device_id}/{metric}").match(
        "telemetry/esp32.kitchen/temp_c"
    ) == TopicFields("esp32.kitchen", None, "temp_c")
    assert TopicTemplate("sensors/{device_id}/data").match("sensors/a:b_c-d.e/data") == (
        TopicFields("a:b_c-d.e", None, None)
    )


@pytest.mark.parametrize(
    "topic",
    [
        "telemetry/s1",  # too few levels
        "telemetry/s1/d1/extra",  # too many
        "telemetry/s1/d1/",  # a trailing empty level is a level
        "/telemetry/s1/d1",
        "Telemetry/s1/d1",  # literals are case-sensitive
        "telemetrY/s1/d1",
        "other/s1/d1",
        "",
        "/",
        "telemetry",
        "telemetry/" + "x/" * 10_000 + "d",
    ],
)
def test_topics_of_another_shape_are_none(topic: str) -> None:
    assert TopicTemplate("telemetry/{site_id}/{device_id}").match(topic) is None


def test_literal_levels_after_fields_are_compared() -> None:
    template = TopicTemplate("sensors/{device_id}/data")
    assert template.match("sensors/d1/data") is not None
    assert template.match("sensors/d1/state") is None
    assert template.match("sensor/d1/data") is None


@pytest.mark.parametrize(
    "topic",
    [
        "telemetry/s1/",  # empty device
        "telemetry//d1",  # empty site
        "telemetry/s1/" + "d" * 129,
        "telemetry/" + "s" * 129 + "/d1",
        "telemetry/s1/pümp",
        "telemetry/s1/pump 1",
        "telemetry/s1/+",
        "telemetry/s1/#",
        "telemetry/+/d1",
        "telemetry/s1/d\x00",
        "telemetry/s1/d\n",
        "telemetry/s1/\u202epmup",
        "telemetry/s1/d1\ufeff",
        "telemetry/s1/$d",
        "telemetry/s1/d'1",
        "telemetry/s1/\uff44\uff11",  # fullwidth d1
    ],
)
def test_invalid_ids_raise_topic_error(topic: str) -> None:
    with pytest.raises(TopicError) as info:
        TopicTemplate("telemetry/{site_id}/{device_id}").match(topic)
    assert info.value.reason == "bad_topic"
    assert len(info.value.detail) < 200


def test_id_length_limit_is_inclusive_and_configurable() -> None:
    template = TopicTemplate("t/{site_id}/{device_id}")
    assert template.match("t/s/" + "d" * 128) == TopicFields("d" * 128, "s", None)
    short = TopicTemplate("t/{site_id}/{device_id}", max_id_len=4)
    assert short.match("t/abcd/wxyz") == TopicFields("wxyz", "abcd", None)
    with pytest.raises(TopicError, match="longer than 4"):
        short.match("t/abcde/wxyz")
    with pytest.raises(TopicError, match="longer than 4"):
        short.match("t/abcd/vwxyz")


@pytest.mark.parametrize(
    "metric", ["1st", "-x", "temp c", "tëmp", "", "+", "#", "x" * 65, "m\x00", "\uff4d"]
)
def test_invalid_metrics_raise_topic_error(metric: str) -> None:
    with pytest.raises(TopicError) as info:
        TopicTemplate("t/{device_id}/{metric}").match(f"t/d1/{metric}")
    assert info.value.reason == "bad_topic"
    assert "metric name" in info.value.detail


def test_metric_length_limit_is_configurable() -> None:
    template = TopicTemplate("t/{device_id}/{metric}", max_metric_len=3)
    assert template.match("t/d/abc") == TopicFields("d", None, "abc")
    with pytest.raises(TopicError, match="longer than 3"):
        template.match("t/d/abcd")


def test_topic_error_detail_does_not_echo_a_huge_level() -> None:
    with pytest.raises(TopicError) as info:
        TopicTemplate("t/{device_id}").match("t/" + "é" * 100_000)
    assert len(info.value.detail) < 200


def match_or_error(template: TopicTemplate, topic: str) -> TopicFields | TopicError | None:
    try:
        return template.match(topic)
    except TopicError as error:
        return error


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.text(max_size=12)
        | st.from_regex(r"[A-Za-z0-9_.:-]{1,12}", fullmatch=True)
        | st.sampled_from(["telemetry", "+", "#", "", "\x00"]),
        max_size=5,
    )
)
def test_any_topic_yields_valid_fields_none_or_topic_error(levels: list[str]) -> None:
    topic = "/".join(levels)
    for template in (
        TopicTemplate("telemetry/{site_id}/{device_id}"),
        TopicTemplate("{device_id}/{metric}"),
        TopicTemplate("{device_id}"),
    ):
        fields = match_or_error(template, topic)
        if isinstance(fields, TopicError):
            assert fields.reason == "bad_topic"
            continue
        if fields is None:
            continue
        assert re.fullmatch(r"[A-Za-z0-9_.:-]{1,128}", fields.device_id)
        assert fields.site_id is None or re.fullmatch(r"[A-Za-z0-9_.:-]{1,128}", fields.site_id)
        assert fields.metric is None or METRIC_NAME.fullmatch(fields.metric)
        assert fields.device_id in levels

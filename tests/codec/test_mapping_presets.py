"""Each preset of the mapping codec on payloads from its project's own
documentation, through the router on the firmware's own topics: every point's
device, metric, time and value.

The samples are quoted as the documentation prints them; the source of each
is named beside it. Receive times are set a minute after each sample's own
time, so that the samples' years-old times pass the age limit.
"""

from __future__ import annotations

from datetime import datetime

import pytest

from bridge.config import Route
from bridge.router import Router
from core.limits import Limits
from core.types import Point


def us(text: str) -> int:
    """An RFC 3339 time in µs."""
    return int(datetime.fromisoformat(text).timestamp()) * 1_000_000


def points(
    template: str, topic: str, payload: bytes, received_us: int, preset: str, **options: object
) -> list[Point]:
    router = Router(
        [Route(topic=template, codec="mapping", options={"preset": preset, **options})], Limits()
    )
    routed = router.route(topic, payload, received_us)
    assert routed.dead_letters == [], routed.dead_letters
    return routed.points


# --- Tasmota ---------------------------------------------------------------------

TASMOTA = "tele/{device_id}/SENSOR"

# tasmota/docs, docs/Bluetooth.md (BLE sensors through Tasmota, tele/%topic%/SENSOR)
TASMOTA_BLE = (
    b'{"Time":"2020-03-24T12:47:51","LYWSD03-52680f":{"Temperature":21.1,"Humidity":58.0,'
    b'"DewPoint":12.5,"Battery":100},"LYWSD02-a2fd09":{"Temperature":21.4,"Humidity":57.0,'
    b'"DewPoint":12.5,"Battery":2},"MJ_HT_V1-d8799d":{"Temperature":21.4,"Humidity":54.6,'
    b'"DewPoint":11.9},"TempUnit":"C"}'
)
# tasmota/docs, docs/Rules.md (tele/ds1820/SENSOR)
TASMOTA_DS18B20 = (
    b'{"Time":"2021-01-13T23:58:41","DS18B20":{"Id":"030597946B04","Temperature":20.9},'
    b'"TempUnit":"C"}'
)
# tasmota/docs, docs/devices/Sonoff-Pow-R2.md (tele/pow1/SENSOR)
TASMOTA_ENERGY = (
    b'{"Time":"2018-02-15T17:37:10","ENERGY":{"TotalStartTime":"2018-11-14T18:39:40",'
    b'"Total":6.294,"Yesterday":5.340,"Today":0.954,"Period":217,"Power":2635,'
    b'"ApparentPower":2650,"ReactivePower":282,"Factor":0.99,"Voltage":227,"Current":11.661}}'
)
# tasmota/docs, docs/DeepSleep.md (tele/demo-sensor/STATE)
TASMOTA_STATE = (
    b'{"Time":"2021-06-27T15:03:44+02:00","Uptime":"0T00:00:13","UptimeSec":13,"Heap":28,'
    b'"SleepMode":"Dynamic","Sleep":50,"LoadAvg":19,"MqttCount":1,"POWER":"ON",'
    b'"Wifi":{"AP":1,"SSId":"DEMOAP","BSSId":"XX:XX:XX:XX:XX:XX","Channel":1,"Mode":"11n",'
    b'"RSSI":86,"Signal":-57,"LinkCount":1,"Downtime":"0T00:00:07"}}'
)


def test_tasmota_sensor_with_nested_sensors() -> None:
    t = us("2020-03-24T12:47:51+00:00")  # no offset in "Time": the preset's zone, UTC
    got = points(TASMOTA, "tele/tasmota/SENSOR", TASMOTA_BLE, t + 60_000_000, "tasmota")
    expected = [
        ("LYWSD03-52680f.Temperature", 21.1), ("LYWSD03-52680f.Humidity", 58.0),
        ("LYWSD03-52680f.DewPoint", 12.5), ("LYWSD03-52680f.Battery", 100.0),
        ("LYWSD02-a2fd09.Temperature", 21.4), ("LYWSD02-a2fd09.Humidity", 57.0),
        ("LYWSD02-a2fd09.DewPoint", 12.5), ("LYWSD02-a2fd09.Battery", 2.0),
        ("MJ_HT_V1-d8799d.Temperature", 21.4), ("MJ_HT_V1-d8799d.Humidity", 54.6),
        ("MJ_HT_V1-d8799d.DewPoint", 11.9),
    ]  # fmt: skip
    assert got == [Point(t, "tasmota", m, v) for m, v in expected]  # TempUnit is text


def test_tasmota_local_time_in_the_configured_zone() -> None:
    t = us("2021-01-13T22:58:41+00:00")  # 23:58:41 in Berlin, UTC+1 in January
    got = points(
        TASMOTA, "tele/ds1820/SENSOR", TASMOTA_DS18B20, t + 60_000_000, "tasmota",
        time_zone="Europe/Berlin",
    )  # fmt: skip
    assert got == [Point(t, "ds1820", "DS18B20.Temperature", 20.9)]  # "Id" is a string


def test_tasmota_energy() -> None:
    t = us("2018-02-15T17:37:10+00:00")
    got = points(TASMOTA, "tele/pow1/SENSOR", TASMOTA_ENERGY, t + 60_000_000, "tasmota")
    expected = {
        "Total": 6.294, "Yesterday": 5.340, "Today": 0.954, "Period": 217.0, "Power": 2635.0,
        "ApparentPower": 2650.0, "ReactivePower": 282.0, "Factor": 0.99, "Voltage": 227.0,
        "Current": 11.661,
    }  # fmt: skip
    assert got == [Point(t, "pow1", f"ENERGY.{k}", v) for k, v in expected.items()]


def test_tasmota_state_with_offset_and_power() -> None:
    t = us("2021-06-27T13:03:44+00:00")
    got = points(
        "tele/{device_id}/STATE", "tele/demo-sensor/STATE", TASMOTA_STATE, t + 60_000_000, "tasmota"
    )
    expected = [
        ("UptimeSec", 13), ("Heap", 28), ("Sleep", 50), ("LoadAvg", 19), ("MqttCount", 1),
        ("POWER", 1), ("Wifi.AP", 1), ("Wifi.Channel", 1), ("Wifi.RSSI", 86),
        ("Wifi.Signal", -57), ("Wifi.LinkCount", 1),
    ]  # fmt: skip
    assert got == [Point(t, "demo-sensor", m, float(v)) for m, v in expected]


# --- Zigbee2MQTT -------------------------------------------------------------------

Z2M = "zigbee2mqtt/{device_id}"
NOW = us("2026-11-27T10:00:00+00:00")

# Koenkk/zigbee2mqtt.io, docs/guide/usage/mqtt_topics_and_messages.md,
# "zigbee2mqtt/FRIENDLY_NAME" examples
Z2M_WSDCGQ01LM = b'{\n  "temperature": 27.34,\n  "humidity": 44.72\n}'
Z2M_RTCGQ01LM = b'{\n  "occupancy": true\n}'
Z2M_LED1545G12 = b'{\n  "state": "ON",\n  "brightness": 215,\n  "color_temp": 325\n}'
Z2M_WXKG01LM = b'{\n  "action": "single"\n}'


def test_zigbee2mqtt_sensor_without_last_seen_takes_the_receive_time() -> None:
    got = points(Z2M, "zigbee2mqtt/0x00158d0001", Z2M_WSDCGQ01LM, NOW, "zigbee2mqtt")
    assert got == [
        Point(NOW, "0x00158d0001", "temperature", 27.34),
        Point(NOW, "0x00158d0001", "humidity", 44.72),
    ]


def test_zigbee2mqtt_booleans_and_on_off() -> None:
    assert points(Z2M, "zigbee2mqtt/hall_motion", Z2M_RTCGQ01LM, NOW, "zigbee2mqtt") == [
        Point(NOW, "hall_motion", "occupancy", 1.0)
    ]
    assert points(Z2M, "zigbee2mqtt/my_bulb", Z2M_LED1545G12, NOW, "zigbee2mqtt") == [
        Point(NOW, "my_bulb", "state", 1.0),
        Point(NOW, "my_bulb", "brightness", 215.0),
        Point(NOW, "my_bulb", "color_temp", 325.0),
    ]


def test_zigbee2mqtt_last_seen_is_the_time_and_not_a_metric() -> None:
    # The documented sensor message with last_seen as Zigbee2MQTT adds it
    # (advanced.last_seen: ISO_8601 or epoch).
    t = NOW - 5_000_000
    for last_seen in (b'"2026-11-27T09:59:55.000Z"', str(t // 1000).encode()):
        payload = Z2M_WSDCGQ01LM[:-2] + b',\n  "last_seen": ' + last_seen + b"\n}"
        got = points(Z2M, "zigbee2mqtt/0x00158d0001", payload, NOW, "zigbee2mqtt")
        assert [p.metric for p in got] == ["temperature", "humidity"]
        assert {p.time_us for p in got} == {t}


def test_zigbee2mqtt_action_only_message_is_a_dead_letter_not_a_crash() -> None:
    router = Router(
        [Route(topic=Z2M, codec="mapping", options={"preset": "zigbee2mqtt"})], Limits()
    )
    routed = router.route("zigbee2mqtt/switch", Z2M_WXKG01LM, NOW)
    assert routed.points == []
    assert [d.reason for d in routed.dead_letters] == ["no_points"]


# --- Shelly Gen2 ---------------------------------------------------------------------

SHELLY = "{device_id}/events/rpc"

# ALLTERCO Shelly API docs, gen2/General/Notifications, NotifyStatus example 1
SHELLY_STATUS_SWITCH = (
    b'{"src": "shellypro4pm-f008d1d8b8b8", "dst": "user_1", "method": "NotifyStatus", '
    b'"params": {"ts": 1631186545.04, "switch:0": {"id": 0, "output": true, "source": "button"}}}'
)
# same page, NotifyStatus example 2
SHELLY_STATUS_CLOUD = (
    b'{"src": "shellypro4pm-f008d1d8b8b8", "dst": "user_1", "method": "NotifyStatus", '
    b'"params": {"ts": 1624348482.25, "cloud": {"connected": false}}}'
)
# same page, NotifyEvent: params.ts and params.events, each event with
# component, id, event and ts, as the page defines them (its example could
# not be retrieved whole here; the device and times are those of example 1).
SHELLY_EVENT = (
    b'{"src": "shellypro4pm-f008d1d8b8b8", "dst": "user_1", "method": "NotifyEvent", '
    b'"params": {"ts": 1631266595.43, "events": [{"component": "input:0", "id": 0, '
    b'"event": "single_push", "ts": 1631266595.43}]}}'
)
SHELLY_ID = "shellypro4pm-f008d1d8b8b8"


def test_shelly_notify_status() -> None:
    t = 1631186545_040_000
    got = points(SHELLY, f"{SHELLY_ID}/events/rpc", SHELLY_STATUS_SWITCH, t + 1, "shelly_gen2")
    assert got == [Point(t, SHELLY_ID, "switch:0.output", 1.0)]  # id: excluded; source: text
    t = 1624348482_250_000
    got = points(SHELLY, f"{SHELLY_ID}/events/rpc", SHELLY_STATUS_CLOUD, t + 1, "shelly_gen2")
    assert got == [Point(t, SHELLY_ID, "cloud.connected", 0.0)]


def test_shelly_notify_event_is_a_point_per_event() -> None:
    t = 1631266595_430_000
    got = points(SHELLY, f"{SHELLY_ID}/events/rpc", SHELLY_EVENT, t + 1, "shelly_gen2")
    assert got == [Point(t, SHELLY_ID, "input:0.single_push", 1.0)]


# --- ESPHome ------------------------------------------------------------------------------

ESPHOME_LIGHT = "{device_id}/light/{metric}/state"

# esphome/esphome-docs, web-api/index.rst, "Light": the light's JSON state.
# ESPHome's MQTT light state topic carries the same document, written by the
# same LightJSONSchema::dump_json (esphome/esphome,
# esphome/components/mqtt/mqtt_light.cpp); the web server adds the "id".
ESPHOME_LIGHT_STATE = (
    b'{"id": "light-living_room_lights", "state": "ON", "brightness": 255, '
    b'"color": {"r": 255, "g": 255, "b": 255}, "effect": "None", "white_value": 255}'
)


def test_esphome_light_state_named_by_its_component() -> None:
    got = points(
        ESPHOME_LIGHT, "livingroom/light/living_room_lights/state", ESPHOME_LIGHT_STATE, NOW,
        "esphome",
    )  # fmt: skip
    m = "living_room_lights"
    assert got == [
        Point(NOW, "livingroom", f"{m}.{k}", v)
        for k, v in [
            ("state", 1.0), ("brightness", 255.0), ("color.r", 255.0), ("color.g", 255.0),
            ("color.b", 255.0), ("white_value", 255.0),
        ]
    ]  # fmt: skip


# --- OpenMQTTGateway -------------------------------------------------------------------

OMG = "home/{site_id}/BTtoMQTT/{device_id}"

# 1technophile/OpenMQTTGateway, docs/use/ble.md (beacon, Mi Flora / Mi jia, iBeacon)
OMG_BEACON = (
    b'{"id":"45:e1:74:12:6e:00","rssi":-89,"distance":21.51847,'
    b'"servicedata":"fe0000000000000000000000000000000000000000"}'
)
OMG_MIJIA = b'{"hum":"52.6","tempc":"19.2","tempf":"66.56"}'
OMG_IBEACON = (
    b'{"id":"60:87:57:4C:9B:C2","mac_type":1,"rssi":-78,"distance":7.85288,"brand":"GENERIC",'
    b'"model":"iBeacon","model_id":"IBEACON","mfid":"4c00",'
    b'"uuid":"1de4b189115e45f6b44e509352269977","major":0,"minor":0,"txpower":-66}'
)


def test_openmqttgateway_beacon() -> None:
    router = Router(
        [Route(topic=OMG, codec="mapping", options={"preset": "openmqttgateway"})], Limits()
    )
    routed = router.route("home/OpenMQTTGateway/BTtoMQTT/45E174126E00", OMG_BEACON, NOW)
    assert routed.dead_letters == []
    assert routed.site_id == "OpenMQTTGateway"
    assert routed.points == [
        Point(NOW, "45E174126E00", "rssi", -89.0),
        Point(NOW, "45E174126E00", "distance", 21.51847),
    ]


def test_openmqttgateway_numbers_sent_as_strings() -> None:
    got = points(
        OMG, "home/OpenMQTTGateway/BTtoMQTT/4C33A6603C79", OMG_MIJIA, NOW, "openmqttgateway"
    )
    assert got == [
        Point(NOW, "4C33A6603C79", "hum", 52.6),
        Point(NOW, "4C33A6603C79", "tempc", 19.2),
        Point(NOW, "4C33A6603C79", "tempf", 66.56),
    ]


def test_openmqttgateway_ibeacon_skips_identifiers() -> None:
    got = points(
        OMG, "home/OpenMQTTGateway/BTtoMQTT/6087574C9BC2", OMG_IBEACON, NOW, "openmqttgateway"
    )
    assert got == [
        Point(NOW, "6087574C9BC2", m, v)
        for m, v in [("rssi", -78.0), ("distance", 7.85288), ("major", 0.0), ("minor", 0.0),
                     ("txpower", -66.0)]
    ]  # fmt: skip


def test_openmqttgateway_device_from_the_payload_id() -> None:
    # A gateway speaking for its sensors: the device is the payload's id.
    router = Router(
        [
            Route(
                topic=OMG,
                codec="mapping",
                options={"preset": "openmqttgateway", "device_path": "id"},
            )
        ],
        Limits(),
    )
    routed = router.route("home/OpenMQTTGateway/BTtoMQTT/45E174126E00", OMG_BEACON, NOW)
    assert {p.device_id for p in routed.points} == {"45:e1:74:12:6e:00"}
    assert routed.device_id == "45:e1:74:12:6e:00"  # the registry gets the payload's device


# --- the flat object ---------------------------------------------------------------------

# The shape issue 20 of this project quotes as what an ESP32 commonly sends.
FLAT = b'{"temperature": 21.5, "humidity": 40, "ts": 1764237600}'


def test_flat_object_with_epoch_seconds() -> None:
    t = 1764237600 * 1_000_000
    got = points("sensors/{device_id}", "sensors/esp32-01", FLAT, t + 60_000_000, "flat")
    assert got == [
        Point(t, "esp32-01", "temperature", 21.5),
        Point(t, "esp32-01", "humidity", 40.0),
    ]


@pytest.mark.parametrize(
    ("ts", "expected"),
    [
        (b"1764237600123", 1764237600_123_000),  # ms
        (b'"2025-11-27T10:00:00Z"', us("2025-11-27T10:00:00+00:00")),
    ],
)
def test_flat_object_other_time_units(ts: bytes, expected: int) -> None:
    payload = FLAT.replace(b"1764237600", ts)
    got = points("sensors/{device_id}", "sensors/esp32-01", payload, expected + 1, "flat")
    assert {p.time_us for p in got} == {expected}

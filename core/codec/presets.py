"""Presets of the mapping codec: the options for what common firmware
publishes, so that a route is one line. The topic templates are the
firmware's own topics (README, "Payloads as devices send them").

    tasmota          tele/{device_id}/SENSOR and tele/{device_id}/STATE:
                     {"Time": "2021-01-13T23:58:41", "DS18B20": {"Temperature": 20.9}}
                     -> DS18B20.Temperature; "Time" is local time (set time_zone);
                     POWER "ON"/"OFF" -> 1/0; strings (Uptime, SSId...) are skipped
    zigbee2mqtt      zigbee2mqtt/{device_id}: {"temperature": 27.34, "humidity": 44.72}
                     -> temperature, humidity; "state": "ON" -> 1; last_seen, when
                     published, is the time; update.* (firmware versions) skipped
    shelly_gen2      {device_id}/events/rpc: NotifyStatus -> params' leaves
                     (switch:0.output, switch:0.apower...); NotifyEvent -> one
                     point per event, <component>.<event> = 1; params.ts is the time
    esphome          {device_id}/light/{metric}/state and the like (JSON state):
                     {"state": "ON", "brightness": 255, "color": {"r": 255}}
                     -> <metric>.state = 1, <metric>.brightness, <metric>.color.r
    openmqttgateway  home/{site_id}/BTtoMQTT/{device_id}: {"id": "..", "rssi": -89,
                     "tempc": "19.2"} -> rssi, tempc (numbers sent as strings too)
    flat             {"temperature": 21.5, "humidity": 40, "ts": 1764237600}
                     -> temperature, humidity at ts (epoch s/ms/µs/ns or RFC 3339,
                     receive time when absent)

Each is tested on samples from the project's own documentation
(tests/codec/test_mapping_presets.py).
"""

from __future__ import annotations

from typing import Any

PRESETS: dict[str, dict[str, Any]] = {
    "tasmota": {
        "time_path": "Time",
        "time_format": "rfc3339",
        "time_optional": True,
        "on_off": True,
        "exclude": ["Epoch"],
    },
    "zigbee2mqtt": {
        "time_path": "last_seen",
        "time_optional": True,
        "on_off": True,
        "exclude": ["update.*", "update_available"],
    },
    "shelly_gen2": {
        "root": "params",
        "leaves": True,  # NotifyStatus; NotifyEvent's events are items
        "time_path": "params.ts",
        "exclude": ["events*", "*.id"],
        "items": {
            "path": "params.events",
            "name": "join('.', [component, event])",
            "value": "`1`",
            "time": "ts",
            "optional": True,
        },
    },
    "esphome": {
        "on_off": True,
        "topic_metric_prefix": True,
    },
    "openmqttgateway": {
        "numeric_strings": True,
        "exclude": ["id", "mac", "mac_type", "uuid", "mfid", "servicedata*", "manufacturerdata"],
    },
    "flat": {
        "time_path": "ts",
        "time_optional": True,
    },
}

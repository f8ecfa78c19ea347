"""The rules every codec shares, written once: what a codec is given and
returns, how a payload is parsed, and what makes one point storable.

Whole-message failures raise ``CodecError``; a point that cannot be stored
raises ``Rejected`` from the point rules, which the codec catches, records as
a ``Reject`` and goes on with the next point. Checks run in a fixed order for
each point: metric name, value, time; the first failure names the reason.

    reason              whole message (CodecError)   one point (Reject)
    payload_too_large   x
    malformed_json      x
    bad_shape           x
    device_mismatch     x
    too_many_points     x
    no_points           x
    no_metric           x
    missing_path        x (device)                   x (metric, time)
    path_error          x (device)                   x
    bad_device          x
    too_deep                                         x
    too_many_leaves                                  x
    bad_metric_name                                  x
    bad_value                                        x
    non_finite_value                                 x
    text_too_long                                    x (a string value)
    bad_text                                         x (a string value)
    bad_timestamp                                    x
    time_in_future                                   x
    time_too_old                                     x

Each rule is in the module of its idea, and every name is re-exported here:
import them from ``core.rules``.

    contract  DecodeContext, Decoded, CodecError, Rejected, new_point, show, kind
    payload   check_size, parse_json (FAST_LOADS), check_point_count, check_device, finish
    names     ID, id_problem, METRIC_NAME, is_metric_name, metric_name, config_metric_name
    values    point_value, text_value
    times     TimeWindow, point_time_us, check_window, epoch_int_us, epoch_float_us, rfc3339_us

These types live here rather than in ``core.codec`` so that every codec
module can import them without an import cycle; ``core.codec`` re-exports
them and is where the rest of the bridge imports them from.
"""

from __future__ import annotations

from core.rules.contract import CodecError, DecodeContext, Decoded, Rejected, kind, new_point, show
from core.rules.names import (
    ID,
    METRIC_NAME,
    config_metric_name,
    id_problem,
    is_metric_name,
    metric_name,
    metric_name_problem,
)
from core.rules.payload import (
    FAST_LOADS,
    JsonLoads,
    check_device,
    check_point_count,
    check_size,
    finish,
    parse_json,
)
from core.rules.times import (
    TimeWindow,
    check_window,
    epoch_float_us,
    epoch_int_us,
    point_time_us,
    rfc3339_us,
)
from core.rules.values import point_value, text_value

__all__ = [
    "FAST_LOADS",
    "ID",
    "METRIC_NAME",
    "CodecError",
    "DecodeContext",
    "Decoded",
    "JsonLoads",
    "Rejected",
    "TimeWindow",
    "check_device",
    "check_point_count",
    "check_size",
    "check_window",
    "config_metric_name",
    "epoch_float_us",
    "epoch_int_us",
    "finish",
    "id_problem",
    "is_metric_name",
    "kind",
    "metric_name",
    "metric_name_problem",
    "new_point",
    "parse_json",
    "point_time_us",
    "point_value",
    "rfc3339_us",
    "show",
    "text_value",
]

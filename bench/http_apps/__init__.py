"""The read API's three endpoints on each candidate framework, for bench/bench_http.py.

One module per framework, each exposing `app` (ASGI); `common` holds the
in-memory data they all serve. The bench runs them as
`PYTHONPATH=bench uvicorn http_apps.<framework>_app:app` (or granian), so
importing one framework never loads the others.

The endpoints, identical in behaviour on every framework:

- `GET /api/v1/devices?site=&limit=50&cursor=` -> `{"items": [device...], "next": cursor|null}`;
  `limit` an int in 1..1000 (422 otherwise), `cursor` an opaque offset.
- `GET /api/v1/telemetry/{device_id}?metric=flow_rate&start=&end=` -> one series of
  2,000 points, built per request from a pre-made list; `start` and `end` are
  required RFC 3339 datetimes (422 otherwise); `metric` 1..64 characters.
- `POST /api/v1/telemetry` with a seed_json reading -> 202 `{"accepted": <metrics>}`;
  `device_id` (non-empty string), `timestamp` (RFC 3339) and `data` (metric ->
  number; strings and booleans refused) are required; anything else is 422.

Each app also serves its OpenAPI document (`OPENAPI_PATH` in each module).
"""

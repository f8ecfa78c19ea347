"""HTTP ingest's endpoint logic, apart from HTTP: a request body becomes
stored points and the answer that says how far they got.

A request is all or nothing (bridge.api.ingest parses it): a body that
cannot be read is a 400 (413 when too large); readings with any problem are
a 422 listing every one, and nothing is stored. Otherwise, with
api.ingest_via = broker, the points go to the broker first
(bridge.api.publish) and what it does not accept is committed by the API's
own writer; the answer's ``durable`` is ``committed`` when every point was
committed by the API, else ``broker`` (the weaker promise). A point the
database refuses for good is named in the answer (``refusal``). Rejected
points are counted by reason, accepted ones once, those the broker took too.
"""

from __future__ import annotations

import time

from bridge.api.answers import Json
from bridge.api.ingest import BadBody, IngestWriter, Unavailable, parse_body, refusal
from bridge.api.metrics import ApiMetrics
from bridge.api.problems import ApiProblem
from bridge.api.publish import BrokerIngest
from core.limits import Limits


class Submissions:
    """The submit endpoints (one reading or a batch) over the API's writer and,
    with ingest_via = broker, its broker connection."""

    def __init__(
        self,
        limits: Limits,
        timeout_s: float,
        metrics: ApiMetrics,
        ingest: IngestWriter,
        broker: BrokerIngest | None,
    ) -> None:
        self._limits = limits
        self._timeout_s = timeout_s  # how long a submit waits for its commit
        self._metrics = metrics
        self._ingest = ingest
        self._broker = broker

    async def submit(self, body: bytes, *, batch: bool) -> Json:
        try:
            parsed = parse_body(body, self._limits, batch, time.time_ns() // 1000)
        except BadBody as exc:
            self._metrics.points_rejected.labels(exc.reason).inc()
            title = "Payload Too Large" if exc.status == 413 else "Bad Request"
            raise ApiProblem(exc.status, title, exc.detail, extra={"reason": exc.reason}) from None
        if parsed.problems:
            for p in parsed.problems:
                self._metrics.points_rejected.labels(p.reason).inc()
            raise ApiProblem(
                422,
                "Invalid Readings",
                f"{len(parsed.problems)} problem(s); nothing was stored. Fix them and send again.",
                extra={
                    "errors": [
                        {
                            "reading": p.reading,
                            "metric": p.metric,
                            "reason": p.reason,
                            "detail": p.detail,
                        }
                        for p in parsed.problems
                    ]
                },
            )
        points = parsed.points
        if self._broker is not None:
            points = await self._broker.publish(points, parsed.sites)
            self._metrics.points_published.inc(len(parsed.points) - len(points))
        try:
            refused = await self._ingest.submit(points, parsed.sites, self._timeout_s)
        except Unavailable as exc:
            raise ApiProblem(503, "Not Stored", str(exc), headers={"Retry-After": "5"}) from None
        accepted = len(parsed.points) - len(refused)
        self._metrics.points_submitted.inc(accepted)
        # Any point resting on the broker's PUBACK makes the answer say so: the weaker promise.
        durable = "committed" if len(points) == len(parsed.points) else "broker"
        return {"accepted": accepted, "durable": durable} | refusal(refused)

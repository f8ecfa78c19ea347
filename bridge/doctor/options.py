"""What `bridge doctor` is told about the deployment beyond the config file."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Options:
    bridge_urls: list[str] = field(default_factory=list)  # health/metrics base URLs of workers
    api_urls: list[str] = field(default_factory=list)  # base URLs of API replicas
    bridge_workers: int = 1  # workers that each open database.pool_size connections
    api_replicas: int = 1  # API replicas that each open api.db_pool_size connections
    replica_url: str | None = None  # a read replica to check from its side
    memory_limit_mb: float | None = None  # when the processes' own cgroup limit is not readable
    slow_query_s: float = 5.0  # a statement running longer is reported
    slow_mean_ms: float = 100.0  # pg_stat_statements: mean time above which a statement is slow
    queue_warn: int = 100_000  # broker: queued messages above which to warn
    max_skew_s: float = 1.0  # clock skew above which to warn
    timeout_s: float = 5.0  # for each service the doctor contacts

"""The Redis cache: the latest value and a recent window per device and
metric, the API's read model of what was committed.

It is filled after a batch is committed to the database, so it is a cache of
what PostgreSQL holds: losing it loses nothing, and a failed write is counted
by the caller and skipped, never retried into the ingest path.

    keys      the key layout and the texts stored in it (the wire format)
    write.lua the script that applies a batch, atomically, in one round trip
    client    the connection both sides share; Redis failures -> RedisUnavailable
    writer    CacheWriter: what the bridge and HTTP ingest write
    feed      CacheFeed: the bounded background queue in front of the writer
    reader    CacheReader: what the API reads (latest, recent, complete_since)
"""

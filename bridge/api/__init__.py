"""The read API: recent data from Redis, history from PostgreSQL, HTTP ingest."""

"""Sinks: where committed batches go (TimescaleDB/PostgreSQL, Redis)."""

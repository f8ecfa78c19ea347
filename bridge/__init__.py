"""MQTT edge-to-cloud ingestion bridge: Mosquitto to TimescaleDB/PostgreSQL and Redis."""

__version__ = "0.1.0"

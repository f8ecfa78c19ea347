"""The edge agent: runs on a gateway, collects readings, spools them on disk and
forwards them to the cloud broker."""

__version__ = "0.1.0"

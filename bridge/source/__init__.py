"""Sources: where messages come from (MQTT)."""

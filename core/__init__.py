"""What the bridge and the edge agent share, with no server dependencies:
the point and dead-letter shapes, the rules for ids, metric names, values and
times, the limits, topic templates, every codec (decode and encode), the
settings loader and the tiny health server."""

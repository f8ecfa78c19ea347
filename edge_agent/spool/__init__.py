"""The on-disk spool between the collectors and the forwarder."""

from edge_agent.spool.sqlite import Spool, SpooledRow

__all__ = ["Spool", "SpooledRow"]

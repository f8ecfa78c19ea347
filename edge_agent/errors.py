"""Errors named for what the caller must do.

    EdgeError
    └── ConfigError     bad config file, variable or option: stop with exit
                        status 2 and a message saying what to fix

Everything else the agent meets at run time (an unreachable PLC, a broker
that is down, a PUBACK that says "not delivered") is not an error to the
caller: it is counted, logged, retried with backoff, and never stops the
other devices or the forwarding.
"""


class EdgeError(Exception):
    """Base of every error the edge agent raises on purpose."""


class ConfigError(EdgeError):
    """The configuration is invalid. Not retryable: the user must fix it."""

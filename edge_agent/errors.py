"""The edge agent's errors are the project's (core.errors).

    ConfigError     bad config file, variable or option: stop with exit
                    status 2 and a message saying what to fix
    DeviceError     (edge_agent.collect.modbus) a PLC gave no usable answer;
                    raised and caught inside the poller
    SessionLost     (edge_agent.collect.opcua) an OPC UA session ended; raised
                    and caught inside the collector, which opens a new one
    UntrustedServer (edge_agent.collect.opcua_security) an OPC UA server's
                    certificate is not the trusted one; the collector logs it
                    and retries with backoff (the operator fixes the trust)

Everything else the agent meets at run time (an unreachable PLC, a broker
that is down, a PUBACK that says "not delivered") is not an error to the
caller: it is counted, logged, retried with backoff, and never stops the
other devices or the forwarding.
"""

from core.errors import ConfigError

__all__ = ["ConfigError"]

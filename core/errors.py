"""The root of the project's one error tree, shared by the bridge and the
edge agent. Errors are named for what the caller must do; every message is
written for a person and says what went wrong and what to do.

Every class the project raises on purpose, and the module it lives in:

    BridgeError                   (core.errors) every error raised on purpose, either side
    ├── ConfigError               (core.errors) bad config file, variable or option:
    │   │                         stop; fix it
    │   └── SettingsProblem       (core.settings_file) the file or variables
    ├── CodecError                (core.rules) a whole message is unusable:
    │                             dead-letter it with its reason and ack it
    ├── Rejected                  (core.rules) one point is unusable: dead-letter
    │                             it, keep the message's other points
    ├── TopicError                (core.topics) a topic fits no template
    ├── DeviceError               (edge_agent.collect.modbus) a PLC gave no usable
    │                             answer: the poll failed; count, back off, retry
    ├── SessionLost               (edge_agent.collect.opcua) an OPC UA session ended:
    │                             count the gap, open a new one with backoff
    ├── UntrustedServer           (edge_agent.collect.opcua_security) an OPC UA server's
    │                             certificate is not the trusted one: refuse, say both
    ├── RedisUnavailable          (bridge.errors) the cache did not take a write or
    │                             answer a read: count it and go on
    ├── ApiError                  (bridge.api.problems) a request answered with a
    │                             problem document (its docstring draws the branch)
    ├── ProtocolViolation         (bridge.source.wire) the broker broke MQTT; also
    │                             a ConnectionError: drop the connection
    ├── CallbackFailed            (bridge.source.wire) handling a message raised (a
    │                             bug); also a ConnectionError: drop the connection,
    │                             the broker redelivers
    ├── MqttInternalsChanged      (bridge.source.internals) paho or aiomqtt is not the
    │                             version verified: install the pinned versions
    ├── BrokerError               (bridge.broker.errors) a broker tool failed
    └── DatabaseError             (bridge.errors) the bridge's database:
        ├── DatabaseUnavailable   (bridge.errors) transient; retry later
        │   └── TransientDbError  (bridge.errors) a batch was not written: retry it
        ├── DatabaseRejected      (bridge.errors) refused: fix the URL or grants
        └── MigrationError        (bridge.errors) the schema cannot be brought up

bridge.errors and edge_agent.errors say more about each side's own.
"""


class BridgeError(Exception):
    """Base of every error the project raises on purpose."""


class ConfigError(BridgeError):
    """The configuration is invalid. Not retryable: the user must fix it."""

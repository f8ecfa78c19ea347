"""The root of the project's one error tree, shared by the bridge and the
edge agent. Errors are named for what the caller must do; every message is
written for a person and says what went wrong and what to do.

    BridgeError                   every error raised on purpose, either side
    ├── ConfigError               bad config file, variable or option: stop; fix it
    │   └── SettingsProblem       (core.settings_file) the file or variables
    ├── CodecError                (core.rules) a whole message is unusable:
    │                             dead-letter it with its reason and ack it
    ├── Rejected                  (core.rules) one point is unusable: dead-letter
    │                             it, keep the message's other points
    ├── TopicError                (core.topics) a topic fits no template
    └── ...                       the bridge's own: bridge.errors
"""


class BridgeError(Exception):
    """Base of every error the project raises on purpose."""


class ConfigError(BridgeError):
    """The configuration is invalid. Not retryable: the user must fix it."""

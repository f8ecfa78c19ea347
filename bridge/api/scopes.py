"""The scopes an API key may have: 'read' for the GET routes, 'write' for HTTP
ingest. Apart from bridge.api.keys so that `bridge apikey`'s parser, built on
every `bridge` start, loads no web framework."""

SCOPES = ("read", "write")

"""The bridge as a Sparkplug B host application (README, "Sparkplug B").

    role.py    the Sparkplug role: one worker at a time (a PostgreSQL advisory
               lock) reads spBv1.0/ on a session of its own; the rest stand by
    host.py    births, aliases, seq, rebirth requests and deaths, per node
    state.py   what the host knows of each node and device
    store.py   births and device lifecycle kept in PostgreSQL (sql.py)

The stateless half (topics, protobuf, values by datatype) is core.sparkplug.
"""

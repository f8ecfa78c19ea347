"""Sparkplug B (specification 3.0): the stateless half.

    topic.py     spBv1.0/<group>/<type>/<edge_node>[/<device>] parsed, and the
                 device and site ids a node or device is stored under
    payload.py   protobuf bytes -> metrics, and one metric's values by datatype
    encode.py    payloads built (the bridge's rebirth command, the simulator)
    sparkplug_b.proto, sparkplug_b_pb2.py(i)
                 the specification's payload definition (EPL-2.0, see
                 LICENSE.sparkplug_b.md) and the classes generated from it

The state a Sparkplug host keeps (births, aliases, seq, deaths) is the
bridge's: bridge/sparkplug/.
"""

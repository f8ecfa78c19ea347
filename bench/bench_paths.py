"""Which path language the mapping codec uses, decided by measurement.

Evaluates the same selections on payloads that devices publish (Tasmota
SENSOR, a Shelly Gen2 NotifyStatus and NotifyEvent, a Zigbee2MQTT message),
already parsed, with each candidate: JMESPath (``jmespath``, compiled once),
and two maintained JSONPath packages (``jsonpath-ng``, ``python-jsonpath``),
each compiled once. Also times the compile step, and the codec's own reading
of plain field paths (core.codec.paths.JsonPath, which uses dict lookups for
those and jmespath for the rest). Every candidate must select the same value.
Best of several repetitions, candidates taking turns.

    .venv/bin/pip install -e '.[bench]'    # the JSONPath candidates
    .venv/bin/python bench/bench_paths.py

Prints a table (µs per selection); figures are kept in bench/README.md.
"""

from __future__ import annotations

import gc
import time
from collections.abc import Callable
from importlib import metadata

import jmespath
import jsonpath
import orjson
from jmespath.parser import Parser
from jsonpath_ng import parse as ng_parse

from core.codec.paths import JsonPath

TASMOTA = orjson.loads(
    b'{"Time":"2021-10-26T17:28:45","ENERGY":{"TotalStartTime":"2021-10-25T15:22:04",'
    b'"Total":9098.245,"Yesterday":6822.685,"Today":2275.560,"Period":9,"Power":170,'
    b'"Current":1.000,"Load":6},"ESP32":{"Temperature":36.1},"TempUnit":"C"}'
)
SHELLY_STATUS = orjson.loads(
    b'{"src":"shellypro4pm-f008d1d8b8b8","dst":"user_1","method":"NotifyStatus",'
    b'"params":{"ts":1631186545.04,"switch:0":{"id":0,"output":true,"source":"button"}}}'
)
SHELLY_EVENT = orjson.loads(
    b'{"src":"shellypro4pm-f008d1d8b8b8","dst":"user_1","method":"NotifyEvent",'
    b'"params":{"ts":1631266595.43,"events":[{"component":"input:0","id":0,'
    b'"event":"single_push","ts":1631266595.43}]}}'
)
Z2M = orjson.loads(b'{"temperature":27.34,"humidity":44.72,"linkquality":120}')

# (name, document, JMESPath, JSONPath, expected)
CASES: list[tuple[str, object, str, str, object]] = [
    ("top-level field", Z2M, "temperature", "$.temperature", 27.34),
    ("nested field", TASMOTA, "ENERGY.Power", "$.ENERGY.Power", 170),
    ("quoted key", SHELLY_STATUS, 'params."switch:0".output', "$.params['switch:0'].output", True),
    ("array index", SHELLY_EVENT, "params.events[0].ts", "$.params.events[0].ts", 1631266595.43),
    ("missing", Z2M, "pressure", "$.pressure", None),
]


def candidates(jmes: str, jpath: str) -> dict[str, Callable[[object], object]]:
    compiled_jmes = jmespath.compile(jmes)
    ours = JsonPath(jmes)
    ng = ng_parse(jpath)
    pj = jsonpath.compile(jpath)

    def ng_first(doc: object) -> object:
        found = ng.find(doc)
        return found[0].value if found else None

    def pj_first(doc: object) -> object:
        found = pj.match(doc)  # type: ignore[arg-type]
        return None if found is None else found.obj

    return {
        "codec JsonPath": ours.find,
        "jmespath": compiled_jmes.search,
        "python-jsonpath": pj_first,
        "jsonpath-ng": ng_first,
    }


def best_us(funcs: dict[str, Callable[[], object]], repeat: int = 15, number: int = 2000) -> dict:
    best = dict.fromkeys(funcs, float("inf"))
    gc.disable()
    try:
        for _ in range(repeat):
            for name, func in funcs.items():
                start = time.perf_counter()
                for _ in range(number):
                    func()
                best[name] = min(best[name], (time.perf_counter() - start) / number * 1e6)
    finally:
        gc.enable()
    return best


def main() -> None:
    versions = ", ".join(
        f"{name} {metadata.version(name)}"
        for name in ("jmespath", "python-jsonpath", "jsonpath-ng")
    )
    print(f"{versions}  (µs per selection on a parsed document, best of 15)\n")
    rows = []
    for name, doc, jmes, jpath, expected in CASES:
        funcs = candidates(jmes, jpath)
        for cand, func in funcs.items():
            got = func(doc)
            assert got == expected, (name, cand, got)
        rows.append((name, best_us({c: (lambda f=f, d=doc: f(d)) for c, f in funcs.items()})))
    names = list(rows[0][1])
    print(f"{'selection':<18}" + "".join(f"{n:>17}" for n in names))
    for name, best in rows:
        print(f"{name:<18}" + "".join(f"{best[n]:>17.2f}" for n in names))
    compile_us = best_us(
        {
            # jmespath caches what it parsed: empty the cache to time a real parse
            "codec JsonPath": lambda: (Parser.purge(), JsonPath('params."switch:0".output')),
            "jmespath": lambda: (Parser.purge(), jmespath.compile('params."switch:0".output')),
            "python-jsonpath": lambda: jsonpath.compile("$.params['switch:0'].output"),
            "jsonpath-ng": lambda: ng_parse("$.params['switch:0'].output"),
        },
        repeat=5,
        number=200,
    )
    print(f"{'compile (once)':<18}" + "".join(f"{compile_us[n]:>17.1f}" for n in names))


if __name__ == "__main__":
    main()

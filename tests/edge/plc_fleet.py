"""A fleet of simulated PLCs in one process: real pymodbus TCP servers, one
port each, on one event loop; some slow (a pymodbus server behind a proxy
that holds each answer back), one silent (accepts, never answers).

    python -m tests.edge.plc_fleet --live 195 --slow 2 --slow-delay 1.2 --silent 1 \\
        --ready READY.json --stats STATS.json

Writes the ports to READY.json once every server listens; on SIGTERM writes,
for every port, the read requests it received (their arrival times, on this
machine's wall clock) and answered, to STATS.json, and exits.

Each PLC holds holding registers 0-15 with the values 100 * (its index) + address.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import socket
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pymodbus.pdu import ModbusPDU
from pymodbus.server import ModbusTcpServer
from pymodbus.simulator import DataType, SimData, SimDevice

READ_HOLDING = 3
REGISTERS = 16


def free_ports(count: int) -> list[int]:
    socks = []
    for _ in range(count):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        socks.append(s)
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


class Counts:
    def __init__(self) -> None:
        self.arrivals: list[float] = []
        self.answered = 0

    def trace(self) -> Callable[[bool, ModbusPDU], ModbusPDU]:
        def hook(sending: bool, pdu: ModbusPDU) -> ModbusPDU:
            if pdu.function_code == READ_HOLDING:
                if sending:
                    self.answered += 1
                else:
                    self.arrivals.append(time.time())
            return pdu

        return hook


async def plc(index: int, port: int, counts: Counts) -> ModbusTcpServer:
    device = SimDevice(
        id=1,
        simdata=(
            [SimData(0, count=REGISTERS, values=False, datatype=DataType.BITS)],
            [SimData(0, count=REGISTERS, values=False, datatype=DataType.BITS)],
            [SimData(0, count=REGISTERS, values=0, datatype=DataType.REGISTERS)],
            [SimData(0, count=REGISTERS, values=0, datatype=DataType.REGISTERS)],
        ),
    )
    server = ModbusTcpServer(device, address=("127.0.0.1", port), trace_pdu=counts.trace())
    await server.serve_forever(background=True)
    await server.async_setValues(1, 16, 0, [100 * index + a for a in range(REGISTERS)])
    return server


async def slow_proxy(port: int, upstream: int, delay: float) -> asyncio.Server:
    """Forwards to ``upstream`` and holds every answer back for ``delay`` seconds."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", upstream)

        async def requests() -> None:
            while data := await reader.read(4096):
                up_writer.write(data)

        async def answers() -> None:
            while data := await up_reader.read(4096):
                await asyncio.sleep(delay)
                writer.write(data)

        try:
            await asyncio.gather(requests(), answers())
        except (OSError, asyncio.CancelledError):
            pass
        finally:
            writer.close()
            up_writer.close()

    return await asyncio.start_server(handle, "127.0.0.1", port)


async def silent(port: int) -> asyncio.Server:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while await reader.read(4096):
            pass  # never answers
        writer.close()

    return await asyncio.start_server(handle, "127.0.0.1", port)


async def main(args: argparse.Namespace) -> None:
    total = args.live + 2 * args.slow + args.silent
    ports = free_ports(total)
    counts: dict[int, Counts] = {}
    live = ports[: args.live]
    slow = ports[args.live : args.live + args.slow]
    slow_upstream = ports[args.live + args.slow : args.live + 2 * args.slow]
    quiet = ports[args.live + 2 * args.slow :]
    servers: list[Any] = []
    for i, port in enumerate(live + slow_upstream):
        counts[port] = Counts()
        servers.append(await plc(i, port, counts[port]))
    for port, upstream in zip(slow, slow_upstream, strict=True):
        counts[port] = counts.pop(upstream)  # counted at the PLC, reported by its public port
        servers.append(await slow_proxy(port, upstream, args.slow_delay))
    for port in quiet:
        servers.append(await silent(port))
    write(args.ready, {"live": live, "slow": slow, "silent": quiet})
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    await stop.wait()
    write(
        args.stats,
        {str(p): {"arrivals": c.arrivals, "answered": c.answered} for p, c in counts.items()},
    )


def write(path: str, data: object) -> None:
    Path(path).write_text(json.dumps(data))


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--live", type=int, required=True)
    parser.add_argument("--slow", type=int, default=0)
    parser.add_argument("--slow-delay", type=float, default=1.2)
    parser.add_argument("--silent", type=int, default=0)
    parser.add_argument("--ready", required=True)
    parser.add_argument("--stats", required=True)
    asyncio.run(main(parser.parse_args()))

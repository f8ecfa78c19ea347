"""A simulated PLC: a real pymodbus TCP server, in a thread with its own event
loop, whose registers the test sets step by step and which counts the polls
it answered."""

from __future__ import annotations

import asyncio
import socket
import struct
import threading
from collections.abc import Coroutine
from typing import Any

from pymodbus.pdu import ModbusPDU
from pymodbus.server import ModbusTcpServer
from pymodbus.simulator import DataType, SimData, SimDevice

from tests.integration.harness import free_port_block

UNIT = 1
READ_INPUT_REGISTERS = 4


def words(fmt: str, value: float, word_order: str = "big", byte_order: str = "big") -> list[int]:
    """``value`` packed big-endian with struct ``fmt``, as the PLC's registers in
    the given orders (written independently of the agent's decoder)."""
    data = struct.pack(">" + fmt, value)
    regs = [data[i : i + 2] for i in range(0, len(data), 2)]
    if byte_order == "little":
        regs = [r[::-1] for r in regs]
    if word_order == "little":
        regs.reverse()
    return [int.from_bytes(r, "big") for r in regs]


class Plc:
    """One unit with 100 coils, 100 holding and 100 input registers."""

    def __init__(self) -> None:
        self.port = free_port_block(1)
        self.input_reads_answered = 0  # read-input-registers responses sent
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._server: ModbusTcpServer | None = None

    def _trace(self, sending: bool, pdu: ModbusPDU) -> ModbusPDU:
        if sending and pdu.function_code == READ_INPUT_REGISTERS:
            self.input_reads_answered += 1
        return pdu

    def _call(self, coro: Coroutine[Any, Any, Any]) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(10)

    def start(self) -> Plc:
        self._thread.start()

        async def serve() -> ModbusTcpServer:
            device = SimDevice(
                id=UNIT,
                simdata=(
                    [SimData(0, count=100, values=False, datatype=DataType.BITS)],
                    [SimData(0, count=100, values=False, datatype=DataType.BITS)],
                    [SimData(0, count=100, values=0, datatype=DataType.REGISTERS)],
                    [SimData(0, count=100, values=0, datatype=DataType.REGISTERS)],
                ),
            )
            server = ModbusTcpServer(
                device, address=("127.0.0.1", self.port), trace_pdu=self._trace
            )
            await server.serve_forever(background=True)
            return server

        self._server = self._call(serve())
        return self

    def set(
        self, holding: dict[int, list[int]], inputs: dict[int, list[int]], coils: dict[int, bool]
    ) -> None:
        """Sets registers and coils (address -> words), all in one turn of the
        server's loop, so no poll sees half of a step."""
        server = self._server
        assert server is not None

        async def write() -> None:
            for address, values in holding.items():
                await server.async_setValues(UNIT, 16, address, values)
            for address, values in inputs.items():
                await server.context.async_setValues(UNIT, 4, address, values)
            for address, bit in coils.items():
                await server.async_setValues(UNIT, 15, address, [bit])

        self._call(write())

    def stop(self) -> None:
        if self._server is not None:
            self._call(self._server.shutdown())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)


class SilentPlc:
    """Accepts TCP connections and never answers: requests time out."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]

    def stop(self) -> None:
        self.sock.close()

"""A Modbus register map entry, and how raw registers become a value.

Registers are 16-bit words. A 32- or 64-bit value spans 2 or 4 of them, and
PLCs disagree on the order, in two independent ways:

- ``word_order``: ``big`` when the first register holds the most significant
  word (Modicon's "ABCD"), ``little`` when it holds the least ("CDAB");
- ``byte_order``: ``big`` when each register sends its high byte first (the
  Modbus standard), ``little`` when the bytes inside each register are
  swapped ("BADC", or with little words "DCBA").

So a float32 of 1234.5 (0x449A5000) reads as [0x449A, 0x5000] (big, big),
[0x5000, 0x449A] (word little), [0x9A44, 0x0050] (byte little) or
[0x0050, 0x9A44] (both little). The value stored is ``raw * scale + offset``;
coils and discrete inputs are booleans (1.0 or 0.0) and take no scale.
"""

from __future__ import annotations

import itertools
import struct
from collections.abc import Sequence
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from core.rules import config_metric_name

Function = Literal["holding", "input", "coil", "discrete"]
DataType = Literal["int16", "uint16", "int32", "uint32", "float32", "float64", "bool"]

WORDS = {"int16": 1, "uint16": 1, "int32": 2, "uint32": 2, "float32": 2, "float64": 4, "bool": 1}
_STRUCT = {
    "int16": ">h",
    "uint16": ">H",
    "int32": ">i",
    "uint32": ">I",
    "float32": ">f",
    "float64": ">d",
}
BIT_FUNCTIONS = ("coil", "discrete")


class RegisterSpec(BaseModel):
    """One metric of a device's register map."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    metric: str = Field(description="Metric name, as the bridge will store it.")
    address: int = Field(ge=0, le=65535, description="Register or coil address, 0-based.")
    function: Function = Field(
        "holding", description="holding or input registers, coil or discrete (input) bits."
    )
    type: DataType = Field(
        "uint16",
        description="int16, uint16, int32, uint32, float32, float64 (registers) or bool (bits).",
    )
    word_order: Literal["big", "little"] = Field(
        "big", description="big: first register is the most significant word."
    )
    byte_order: Literal["big", "little"] = Field(
        "big", description="big: each register's high byte first (the Modbus standard)."
    )
    scale: float = Field(1.0, description="Stored value = raw * scale + offset.")
    offset: float = Field(0.0, description="Stored value = raw * scale + offset.")

    @field_validator("metric")
    @classmethod
    def _metric(cls, value: str) -> str:
        return config_metric_name(value)

    @model_validator(mode="after")
    def _consistent(self) -> RegisterSpec:
        bits = self.function in BIT_FUNCTIONS
        if bits and self.type != "bool":
            raise ValueError(
                f"{self.metric}: a {self.function} is one bit; its type must be bool, "
                f"not {self.type}"
            )
        if not bits and self.type == "bool":
            raise ValueError(
                f"{self.metric}: bool is for coil or discrete; {self.function} registers "
                "hold numbers (int16, uint16, int32, uint32, float32, float64)"
            )
        if self.address + self.words > 65536:
            raise ValueError(
                f"{self.metric}: {self.type} at address {self.address} runs past register 65535"
            )
        if bits and (self.scale != 1.0 or self.offset != 0.0):
            raise ValueError(f"{self.metric}: a bool takes no scale or offset")
        return self

    @property
    def words(self) -> int:
        """Registers (or bits) this entry spans."""
        return WORDS[self.type]


def decode(spec: RegisterSpec, raw: Sequence[int] | Sequence[bool]) -> float:
    """The stored value of ``spec`` from its ``spec.words`` raw registers or bits."""
    if spec.type == "bool":
        return 1.0 if raw[0] else 0.0
    words = list(raw)
    if spec.word_order == "little":
        words.reverse()
    data = b"".join(int(w).to_bytes(2, "big") for w in words)
    if spec.byte_order == "little":
        data = bytes(b for i in range(0, len(data), 2) for b in (data[i + 1], data[i]))
    (value,) = struct.unpack(_STRUCT[spec.type], data)
    return float(value) * spec.scale + spec.offset


def check_map(device_id: str, registers: Sequence[RegisterSpec], max_gap: int) -> None:
    """Raises ValueError when two entries of one function overlap, or when
    ``max_gap`` is more than one request holds."""
    ordered = sorted(registers, key=lambda r: (r.function, r.address))
    for a, b in itertools.pairwise(ordered):
        if a.function == b.function and b.address < a.address + a.words:
            raise ValueError(
                f"device {device_id}: {b.metric} ({b.function} {b.address}) overlaps "
                f"{a.metric} ({a.function} {a.address}-{a.address + a.words - 1})"
            )
    limit = 125 if any(r.function not in BIT_FUNCTIONS for r in registers) else 2000
    if max_gap >= limit:
        raise ValueError(
            f"device {device_id}: max_gap {max_gap} is larger than one request holds "
            f"({limit} {'registers' if limit == 125 else 'bits'})"
        )

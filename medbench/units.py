"""Parse limits given with units: ``4ms``, ``250 µs``, ``0.5 J``, ``1.5M``."""

from __future__ import annotations

import re

from medbench.errors import BadValueError

__all__ = ["parse_latency_ms", "parse_energy_mj", "parse_count"]

_NUMBER_UNIT = re.compile(r"^\s*([0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?)\s*([^\s0-9.]*)\s*$")

_LATENCY_MS = {"": 1.0, "ms": 1.0, "us": 1e-3, "µs": 1e-3, "μs": 1e-3, "s": 1e3, "sec": 1e3,
               "ns": 1e-6}
_ENERGY_MJ = {"": 1.0, "mj": 1.0, "j": 1e3, "uj": 1e-3, "µj": 1e-3, "μj": 1e-3, "kj": 1e6}
_COUNT = {"": 1, "k": 10**3, "K": 10**3, "M": 10**6, "G": 10**9, "B": 10**9}


def _split(text: str, what: str) -> tuple[float, str]:
    if text.strip().startswith("-"):
        raise BadValueError(f"{what} must not be negative: {text!r}")
    m = _NUMBER_UNIT.match(text)
    if not m:
        raise BadValueError(f"cannot read {what} {text!r}; give a number with a unit, e.g. "
                            + {"latency": "4ms", "energy": "5mJ", "count": "1.5M"}[what])
    value = float(m.group(1))
    if value == float("inf"):  # 1e999: no number a table holds
        raise BadValueError(f"{what} {text!r} is too large to be a limit")
    return value, m.group(2)


def parse_latency_ms(text: str | float) -> float:
    """Latency in milliseconds from ``4ms``, ``4000us``, ``4000µs``, ``0.004s`` (bare number:
    ms)."""
    if isinstance(text, (int, float)):
        return _non_negative(float(text), "latency")
    value, unit = _split(text, "latency")
    try:
        return value * _LATENCY_MS[unit.lower()]
    except KeyError:
        raise BadValueError(f"unknown latency unit {unit!r} in {text!r}; use ms, us, µs or s"
                            ) from None


def parse_energy_mj(text: str | float) -> float:
    """Energy in millijoules from ``5mJ``, ``0.005J``, ``500uJ`` (bare number: mJ)."""
    if isinstance(text, (int, float)):
        return _non_negative(float(text), "energy")
    value, unit = _split(text, "energy")
    try:
        return value * _ENERGY_MJ[unit.lower()]
    except KeyError:
        raise BadValueError(f"unknown energy unit {unit!r} in {text!r}; use mJ, J or uJ") from None


def parse_count(text: str | int) -> int:
    """A count such as a parameter budget from ``1M``, ``500k``, ``1.5M``, ``2000``."""
    if isinstance(text, (int, float)):
        return int(_non_negative(float(text), "count"))
    value, unit = _split(text, "count")
    try:
        count = value * _COUNT[unit]
        if count > 2**63 - 1:
            raise BadValueError(f"count {text!r} is too large to be a limit")
        return int(round(count))
    except KeyError:
        raise BadValueError(f"unknown count suffix {unit!r} in {text!r}; use k, M or G") from None


def _non_negative(value: float, what: str) -> float:
    if value != value or value == float("inf"):  # NaN or infinite: not a limit
        raise BadValueError(f"{what} must be a finite number: {value}")
    if value < 0:
        raise BadValueError(f"{what} must not be negative: {value}")
    return value

"""Limits with units."""

from __future__ import annotations

import pytest

from medbench.errors import BadValueError
from medbench.units import parse_count, parse_energy_mj, parse_latency_ms


@pytest.mark.parametrize("text, ms", [("4ms", 4.0), ("4 ms", 4.0), ("4MS", 4.0), ("4", 4.0),
                                      ("250us", 0.25), ("250µs", 0.25), ("250μs", 0.25),
                                      ("0.1s", 100.0), ("1e3us", 1.0), (".5ms", 0.5),
                                      (3, 3.0)])
def test_latency(text, ms):
    assert parse_latency_ms(text) == pytest.approx(ms)


@pytest.mark.parametrize("text, mj", [("5mJ", 5.0), ("5 mj", 5.0), ("0.1J", 100.0),
                                      ("500uJ", 0.5), ("2", 2.0)])
def test_energy(text, mj):
    assert parse_energy_mj(text) == pytest.approx(mj)


@pytest.mark.parametrize("text, n", [("1M", 1_000_000), ("1.5M", 1_500_000), ("500k", 500_000),
                                     ("500K", 500_000), ("2000", 2000), ("1G", 10**9)])
def test_count(text, n):
    assert parse_count(text) == n


@pytest.mark.parametrize("parse, text", [
    (parse_latency_ms, "4 parsecs"), (parse_latency_ms, "-4ms"), (parse_latency_ms, "fast"),
    (parse_latency_ms, "4 ms ms"), (parse_latency_ms, ""), (parse_latency_ms, -1.0),
    (parse_energy_mj, "3 calories"), (parse_energy_mj, "-1J"),
    (parse_count, "1m"), (parse_count, "-5k"), (parse_count, "lots"),
])
def test_bad_values(parse, text):
    with pytest.raises(BadValueError) as e:
        parse(text)
    assert "\n" not in str(e.value)

"""Kubernetes quantity parsing."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from readiness_operator.quantity import format_quantity, is_quantity, parse_quantity


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("500m", Decimal("0.5")),
        ("0.5Gi", Decimal(512 * 1024**2)),
        ("1e3", Decimal(1000)),
        ("128974848", Decimal(128974848)),
        ("129M", Decimal(129_000_000)),
        ("123Mi", Decimal(123 * 1024**2)),
        ("1Ki", Decimal(1024)),
        ("2", Decimal(2)),
        (".5", Decimal("0.5")),
        ("1.5", Decimal("1.5")),
        ("100n", Decimal("0.0000001")),
        ("3k", Decimal(3000)),
        ("1E", Decimal(10) ** 18),
        ("1Ei", Decimal(1024) ** 6),
        ("12e-3", Decimal("0.012")),
        ("+1", Decimal(1)),
        (" 2Gi ", Decimal(2 * 1024**3)),
        (7, Decimal(7)),
    ],
)
def test_parse(text: str, expected: Decimal) -> None:
    assert parse_quantity(text) == expected


@pytest.mark.parametrize(
    "junk", ["", "abc", "1GB", "1.2.3", "Mi", "1 Gi", "1gi", "--1", "1e", "0x10", "1Mii", True]
)
def test_junk_is_rejected_with_example(junk: object) -> None:
    with pytest.raises(ValueError, match="invalid quantity"):
        parse_quantity(junk)  # type: ignore[arg-type]
    assert not is_quantity(junk)


@given(st.integers(min_value=0, max_value=10**12), st.sampled_from(["Ki", "Mi", "Gi", "Ti"]))
def test_binary_suffixes_scale_by_powers_of_1024(n: int, suffix: str) -> None:
    power = ["Ki", "Mi", "Gi", "Ti"].index(suffix) + 1
    assert parse_quantity(f"{n}{suffix}") == n * 1024**power


@given(st.integers(min_value=0, max_value=10**9))
def test_milli_is_a_thousandth(n: int) -> None:
    assert parse_quantity(f"{n}m") * 1000 == n
    assert parse_quantity(f"{n}m") == parse_quantity(f"{n}e-3")


@given(st.decimals(min_value=0, max_value=10**6, places=3, allow_nan=False, allow_infinity=False))
def test_plain_decimals_round_trip(value: Decimal) -> None:
    assert parse_quantity(str(value)) == value


@given(st.integers(min_value=1, max_value=4096))
def test_format_binary_round_trips(mebibytes: int) -> None:
    value = Decimal(mebibytes * 1024**2)
    assert parse_quantity(format_quantity(value, binary=True)) == value


@given(st.text(alphabet="xyzGHQ!@ ", min_size=1, max_size=8))
def test_letters_outside_the_grammar_are_rejected(text: str) -> None:
    assert not is_quantity(text)

"""Kubernetes quantity parsing, and its agreement with the official client's parser."""

from __future__ import annotations

import re
from decimal import Decimal

import kubernetes.utils
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


# --------------------------------------------------------------------------------------------------
# Agreement with the official client's parser (which the pure core must not import at run time).
# --------------------------------------------------------------------------------------------------

_EXPONENT = re.compile(r"[eE][+-]?[0-9]+$")
_digits = st.text(alphabet="0123456789", min_size=1, max_size=9)
_numbers = st.one_of(
    _digits,
    st.builds(lambda i, f: f"{i}.{f}", _digits, st.text(alphabet="0123456789", max_size=4)),
    st.builds(lambda f: f".{f}", _digits),
)
_suffixes = st.one_of(
    st.just(""),
    st.sampled_from(["Ki", "Mi", "Gi", "Ti", "Pi", "Ei", "n", "u", "m", "k", "M", "G", "T", "P", "E"]),
    st.builds(lambda e, n: f"{e}{n}", st.sampled_from(["e", "E", "e+", "e-", "E-"]), st.integers(0, 100)),
)
#: Quantities in the apimachinery grammar: [sign] number [one suffix: binary, decimal SI or exponent].
valid_quantities = st.builds(lambda s, n, x: s + n + x, st.sampled_from(["", "+", "-"]), _numbers, _suffixes)


def kube_parse(text: str) -> Decimal | None:
    """The official client's value, or None when it rejects ``text``."""
    try:
        return Decimal(kubernetes.utils.parse_quantity(text))
    except ValueError:
        return None


@given(valid_quantities)
def test_valid_quantities_agree_with_the_kubernetes_client(text: str) -> None:
    assert parse_quantity(text) == kube_parse(text)


@given(st.text(alphabet="0123456789.+-eEMGTPikmnu", min_size=1, max_size=7))
def test_we_accept_only_what_the_kubernetes_client_accepts(text: str) -> None:
    ours, theirs = (parse_quantity(text) if is_quantity(text) else None), kube_parse(text)
    if ours is not None:
        assert ours == theirs
    elif theirs is not None:
        # The client is more lenient than apimachinery in two ways we do not follow (see quantity.py):
        # an exponent followed by a suffix ("1e3k"), and exponents beyond +-100 ("1e400").
        parts = re.fullmatch(r"(.*?)((?:[KMGTPE]i|[numkMGTPE])?)", text)
        assert parts is not None
        number, suffix = parts.groups()
        exponent = _EXPONENT.search(number)
        assert exponent is not None and (suffix or abs(int(exponent.group()[1:])) > 100), text


@pytest.mark.parametrize(
    ("text", "kube"),
    [
        ("1K", Decimal(1000)),  # apimachinery knows only lowercase k for 10^3
        ("1e3k", Decimal(10**6)),  # one suffix at most
        ("5 k", Decimal(5000)),  # no blank inside a quantity
        ("1_000", Decimal(1000)),  # Python number syntax, not a quantity
        ("Infinity", Decimal("Infinity")),
        ("NaN", None),  # (the client returns NaN, which compares unequal to everything)
        ("1e101", Decimal("1e101")),  # our exponent limit (a bound on the Decimal we build)
    ],
)
def test_documented_differences_from_the_kubernetes_client(text: str, kube: Decimal | None) -> None:
    assert not is_quantity(text)
    theirs = kube_parse(text)
    if kube is None:
        assert theirs is not None and theirs.is_nan()
    else:
        assert theirs == kube


def test_surrounding_blanks_are_ignored_where_the_client_rejects_them() -> None:
    # A quoted YAML scalar may carry blanks around the quantity; we trim them, the client does not.
    assert parse_quantity(" 2Gi ") == 2 * 1024**3 and kube_parse(" 2Gi ") is None

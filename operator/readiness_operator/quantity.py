"""Kubernetes resource quantities (``500m``, ``1Gi``, ``1e3``) as exact Decimals.

Policies compare requests and limits against maxima; floats would make ``0.1 + 0.2`` style
mistakes visible to users, so every quantity becomes a :class:`~decimal.Decimal`.

Our own parser, not ``kubernetes.utils.parse_quantity``: the pure core does not import the
``kubernetes`` package (import-linter enforces it), and the client's parser is more lenient than
the API server's grammar. ``tests/unit/test_quantity.py`` proves both agree on every quantity of
that grammar; the intentional differences are that we reject ``1K`` (apimachinery knows only
``k``), an exponent followed by a suffix (``1e3k``), blanks inside (``5 k``), Python number syntax
(``1_000``, ``Infinity``, ``NaN``) and exponents beyond +-100 (so a policy cannot make us build an
enormous Decimal), and that we trim blanks around the text, which the client rejects.
"""

from __future__ import annotations

import functools
import re
from decimal import Decimal, InvalidOperation

__all__ = ["QUANTITY_PATTERN", "format_quantity", "is_quantity", "parse_quantity"]

_BINARY = {"Ki": 1, "Mi": 2, "Gi": 3, "Ti": 4, "Pi": 5, "Ei": 6}
_DECIMAL = {"n": -9, "u": -6, "m": -3, "": 0, "k": 3, "M": 6, "G": 9, "T": 12, "P": 15, "E": 18}

#: The grammar of resource.Quantity (k8s.io/apimachinery), also used as the CRD ``pattern``.
QUANTITY_PATTERN = (
    r"^[+-]?([0-9]+(\.[0-9]*)?|\.[0-9]+)"
    r"(([KMGTPE]i)|[numkMGTPE]|([eE][+-]?([0-9]+(\.[0-9]*)?|\.[0-9]+)))?$"
)
_RE = re.compile(
    r"^(?P<num>[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+))"
    r"(?:(?P<bin>[KMGTPE]i)|(?P<dec>[numkMGTPE])|[eE](?P<exp>[+-]?[0-9]+))?$"
)


def parse_quantity(value: str | int | float | Decimal) -> Decimal:
    """Return the quantity as a Decimal in base units (cores, bytes).

    Raises ValueError with the offending text and an example of valid input, so a policy author
    can fix the field without reading the Kubernetes source.
    """
    if isinstance(value, bool):
        raise ValueError(f"invalid quantity {value!r}: expected e.g. 500m, 1Gi, 0.5 or 1e3")
    if isinstance(value, Decimal | int):
        return Decimal(value)
    if isinstance(value, float):
        return Decimal(repr(value))
    if not isinstance(value, str):
        raise ValueError(f"invalid quantity {value!r}: expected e.g. 500m, 1Gi, 0.5 or 1e3")
    return _parse_text(value)


@functools.lru_cache(maxsize=4096)
def _parse_text(value: str) -> Decimal:
    """A quantity string's value, memoised: the same few strings (`250m`, `512Mi`) recur in every
    Deployment, and the webhook parses each request's (Decimal is immutable; errors are not cached)."""
    text = value.strip()
    match = _RE.match(text)
    if not match:
        raise ValueError(f"invalid quantity {value!r}: expected e.g. 500m, 1Gi, 0.5 or 1e3")
    try:
        number = Decimal(match["num"])
    except InvalidOperation as exc:  # pragma: no cover - the regex only admits valid decimals
        raise ValueError(f"invalid quantity {value!r}") from exc
    if match["bin"]:
        return number * (Decimal(1024) ** _BINARY[match["bin"]])
    if match["exp"] is not None:
        exponent = int(match["exp"])
        if abs(exponent) > 100:
            raise ValueError(f"invalid quantity {value!r}: exponent out of range")
        return number.scaleb(exponent)
    return number.scaleb(_DECIMAL[match["dec"] or ""])


def is_quantity(value: object) -> bool:
    """True when ``value`` parses as a quantity (for validators that only need a yes/no)."""
    try:
        parse_quantity(value)  # type: ignore[arg-type]
    except (ValueError, TypeError):
        return False
    return True


def format_quantity(value: Decimal, *, binary: bool = False) -> str:
    """Render a Decimal back into a short human form (``1Gi``, ``500m``) for messages."""
    if binary and value > 0 and value == value.to_integral_value():
        for suffix, power in sorted(_BINARY.items(), key=lambda kv: -kv[1]):
            unit = Decimal(1024) ** power
            if value % unit == 0:
                return f"{value // unit}{suffix}"
    if value != value.to_integral_value() and (value * 1000) == (value * 1000).to_integral_value():
        return f"{(value * 1000).to_integral_value()}m"
    return format(value.normalize(), "f")

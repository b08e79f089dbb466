"""FHIR JSON that reads back as it was written.

orjson is fast but reads ``1.50`` as the float 1.5, losing the precision FHIR gives decimals.
Bodies that hold such a number (a trailing zero, an exponent, more digits than a double keeps,
or an integer past 64 bits) are read by the standard library into :class:`FhirDecimal`, a float
that remembers its text and is written back unchanged.
"""

from __future__ import annotations

import json as _stdjson
import re
from typing import Any

import orjson

from fhirhub.errors import bad_request

# A number whose shortest float form would differ from its text.
_LOSSY_NUMBER = re.compile(rb"[-\d](?:\.\d*0(?![\d.])|[eE]|\.\d{15,}|\d{18,})")


class FhirDecimal(float):
    """A decimal read from JSON, written back with its original digits."""

    text: str

    def __new__(cls, text: str) -> FhirDecimal:
        value = super().__new__(cls, text)
        value.text = text
        return value


def _default(obj: Any) -> Any:
    if isinstance(obj, FhirDecimal):
        return orjson.Fragment(obj.text)
    if isinstance(obj, int):  # ints beyond 64 bits
        return orjson.Fragment(str(obj))
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


def _int_or_decimal(text: str) -> int | FhirDecimal:
    value = int(text)
    return value if -(2**63) <= value < 2**64 else FhirDecimal(text)


def loads(body: bytes | str) -> Any:
    """Parse JSON, keeping decimals exact. Raises a 400 FhirError on malformed input."""
    raw = body.encode() if isinstance(body, str) else body
    try:
        if _LOSSY_NUMBER.search(raw) is None:
            return orjson.loads(raw)
        return _stdjson.loads(
            raw, parse_float=FhirDecimal, parse_int=_int_or_decimal, parse_constant=_reject_constant
        )
    except (orjson.JSONDecodeError, ValueError, UnicodeDecodeError) as exc:
        raise bad_request(f"The body is not valid JSON: {exc}", code="structure") from None


def _reject_constant(name: str) -> None:
    raise ValueError(f"{name} is not allowed in JSON")


def dumps(obj: Any, *, pretty: bool = False, sort_keys: bool = False) -> bytes:
    option = orjson.OPT_PASSTHROUGH_SUBCLASS
    if pretty:
        option |= orjson.OPT_INDENT_2
    if sort_keys:
        option |= orjson.OPT_SORT_KEYS
    return orjson.dumps(obj, default=_default, option=option)


def dumps_str(obj: Any) -> str:
    return dumps(obj).decode()

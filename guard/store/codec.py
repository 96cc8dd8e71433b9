"""The JSON codec of the store's JSON columns: orjson where it reads and writes as json does."""

from __future__ import annotations

import json
from typing import Any

import orjson

# Datetimes and dataclasses, which json.dumps rejects, are left to it (orjson would write
# them its own way), so they still fail loudly instead of being stored in a new form.
_ORJSON_OPTIONS = orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_PASSTHROUGH_DATACLASS
# Every digit becomes "0", everything else a space: a number of 19 digits or more shows as a
# run of zeros. orjson reads integers beyond 64 bits as floats, json.loads exactly.
_DIGITS = bytes(48 if 48 <= i <= 57 else 32 for i in range(256))
_LONG_NUMBER = b"0" * 19


def dumps_json(value: Any) -> str:
    """Encode ``value`` for a JSON column: orjson, or json.dumps where orjson refuses."""
    try:
        # NaN and infinities become null: json.dumps wrote NaN and Infinity, which are not
        # JSON (PostgreSQL refused them; SQLite kept them, and json.loads still reads them).
        return orjson.dumps(value, option=_ORJSON_OPTIONS).decode()
    except orjson.JSONEncodeError:
        # Non-text keys, integers beyond 64 bits, lone surrogates, deep nesting, and types
        # json.dumps also rejects (it raises its own error for those).
        return json.dumps(value)


def loads_json(text: str | bytes) -> Any:
    """Decode a stored JSON value as json.loads would, with orjson where it reads the same."""
    data = text.encode() if type(text) is str else text
    if _LONG_NUMBER in data.translate(_DIGITS):
        return json.loads(text)
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError:
        # NaN, Infinity and escaped lone surrogates: json.dumps writes them, orjson refuses.
        return json.loads(text)

"""How deep a JSON text nests, without recursing.

Python's ``json`` recurses once per level, so a text of ``[[[[...`` that fits in
a few KiB raises ``RecursionError`` instead of a parse error, and a value nested
just under the interpreter's limit breaks whatever walks it later. No token
nests deeper than a few levels, so 32 is refused long before either happens.
"""

from __future__ import annotations

import json
import re
from itertools import accumulate

__all__ = ["MAX_JSON_DEPTH", "nesting_exceeds"]

MAX_JSON_DEPTH = 32

# A JSON string (escapes included): brackets inside one do not nest anything.
_STRING = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)
_NOT_BRACKET = re.compile(r"[^\[\]{}]+")
_STEP = {"[": 1, "{": 1, "]": -1, "}": -1}


def nesting_exceeds(text: str | bytes, limit: int = MAX_JSON_DEPTH) -> bool:
    """Whether the JSON ``text`` nests arrays and objects more than ``limit`` deep.

    Exact for valid JSON (call it once the text has parsed); bytes are read in
    the encoding ``json.loads`` would detect. A text with no more than ``limit``
    opening brackets is answered by counting them (the common case, in C).
    """
    if isinstance(text, bytes):
        if text.count(b"[") + text.count(b"{") <= limit:
            return False
        text = text.decode(json.detect_encoding(text), "surrogatepass")
    elif text.count("[") + text.count("{") <= limit:
        return False
    brackets = _NOT_BRACKET.sub("", _STRING.sub("", text))
    return max(accumulate(map(_STEP.__getitem__, brackets)), default=0) > limit

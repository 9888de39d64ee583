"""Step 1 of SPEC §3: size, compact form, canonical base64url, strict JSON objects."""

from __future__ import annotations

import base64

import pytest
from tessera_verifier import TokenRejected
from tessera_verifier.depth import nesting_exceeds
from tessera_verifier.jose import decode_segment, json_object, split_compact


def _segment(text: str) -> bytes:
    return base64.urlsafe_b64encode(text.encode()).rstrip(b"=")


@pytest.mark.parametrize(("segment", "expected"), [
    (b"YQ", b"a"), (b"YWI", b"ab"), (b"YWJj", b"abc"), (b"_-8", b"\xff\xef"),
])
def test_canonical_base64url_decodes(segment: bytes, expected: bytes) -> None:
    assert decode_segment(segment) == expected


@pytest.mark.parametrize("segment", [
    b"", b"YQ==", b"YQ=", b"YR", b"YWJ", b"Y", b"YW Jj", b"YW\nJj", b"YW+j", b"YW/j", b"YWJj=",
])
def test_anything_else_is_malformed(segment: bytes) -> None:
    """Padding, unused bits set, impossible lengths, whitespace, the standard alphabet."""
    with pytest.raises(TokenRejected, match="^malformed$"):
        decode_segment(segment)


@pytest.mark.parametrize("text", [
    '{"a":1,"a":2}', '{"a":{"b":1,"b":2}}', '{"a":NaN}', '{"a":Infinity}', "[1]", '"s"',
    '{"a":1}{"b":2}', "{'a':1}", '{"a":1,}', "\u00ff",
])
def test_json_must_be_one_strict_object(text: str) -> None:
    with pytest.raises(TokenRejected, match="^malformed$"):
        json_object(_segment(text))


def test_whitespace_around_the_object_is_json() -> None:
    """RFC 8259 allows it, as json.loads and joserfc do: only the base64url is canonical."""
    assert json_object(_segment(' {"a":1} ')) == {"a": 1}


def test_json_object_reads_nested_values() -> None:
    assert json_object(_segment('{"a":[1,{"b":null}],"c":"\\u00e9"}')) == {
        "a": [1, {"b": None}], "c": "\u00e9"}


def test_depth_limit_only_when_asked() -> None:
    deep = '{"a":' + "[" * 40 + "]" * 40 + "}"
    assert isinstance(json_object(_segment(deep))["a"], list)  # no limit asked: it parses
    with pytest.raises(TokenRejected, match="^malformed$"):
        json_object(_segment(deep), max_depth=32)
    assert nesting_exceeds(deep, 32) and not nesting_exceeds('{"a":"[[[[[[[[[[["}', 2)


def test_recursion_is_malformed_not_a_crash() -> None:
    with pytest.raises(TokenRejected, match="^malformed$"):
        json_object(_segment("[" * 100_000 + "]" * 100_000))


@pytest.mark.parametrize(("token", "reason"), [
    ("a.b", "malformed"), ("a.b.c.d", "malformed"), ("a" * 100, "malformed"),
    ("a." * 10 + "a", "malformed"), ("x" * 9000, "too_large"),
])
def test_split(token: str, reason: str) -> None:
    with pytest.raises(TokenRejected, match=f"^{reason}$"):
        split_compact(token, 8192)


def test_split_counts_bytes_and_keeps_non_ascii_malformed() -> None:
    assert split_compact("a.b.c", 5) == (b"a", b"b", b"c")
    head, _, _ = split_compact("\u00e9.b.c", 100)
    with pytest.raises(TokenRejected, match="^malformed$"):
        decode_segment(head)

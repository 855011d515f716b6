"""The JSON edge: every class of hostile body is a DomainError (a 4xx), never anything else."""

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from callcenter.domain.errors import DomainError, ValidationError
from callcenter.web.json_edge import MAX_DEPTH, MAX_INT_DIGITS, MalformedJson, decode_object

plain_text = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"))
json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(10**17), 10**17) | plain_text,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(plain_text, inner, max_size=4),
    max_leaves=12,
)
objects = st.dictionaries(plain_text, json_values, max_size=6)


@given(objects)
def test_ordinary_objects_come_back_unchanged(body):
    assert decode_object(json.dumps(body).encode()) == body


@given(st.binary(max_size=200))
def test_any_bytes_are_a_dict_or_a_domain_error(raw):
    try:
        assert isinstance(decode_object(raw), dict)
    except DomainError:
        pass


@settings(max_examples=200)
@given(objects, st.sampled_from(["\x00", "\ud800", "\udfff", "a\udc00b"]), st.data())
def test_bad_text_anywhere_names_its_field(body, bad, data):
    key = data.draw(plain_text.filter(lambda k: k not in body and "." not in k))
    where = data.draw(st.sampled_from(["value", "nested", "list"]))
    if where == "value":
        body[key], field = bad, key
    elif where == "nested":
        body[key], field = {"name": bad}, f"{key}.name"
    else:
        body[key], field = ["ok", bad], f"{key}[1]"
    raw = json.dumps(body).encode()  # ensure_ascii: surrogates travel as \\ud800 escapes
    with pytest.raises(ValidationError) as caught:
        decode_object(raw)
    assert caught.value.code == "invalid_text"
    assert caught.value.details["fields"] == {field: caught.value.details["fields"][field]}


def test_a_bad_field_name_is_refused():
    with pytest.raises(ValidationError):
        decode_object(b'{"a\\u0000b": 1}')


@pytest.mark.parametrize("depth", [MAX_DEPTH + 2, 5_000, 200_000])
def test_deep_nesting_is_refused(depth):
    raw = ('{"a":' + "[" * depth + "]" * depth + "}").encode()
    with pytest.raises(MalformedJson, match="nests deeper"):
        decode_object(raw)


def test_nesting_within_the_limit_is_taken():
    depth = MAX_DEPTH - 1
    assert decode_object(('{"a":' + "[" * depth + "]" * depth + "}").encode())


@pytest.mark.parametrize(
    "number", ["1" * (MAX_INT_DIGITS + 1), "-" + "9" * 5000, "1e400", "-1e999", "NaN", "Infinity"]
)
def test_numbers_out_of_range_are_refused(number):
    with pytest.raises(MalformedJson):
        decode_object(f'{{"n": {number}}}'.encode())


@pytest.mark.parametrize("raw", [b"[]", b'"text"', b"12", b"null", b"\xff\xfe{}", b""])
def test_only_an_object_is_a_body(raw):
    with pytest.raises(MalformedJson):
        decode_object(raw)

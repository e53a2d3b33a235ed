"""archivestore.jsontext: encoders built once must write exactly what json.dumps writes."""
from __future__ import annotations

import json

from hypothesis import given, settings
from hypothesis import strategies as st

from archivestore import catalog, jsontext, snapshots

_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=12)

_KWARGS = ({}, {"ensure_ascii": False}, {"ensure_ascii": False, "separators": (",", ":")},
           {"ensure_ascii": True, "separators": (",", ":")}, {"sort_keys": True})


@settings(max_examples=300, deadline=None)
@given(_values)
def test_dumps_writes_what_json_dumps_writes(obj):
    """Surrogates, NaN, nesting, and a bare string or number at the top."""
    for kw in _KWARGS:
        assert jsontext.dumps(**kw)(obj) == json.dumps(obj, **kw)


@settings(max_examples=100, deadline=None)
@given(st.dictionaries(st.text(), _values, max_size=6))
def test_records_and_tree_lines(rec):
    assert catalog.encode_record(rec) == json.dumps(
        rec, ensure_ascii=False, separators=(",", ":")).encode("utf-8", "surrogateescape")
    tree = snapshots.TreeBuilder()
    tree.add(rec)
    assert tree.flush_part() == json.dumps(rec, separators=(",", ":")).encode() + b"\n"


def test_indent_falls_back_to_the_plain_encoder():
    assert jsontext.dumps(indent=2)({"a": [1]}) == json.dumps({"a": [1]}, indent=2)

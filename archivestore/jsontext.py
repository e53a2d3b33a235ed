"""JSON text of records written per file (tree lines, catalog records, find columns).

`json.dumps` builds a new encoder, and `JSONEncoder.encode` a new C encoder, on every call: a
few microseconds a record, which a folder of 20,000 fades pays several times per file.
"""
from __future__ import annotations

import json
from json.encoder import encode_basestring, encode_basestring_ascii
from typing import Callable

try:
    from json.encoder import c_make_encoder
except ImportError:  # a Python without the _json accelerator
    c_make_encoder = None


def one_shot(encoder: json.JSONEncoder) -> Callable[[object], str]:
    """`encoder.encode` with the C encoder built once: the same text, without the check for
    circular references (records are trees; a cycle would recurse to RecursionError)."""
    if c_make_encoder is None or encoder.indent is not None:
        return encoder.encode
    c = c_make_encoder(None, encoder.default,
                       encode_basestring_ascii if encoder.ensure_ascii else encode_basestring,
                       None, encoder.key_separator, encoder.item_separator, encoder.sort_keys,
                       encoder.skipkeys, encoder.allow_nan)
    join = "".join
    return lambda obj: join(c(obj, 0))


def dumps(**kw) -> Callable[[object], str]:
    """`json.dumps(obj, **kw)` as a function of obj, its encoder built once."""
    return one_shot(json.JSONEncoder(**kw))

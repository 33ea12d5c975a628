"""Poison input for test 5: documents drawn from schemas/json by hypothesis-jsonschema, mutated
combinatorially, and hand-picked nasties.

hypothesis-jsonschema draws about 10 documents a second here (a regex-constrained id, date-times), far
too slow for 100,000 payloads, so it draws a seed corpus and a seeded mutator multiplies it: 1-3
structural edits (drop, retype or replace a field with an edge value, add unknown fields) and, for about a
third, a byte-level edit (truncate, stray byte, NaN/Infinity/overflow literal, duplicate key, wrapping).
Whether a payload is valid is decided by `streamer.core.validation.parse_application` (the test checks the
pipeline delivers each one to exactly one place, not the validation rules); the hand-picked ones carry the
reason the README promises, and that is asserted too. Records are sent with headers of their own
(`original_headers`), which a dead letter must carry unchanged.
"""

from __future__ import annotations

import copy
import json
import random
import re
from typing import Any

from hypothesis import HealthCheck, Phase, given, settings
from hypothesis_jsonschema import from_schema

from streamer.core.validation import Rejection, parse_application
from streamer.local.synthetic import ApplicationFactory
from tests.conftest import REPO
from tests.faults.harness import Headers, Payload

SCHEMA = REPO / "schemas" / "json" / "loan-application.v1.json"
MAX_EVENT_BYTES = 65_536  # the worker's default STREAMER_MAX_EVENT_BYTES
EDGE_VALUES: list[Any] = [
    None, "", "NaN", "1200", "12", -1, 0, -0.0, 1e308, 10**30, True, False, [], {}, "x" * 5000, "\u0000",
    "é😀", {"nested": [1, {"deeper": None}]}, 1.5, "2026-13-45T99:99:99Z", "app id with spaces", "a@b.example",
]
NUMBER = re.compile(rb"(?<=:)-?\d+(\.\d+)?([eE][+-]?\d+)?")


def schema_documents(count: int) -> list[dict[str, Any]]:
    """`count` documents valid under the committed JSON Schema, drawn deterministically by hypothesis."""
    drawn: list[dict[str, Any]] = []

    @settings(max_examples=count, database=None, phases=[Phase.generate], deadline=None, derandomize=True,
              suppress_health_check=list(HealthCheck))
    @given(from_schema(json.loads(SCHEMA.read_text())))
    def draw(document: dict[str, Any]) -> None:
        drawn.append(document)

    draw()
    return drawn


def mutated(seeds: list[dict[str, Any]], count: int, tag: str, seed: int = 5) -> list[Payload]:
    """`count` payloads from the seeds; valid ones get unique application ids, so outcomes can be traced."""
    rng = random.Random(seed)
    out: list[Payload] = []
    valid_ids: set[str] = set()
    n = 0
    while len(out) < count:
        n += 1
        doc = copy.deepcopy(rng.choice(seeds))
        doc["application_id"] = f"fz-{tag}-{n}"
        edits = [rng.choice(_STRUCTURAL)(doc, rng) for _ in range(rng.randint(0, 3))]
        value = json.dumps(doc, allow_nan=True).encode()
        if rng.random() < 0.35:
            edit = rng.choice(_BYTES)
            value = edit(value, rng)
            edits.append(edit.__name__)
        payload = classified(f"fz-{n}".encode(), value, label="+".join(map(str, edits)) or "schema-valid")
        if payload.application_id is not None:
            if payload.application_id in valid_ids:
                continue
            valid_ids.add(payload.application_id)
        out.append(payload)
    return out


def original_headers(n: int) -> Headers:
    """The headers sent with the n-th record, as an upstream service might: none at all on every fourth;
    otherwise a trace id of its own (so that a dead letter carrying another record's headers is caught), a
    key that repeats (both values, in order), bytes that are not UTF-8, an empty value and a null one."""
    if n % 4 == 0:
        return []
    return [
        ("traceparent", f"00-{n:032x}-{n:016x}-01".encode()),
        ("source", b"loan-portal"),
        ("source", b"broker-api"),
        ("signature", bytes([0x00, 0xFF, 0xFE, n % 256])),
        ("empty", b""),
        ("no-value", None),
    ]


def classified(key: bytes | None, value: bytes | None, label: str) -> Payload:
    parsed = parse_application(value, MAX_EVENT_BYTES)
    if isinstance(parsed, Rejection):
        return Payload(key, value, parsed.reason, None, label)
    return Payload(key, value, None, parsed.application_id, label)


def hand_picked(tag: str) -> list[tuple[Payload, str | None]]:
    """(payload, the outcome the README promises: a DLQ reason, or None for a decision)."""
    factory = ApplicationFactory(seed=55, run_id=f"hp{tag}")

    def doc() -> dict[str, Any]:
        return factory.valid()

    def enc(d: dict[str, Any]) -> bytes:
        return json.dumps(d, allow_nan=True).encode()

    def with_loan(**loan: Any) -> bytes:
        d = doc()
        d["loan"].update(loan)
        return enc(d)

    amount_twice = enc(doc())
    dup_bad_last = amount_twice.replace(b'"currency"', b'"amount": -5, "currency"', 1)
    dup_good_last = enc(doc()).replace(b'{"amount"', b'{"amount": -5, "amount"', 1)
    deep = b'{"deep": ' + b"[" * 10_000 + b"]" * 10_000 + b", " + enc(doc())[1:]
    cases: list[tuple[str, bytes | None, bytes | None, str | None]] = [
        ("truncated json", b"k", enc(doc())[:57], "invalid_json"),
        ("invalid utf-8", b"k", enc(doc()).replace(b'"EUR"', b'"\xff\xfeUR"'), "invalid_json"),
        ("10 MB value", b"k", b'{"padding": "' + b"a" * 10_000_000 + b'"}', "too_large"),
        ("just over the event limit", b"k", enc({**doc(), "pad": "a" * MAX_EVENT_BYTES}), "too_large"),
        ("10,000-deep nesting", b"k", deep, "invalid_json"),
        ("NaN literal", b"k", with_loan(amount=float("nan")), "schema_violation"),
        ("Infinity literal", b"k", with_loan(amount=float("inf")), "schema_violation"),
        ("-Infinity literal", b"k", with_loan(amount=float("-inf")), "schema_violation"),
        ("overflowing number", b"k", enc(doc()).replace(b'"amount": ', b'"amount": 1e999, "x": ', 1),
         "schema_violation"),
        ("amount as a string", b"k", with_loan(amount="1200.50"), "schema_violation"),
        ("term as a string", b"k", with_loan(term_months="12"), "schema_violation"),
        ("duplicate key, invalid last", b"k", dup_bad_last, "schema_violation"),
        ("duplicate key, valid last", b"k", dup_good_last, None),
        ("null key, valid value", None, enc(doc()), None),
        ("null key, invalid value", None, b"{", "invalid_json"),
        ("empty value", b"k", b"", "empty_value"),
        ("null value (tombstone)", b"k", None, "empty_value"),
        ("schema version 2", b"k", enc({**doc(), "schema_version": 2}), "unsupported_schema_version"),
        ("schema version as a string", b"k", enc({**doc(), "schema_version": "1"}), "unsupported_schema_version"),
        ("no schema version", b"k", enc({k: v for k, v in doc().items() if k != "schema_version"}),
         "schema_violation"),
        ("a JSON array", b"k", b"[" + enc(doc()) + b"]", "schema_violation"),
        ("JSON null", b"k", b"null", "schema_violation"),
        ("a bare number", b"k", b"42", "schema_violation"),
        ("a UTF-8 BOM first", b"k", b"\xef\xbb\xbf" + enc(doc()), "invalid_json"),
        ("unknown extra fields", b"k", enc({**doc(), "nickname": "x", "loan_officer": {"id": 1}}), None),
        ("binary garbage", b"\x00\xff", bytes(range(256)) * 4, "invalid_json"),
    ]
    return [(classified(key, value, label), want) for label, key, value, want in cases]


# Structural edits on a document; each returns its name for the payload's label.
def _paths(node: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    if isinstance(node, dict):
        return [prefix] + [p for k, v in node.items() for p in _paths(v, (*prefix, k))]
    return [prefix]


def _parent(doc: dict[str, Any], rng: random.Random) -> tuple[Any, Any] | None:
    paths = [p for p in _paths(doc) if p]
    if not paths:
        return None
    path = rng.choice(paths)
    node = doc
    for step in path[:-1]:
        node = node[step]
    return node, path[-1]


def drop_field(doc: dict[str, Any], rng: random.Random) -> str:
    found = _parent(doc, rng)
    if found:
        node, key = found
        del node[key]
    return "drop"


def edge_value(doc: dict[str, Any], rng: random.Random) -> str:
    found = _parent(doc, rng)
    if found:
        node, key = found
        node[key] = copy.deepcopy(rng.choice(EDGE_VALUES))
    return "edge"


def retype(doc: dict[str, Any], rng: random.Random) -> str:
    found = _parent(doc, rng)
    if found:
        node, key = found
        value = node[key]
        node[key] = str(value) if not isinstance(value, str) else (len(value) if rng.random() < 0.5 else [value])
    return "retype"


def unknown_fields(doc: dict[str, Any], rng: random.Random) -> str:
    target = rng.choice([doc, doc.get("loan", doc), doc.get("applicant", doc)])
    if isinstance(target, dict):
        target[f"extra_{rng.randint(0, 99)}"] = copy.deepcopy(rng.choice(EDGE_VALUES))
    return "unknown"


_STRUCTURAL = [drop_field, edge_value, retype, unknown_fields]


# Byte-level edits on the encoded document.
def truncate(value: bytes, rng: random.Random) -> bytes:
    return value[: rng.randrange(len(value))]


def stray_byte(value: bytes, rng: random.Random) -> bytes:
    at = rng.randrange(len(value))
    return value[:at] + bytes([rng.randrange(256)]) + value[at + 1:]


def special_number(value: bytes, rng: random.Random) -> bytes:
    numbers = list(NUMBER.finditer(value.replace(b": ", b":")))
    squeezed = value.replace(b": ", b":")
    if not numbers:
        return value
    m = rng.choice(numbers)
    literal = rng.choice([b"NaN", b"Infinity", b"-Infinity", b"1e999", b"-1e999", b"1" * 400])
    return squeezed[: m.start()] + literal + squeezed[m.end():]


def duplicate_key(value: bytes, rng: random.Random) -> bytes:
    if not value.endswith(b"}"):
        return value
    extra = rng.choice([b'"schema_version": 1', b'"loan": null', b'"application_id": "dup-id"', b'"applicant": {}'])
    return value[:-1] + b", " + extra + b"}"


def wrap(value: bytes, rng: random.Random) -> bytes:
    return rng.choice([b"[" + value + b"]", b'{"application": ' + value + b"}", b" \n\t" + value + b"\n "])


_BYTES = [truncate, stray_byte, special_number, duplicate_key, wrap]

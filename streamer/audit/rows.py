"""Decision v1 JSON -> an audit row in PostgreSQL's binary COPY format, checked in Python. Pure: no psycopg.

The checks are those of the audit table's CHECK constraints and casts, done before Postgres sees the row:
a record that is not a Decision v1 is refused with a reason, without failing its batch. The constraints stay
in the table as the last guard. A reason names the field, never its value (it becomes a dead letter's
dlq.error). The row is encoded here, not by psycopg's per-value adapters: the fields that repeat across a
batch (its model, policy, decision time, topic) are encoded once.
"""

from __future__ import annotations

import re
import struct
from datetime import UTC, datetime
from typing import Any, NamedTuple

import orjson

from schemas.decision import MAX_REASON_CODES, SCHEMA_VERSION_DECISION, Outcome
from streamer.core.records import PROTECTED, RECORD, KeyRing, Sealer, Unreadable, split

# decision_audit's columns in COPY order (recorded_at is the server's); the ledger's are the first and the tenth.
# The last five are the decision's record (migration 009), all NULL when the decision came without one.
COLUMNS = ("decision_id", "application_id", "outcome", "probability_of_default", "model_name", "model_version",
           "model_sha256", "policy_version", "reason_codes", "decided_at", "latency_ms", "source_topic",
           "source_partition", "source_offset", "application_schema_version", "application", "features",
           "protected_attributes", "record_key_id")
SIGNATURE = b"PGCOPY\n\xff\r\n\x00" + bytes(8)  # binary COPY header: no flags, no extension
TRAILER = b"\xff\xff"

_SHA256 = re.compile(r"[0-9a-f]{64}")
_PG_EPOCH = datetime(2000, 1, 1, tzinfo=UTC)
_INFINITY = float("inf")
_LENGTH = struct.Struct(">i")
_ROW_HEAD = struct.Struct(">hi16si")  # field count, then decision_id (16 bytes), then application_id's length
_FLOAT8 = struct.Struct(">id")
_SOURCE = struct.Struct(">iiiq")  # source_partition and source_offset, each with its length
_LEDGER_HEAD = struct.Struct(">hi16s")
_KNOWN = frozenset((*COLUMNS[:4], "model", "policy_version", "reason_codes", "decided_at", "latency_ms",
                    "schema_version"))


def _text(value: str) -> bytes:
    data = value.encode()
    return _LENGTH.pack(len(data)) + data


_OUTCOMES = {o.value: _text(o.value) for o in Outcome}
_NO_REASONS = _LENGTH.pack(3) + b"\x01[]"  # jsonb's binary format: a version byte, then the JSON text
_NO_RECORD = _LENGTH.pack(-1) * 5  # five NULLs
_SMALLINT = struct.Struct(">ih")
_SEALS_PER_KEY = 10_000  # a new derived key (and salt) after this many rows: see streamer/core/records.py


class EncodedRow(NamedTuple):
    decision_id: bytes  # 16 bytes, the uuid
    offset: int  # the record's, in its partition
    ledger: bytes  # decision_audit_ids (decision_id, decided_at), binary COPY
    row: bytes  # decision_audit's COLUMNS, binary COPY


class NotADecision(ValueError):
    """The record is not a Decision v1; the message names the field only."""


class RowEncoder:
    """Encodes decisions into rows; remembers the few parts that repeat across batches.

    With `record_keys`, a decision's record (its `streamer-record` header) is opened and stored: the application
    and features without the protected attributes, and those sealed again under the current key, bound to the
    decision. A record that cannot be opened leaves the five columns NULL and is counted in `unreadable`: the
    decision is still audited."""

    def __init__(self, record_keys: KeyRing | None = None) -> None:
        self._times: dict[str, bytes] = {}
        self._models: dict[tuple[Any, Any, Any, Any], bytes] = {}
        self._topics: dict[str, bytes] = {}
        self._keys = record_keys
        self._sealer: Sealer | None = None
        self._sealed = 0
        self._key_id = _text(record_keys.current) if record_keys is not None else b""
        self.unreadable = 0  # records that failed to open, since this encoder was made

    def row(self, value: bytes, topic: str, partition: int, offset: int, record: bytes | None = None) -> EncodedRow:
        """The rows for one Decision v1 record (and its decision record, if any), or NotADecision naming what
        is wrong with the decision."""
        try:
            d = orjson.loads(value)
        except orjson.JSONDecodeError:
            raise NotADecision("not JSON") from None
        if type(d) is not dict:
            raise NotADecision("not an object")
        try:
            return self._row(d, topic, partition, offset, record)
        except _Field as exc:
            raise NotADecision(f"field {exc.name}") from None
        except KeyError as exc:
            raise NotADecision(f"field {exc.args[0] if exc.args[0] in _KNOWN else '(unknown)'} missing") from None
        except UnicodeEncodeError:  # a lone surrogate: not text Postgres can hold
            raise NotADecision("field application_id") from None

    def _row(self, d: dict[str, Any], topic: str, partition: int, offset: int, record: bytes | None) -> EncodedRow:
        # Checks inline, not one function call each: this runs once per audit row, on a thread that shares the
        # GIL with the scorer. A NaN fails every comparison, so the range checks refuse it too.
        version = d["schema_version"]
        if version != SCHEMA_VERSION_DECISION or type(version) is not int:
            raise _Field("schema_version")
        uuid = _uuid(d["decision_id"])
        application_id = d["application_id"]
        if type(application_id) is not str:
            raise _Field("application_id")
        outcome = d["outcome"]
        outcome = _OUTCOMES.get(outcome) if type(outcome) is str else None
        if outcome is None:
            raise _Field("outcome")
        probability = d["probability_of_default"]
        if not ((type(probability) is float or type(probability) is int) and 0.0 <= probability <= 1.0):
            raise _Field("probability_of_default")
        reasons = d["reason_codes"]
        if type(reasons) is not list or len(reasons) > MAX_REASON_CODES:
            raise _Field("reason_codes")
        latency = d["latency_ms"]
        if not ((type(latency) is float or type(latency) is int) and 0.0 <= latency < _INFINITY):
            raise _Field("latency_ms")
        when = d["decided_at"]
        decided_at = self._times.get(when) if type(when) is str else None
        if decided_at is None:
            decided_at = self._decided_at(when)
        app = application_id.encode()
        row = b"".join((
            _ROW_HEAD.pack(len(COLUMNS), 16, uuid, len(app)), app, outcome, _FLOAT8.pack(8, probability),
            self._model(d["model"], d["policy_version"]), _jsonb(reasons) if reasons else _NO_REASONS, decided_at,
            _FLOAT8.pack(8, latency), self._topic(topic), _SOURCE.pack(4, partition, 8, offset),
            _NO_RECORD if record is None or self._keys is None else self._record(self._keys, record, uuid),
        ))
        return EncodedRow(uuid, offset, _LEDGER_HEAD.pack(2, 16, uuid) + decided_at, row)

    def _record(self, keys: KeyRing, record: bytes, decision_id: bytes) -> bytes:
        """application_schema_version, application, features, protected_attributes and record_key_id, encoded;
        five NULLs for a record that does not open."""
        try:
            parts = split(keys.open(record, RECORD, decision_id))
        except Unreadable:
            self.unreadable += 1
            return _NO_RECORD
        if not 0 < parts.schema_version < 32_768:
            self.unreadable += 1
            return _NO_RECORD
        if self._sealer is None or self._sealed >= _SEALS_PER_KEY:
            self._sealer, self._sealed = keys.sealer(PROTECTED), 0
        self._sealed += 1
        protected = self._sealer.seal(parts.protected, decision_id)
        return b"".join((_SMALLINT.pack(2, parts.schema_version), _json_text(parts.application),
                         _json_text(parts.features), _LENGTH.pack(len(protected)), protected, self._key_id))

    def _model(self, model: Any, policy_version: Any) -> bytes:
        """model_name, model_version, model_sha256 and policy_version, encoded."""
        _require(type(model) is dict, "model")
        key = (model.get("name"), model.get("version"), model.get("sha256"), policy_version)
        try:
            return self._models[key]
        except KeyError:
            pass
        except TypeError:  # a part that is not hashable is not a string either
            raise _Field("model") from None
        name, version, sha256, policy = key
        for value, field in ((name, "model.name"), (version, "model.version"), (policy, "policy_version")):
            _require(type(value) is str, field)
        _require(type(sha256) is str and _SHA256.fullmatch(sha256) is not None, "model.sha256")
        encoded = b"".join(_text(v) for v in (name, version, sha256, policy))
        if len(self._models) >= 64:
            self._models.clear()
        self._models[key] = encoded
        return encoded

    def _decided_at(self, text: Any) -> bytes:
        """timestamptz's binary format: microseconds since 2000-01-01 UTC."""
        _require(type(text) is str, "decided_at")
        try:
            when = datetime.fromisoformat(text)
        except ValueError:
            raise _Field("decided_at") from None
        _require(when.tzinfo is not None, "decided_at")  # a Decision's time carries its offset
        delta = when - _PG_EPOCH
        encoded = struct.pack(">iq", 8, (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds)
        if len(self._times) >= 64:
            self._times.clear()
        self._times[text] = encoded
        return encoded

    def _topic(self, topic: str) -> bytes:
        encoded = self._topics.get(topic)
        if encoded is None:
            encoded = self._topics[topic] = _text(topic)
        return encoded



class _Field(ValueError):
    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.name = name


def _require(ok: bool, name: str) -> None:
    if not ok:
        raise _Field(name)


def _uuid(text: Any) -> bytes:
    """The 16 bytes of a uuid in its 8-4-4-4-12 hex form (bytes.fromhex skips whitespace, so a space among the
    32 digits leaves fewer than 16 bytes)."""
    if type(text) is str and len(text) == 36 and text[8] == text[13] == text[18] == text[23] == "-":
        try:
            raw = bytes.fromhex(text.replace("-", ""))
        except ValueError:
            raise _Field("decision_id") from None
        if len(raw) == 16:
            return raw
    raise _Field("decision_id")


def _jsonb(value: Any) -> bytes:
    return _jsonb_text(orjson.dumps(value))


def _jsonb_text(text: bytes) -> bytes:
    return _LENGTH.pack(len(text) + 1) + b"\x01" + text


def _json_text(text: bytes) -> bytes:
    """json's binary COPY format is the text itself (jsonb's adds a version byte and is parsed on insert)."""
    return _LENGTH.pack(len(text)) + text

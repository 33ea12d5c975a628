"""W3C Trace Context (https://www.w3.org/TR/trace-context/) carried in Kafka headers. Pure: no I/O.

An application's `traceparent` (and its `tracestate`) are copied onto its decision only when valid; an
invalid one is dropped, never a reason to fail the event.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import NamedTuple

Header = tuple[str, str | bytes | None]

TRACEPARENT = "traceparent"
TRACESTATE = "tracestate"

# version-traceid-parentid-flags, lowercase hex; version ff is invalid, and so are all-zero ids. A later
# version may append fields after a dash, and is read as version 00 (the spec's rule for future versions).
_TRACEPARENT = re.compile(rb"(?!ff)[0-9a-f]{2}-(?!0{32})[0-9a-f]{32}-(?!0{16})[0-9a-f]{16}-[0-9a-f]{2}(?:-.*)?",
                          re.DOTALL)
_VERSION_00_BYTES = 55
MAX_TRACEPARENT_BYTES = 256  # no version defines more; a longer one is garbage, not worth copying
# The spec's list-member: a key (simple or tenant@system) and a value of printable ASCII without ',' or '='.
_MEMBER = re.compile(rb"(?:[a-z0-9][a-z0-9_*/-]{0,240}@[a-z][a-z0-9_*/-]{0,13}|[a-z][a-z0-9_*/-]{0,255})"
                     rb"=[\x20-\x2b\x2d-\x3c\x3e-\x7e]{0,255}[\x21-\x2b\x2d-\x3c\x3e-\x7e]")
MAX_TRACESTATE_BYTES = 512  # what the spec asks vendors to propagate at least; longer ones are dropped
_MAX_MEMBERS = 32


class TraceParent(NamedTuple):
    trace_id: int
    span_id: int
    flags: int


def trace_headers(headers: Sequence[Header] | dict[str, str | bytes | None] | None) -> list[Header]:
    """The valid `traceparent` among `headers` (a record's, as confluent-kafka gives them) and the `tracestate`
    that goes with it, ready to copy onto an outgoing record; [] if there is none, or if it is invalid or
    given twice. Runs once per decision: one pass, no ABC checks (~2 us with a traceparent, ~0.1 without)."""
    if not headers:
        return []
    parent: str | bytes | None = None
    state: str | bytes | None = None
    parents = states = 0
    for name, value in headers.items() if isinstance(headers, dict) else headers:
        if name == TRACEPARENT:
            parent, parents = value, parents + 1
        elif name == TRACESTATE:
            state, states = value, states + 1
    if parents != 1 or not valid_traceparent(parent):
        return []
    # Two tracestates would have to be joined; not worth it.
    return [(TRACEPARENT, parent), (TRACESTATE, state)] if states == 1 and valid_tracestate(state) else [
        (TRACEPARENT, parent)]


def valid_traceparent(value: str | bytes | None) -> bool:
    """A traceparent of version 00, or of a later version read as 00 (~1 us: the hot path's check)."""
    raw = value.encode() if isinstance(value, str) else value
    if raw is None or len(raw) > MAX_TRACEPARENT_BYTES:
        return False
    return _TRACEPARENT.fullmatch(raw) is not None and (len(raw) == _VERSION_00_BYTES or raw[:2] != b"00")


def parse_traceparent(value: str | bytes | None) -> TraceParent | None:
    """The ids and flags of a valid traceparent, None for anything else."""
    if not valid_traceparent(value):
        return None
    raw = value.encode() if isinstance(value, str) else value or b""
    return TraceParent(int(raw[3:35], 16), int(raw[36:52], 16), int(raw[53:55], 16))


def valid_tracestate(value: str | bytes | None) -> bool:
    """A tracestate of up to 32 well-formed list-members (empty ones allowed), at most 512 bytes."""
    raw = value.encode() if isinstance(value, str) else value
    if raw is None or len(raw) > MAX_TRACESTATE_BYTES:
        return False
    members = [m.strip(b" \t") for m in raw.split(b",")]
    present = [m for m in members if m]
    return len(present) <= _MAX_MEMBERS and all(_MEMBER.fullmatch(m) for m in present)

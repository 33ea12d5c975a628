"""An application's W3C trace context is copied onto its decision only when valid; an invalid one is dropped."""

from __future__ import annotations

import pytest

from streamer.core.trace_context import TraceParent, parse_traceparent, trace_headers, valid_tracestate

VALID = b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


class TestParseTraceparent:
    def test_a_valid_version_00_gives_its_trace_id_parent_id_and_flags(self) -> None:
        assert parse_traceparent(VALID) == TraceParent(
            0x4BF92F3577B34DA6A3CE929D0E0E4736, 0x00F067AA0BA902B7, 0x01
        )

    def test_a_later_version_is_read_as_00_and_may_carry_more_fields(self) -> None:
        assert parse_traceparent(b"cc" + VALID[2:] + b"-what-comes-next") is not None
        assert parse_traceparent(b"cc" + VALID[2:]) is not None

    @pytest.mark.parametrize(
        "value",
        [
            pytest.param(VALID.upper(), id="uppercase hex"),
            pytest.param(b"ff" + VALID[2:], id="version ff"),
            pytest.param(b"00-" + b"0" * 32 + VALID[35:], id="all-zero trace id"),
            pytest.param(VALID[:36] + b"0" * 16 + VALID[52:], id="all-zero parent id"),
            pytest.param(VALID + b"-extra", id="version 00 with more fields"),
            pytest.param(VALID[:-1], id="flags cut short"),
            pytest.param(VALID.replace(b"-", b"_"), id="wrong separators"),
            pytest.param(b"00-4bf92f3577b34da6a3ce929d0e0e473g-00f067aa0ba902b7-01", id="not hex"),
            pytest.param(b"cc" + VALID[2:] + b"x", id="later version with no dash after the flags"),
            pytest.param(b"cc" + VALID[2:] + b"-" + b"x" * 300, id="absurdly long"),
            pytest.param(b"", id="empty"),
            pytest.param(None, id="no value"),
        ],
    )
    def test_anything_else_is_invalid(self, value: bytes | None) -> None:
        assert parse_traceparent(value) is None


class TestTracestate:
    @pytest.mark.parametrize("value", [b"congo=t61rcWkgMzE", b"rojo=00f067aa0ba902b7, congo=t61rcWkgMzE",
                                       b"tenant@vendor=x", b"a=1,,b=2", b""])
    def test_well_formed_list_members_are_valid(self, value: bytes) -> None:
        assert valid_tracestate(value)

    @pytest.mark.parametrize("value", [b"Upper=1", b"novalue", b"a=1=2", b"a=\xff", b"a=1," * 33, b"a=" + b"x" * 600])
    def test_malformed_or_oversized_ones_are_not(self, value: bytes) -> None:
        assert not valid_tracestate(value)


class TestTraceHeaders:
    def test_a_valid_traceparent_and_its_tracestate_are_copied_and_nothing_else(self) -> None:
        headers = [("x-tenant", b"7"), ("traceparent", VALID), ("tracestate", b"congo=t61rcWkgMzE")]
        assert trace_headers(headers) == [("traceparent", VALID), ("tracestate", b"congo=t61rcWkgMzE")]

    def test_an_invalid_traceparent_is_dropped_with_its_tracestate(self) -> None:
        assert trace_headers([("traceparent", VALID.upper()), ("tracestate", b"congo=1")]) == []

    def test_two_traceparents_are_ambiguous_and_both_dropped(self) -> None:
        assert trace_headers([("traceparent", VALID), ("traceparent", b"cc" + VALID[2:])]) == []

    def test_a_malformed_tracestate_is_dropped_and_the_traceparent_kept(self) -> None:
        assert trace_headers([("traceparent", VALID), ("tracestate", b"Bad")]) == [("traceparent", VALID)]

    def test_a_record_without_headers_has_no_trace_context(self) -> None:
        assert trace_headers(None) == [] and trace_headers([]) == []

    def test_headers_given_as_a_mapping_are_read_too(self) -> None:
        assert trace_headers({"traceparent": VALID}) == [("traceparent", VALID)]

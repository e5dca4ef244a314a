"""Webhook signatures: round trip, tampering, wrong secret, replay window, hostile headers."""

from __future__ import annotations

import hashlib
import hmac

import pytest
from hypothesis import given
from hypothesis import strategies as st

from monitor.sinks.signing import parse_timestamp, sign, verify

SECRET = b"correct horse battery staple"
BODY = b'{"id":"3f2a","rule":"watched-address"}'
TS = 1_760_000_000


def test_sign_matches_the_documented_construction() -> None:
    expected = hmac.new(SECRET, f"{TS}.".encode() + BODY, hashlib.sha256).hexdigest()
    assert sign(SECRET, TS, BODY) == f"v1={expected}"


def test_round_trip() -> None:
    header = sign(SECRET, TS, BODY)
    assert verify(SECRET, str(TS), header, BODY, now=TS)
    assert verify(SECRET, str(TS), header, BODY, now=TS + 299)


def test_tampered_body_is_rejected() -> None:
    header = sign(SECRET, TS, BODY)
    assert not verify(SECRET, str(TS), header, BODY.replace(b"3f2a", b"3f2b"), now=TS)
    assert not verify(SECRET, str(TS), header, BODY + b" ", now=TS)


def test_wrong_secret_is_rejected() -> None:
    header = sign(b"another secret", TS, BODY)
    assert not verify(SECRET, str(TS), header, BODY, now=TS)


def test_timestamp_is_bound_into_the_signature() -> None:
    header = sign(SECRET, TS, BODY)
    assert not verify(SECRET, str(TS + 1), header, BODY, now=TS)


def test_stale_timestamp_is_rejected() -> None:
    header = sign(SECRET, TS, BODY)
    assert not verify(SECRET, str(TS), header, BODY, now=TS + 301)
    assert verify(SECRET, str(TS), header, BODY, now=TS + 3600, tolerance_seconds=7200)


def test_future_timestamp_is_rejected() -> None:
    header = sign(SECRET, TS, BODY)
    assert not verify(SECRET, str(TS), header, BODY, now=TS - 301)
    assert verify(SECRET, str(TS), header, BODY, now=TS - 299)


def test_default_now_is_the_wall_clock() -> None:
    import time

    ts = int(time.time())
    assert verify(SECRET, str(ts), sign(SECRET, ts, BODY), BODY)
    assert not verify(SECRET, str(ts - 1000), sign(SECRET, ts - 1000, BODY), BODY)


def test_rotation_any_listed_signature_may_match() -> None:
    both = f"{sign(b'old secret', TS, BODY)}, {sign(SECRET, TS, BODY)}"
    assert verify(SECRET, str(TS), both, BODY, now=TS)
    assert verify(b"old secret", str(TS), both, BODY, now=TS)


@pytest.mark.parametrize("signature", [
    None, "", "v1=", "v1", "deadbeef", "v0=" + "0" * 64, "v1=" + "0" * 64,
    "v1=ünïcødé", "v1=\udcff", ",,,", "v1=" + "a" * 10_000,
])
def test_malformed_signature_headers_are_rejected_without_raising(
        signature: str | None) -> None:
    assert not verify(SECRET, str(TS), signature, BODY, now=TS)


@pytest.mark.parametrize("timestamp", [
    None, "", "abc", "-5", "+1760000000", "1760000000.5", "١٧٦٠٠٠٠٠٠٠", "9" * 50, " 1 2 ",
])
def test_malformed_timestamp_headers_are_rejected(timestamp: str | None) -> None:
    assert not verify(SECRET, timestamp, sign(SECRET, TS, BODY), BODY, now=TS)


def test_timestamp_parsing() -> None:
    assert parse_timestamp(" 1760000000 ") == TS
    assert parse_timestamp("٣") is None  # non-ASCII digits
    assert parse_timestamp(None) is None


def test_empty_secret_never_signs_or_verifies() -> None:
    with pytest.raises(ValueError):
        sign(b"", TS, BODY)
    assert not verify(b"", str(TS), "v1=" + hmac.new(b"", b"", hashlib.sha256).hexdigest(),
                      b"", now=TS)


@given(secret=st.binary(min_size=1, max_size=64), body=st.binary(max_size=512),
       ts=st.integers(min_value=0, max_value=10**11))
def test_property_round_trip_and_single_bit_flip(secret: bytes, body: bytes, ts: int) -> None:
    header = sign(secret, ts, body)
    assert verify(secret, str(ts), header, body, now=ts)
    flipped = bytes([body[0] ^ 1]) + body[1:] if body else b"x"
    assert not verify(secret, str(ts), header, flipped, now=ts)


@given(ts=st.one_of(st.none(), st.text(max_size=40)),
       sig=st.one_of(st.none(), st.text(max_size=200)))
def test_property_verify_never_raises_on_hostile_headers(ts: str | None,
                                                         sig: str | None) -> None:
    assert verify(SECRET, ts, sig, BODY, now=TS) in (True, False)

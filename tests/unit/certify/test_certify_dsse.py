"""DSSE PAE, envelopes and in-toto statements."""

from __future__ import annotations

import pytest

from openzoo.certify.dsse import (
    Envelope,
    pae,
    parse_statement,
    sign_envelope,
    statement,
    subject,
    verify_envelope,
)
from openzoo.certify.keys import SigningKey
from openzoo.errors import InvalidRequest, VerificationFailed


def test_pae_matches_spec_example() -> None:
    # The DSSE protocol document's worked example.
    assert pae("http://example.com/HelloWorld", b"hello world") == (
        b"DSSEv1 29 http://example.com/HelloWorld 11 hello world"
    )
    assert pae("", b"") == b"DSSEv1 0  0 "
    assert pae("t\u00e9", b"\x00") == b"DSSEv1 3 t\xc3\xa9 1 \x00"


def test_sign_verify_roundtrip(zoo_key: SigningKey, reviewer_keys: dict[str, SigningKey]) -> None:
    body = statement([subject("m", "sha256:" + "a" * 64)], "https://openzoo.dev/x/v1", {"k": 1})
    env = sign_envelope("application/vnd.in-toto+json", body, [zoo_key, reviewer_keys["alice"]])
    again = Envelope.from_json(env.to_bytes())
    assert again == env
    signers = verify_envelope(again, [reviewer_keys["alice"].public, zoo_key.public])
    assert {k.name for k in signers} == {"zoo", "alice"}
    st = parse_statement(again.payload, "https://openzoo.dev/x/v1")
    assert st["subject"] == [{"name": "m", "digest": {"sha256": "a" * 64}}]
    with pytest.raises(VerificationFailed):
        parse_statement(again.payload, "https://other/v1")
    with pytest.raises(VerificationFailed):
        verify_envelope(again, [reviewer_keys["bob"].public])
    with pytest.raises(VerificationFailed, match="payload type"):
        verify_envelope(again, [zoo_key.public], "application/json")
    flipped = Envelope(env.payload_type, env.payload.replace(b'"k":1', b'"k":2'), env.signatures)
    with pytest.raises(VerificationFailed):
        verify_envelope(flipped, [zoo_key.public])
    retyped = Envelope("application/json", env.payload, env.signatures)
    with pytest.raises(VerificationFailed):
        verify_envelope(retyped, [zoo_key.public], "application/json")


def test_bad_shapes() -> None:
    for bad in (b"[]", b"{}", b'{"payloadType":"x","payload":"%%","signatures":[]}', b"nope"):
        with pytest.raises(InvalidRequest):
            Envelope.from_json(bad)
    with pytest.raises(InvalidRequest):
        subject("x", "sha256:ABC")
    with pytest.raises(InvalidRequest):
        statement([], "t", {})
    with pytest.raises(VerificationFailed):
        parse_statement(b'{"_type":"other"}')

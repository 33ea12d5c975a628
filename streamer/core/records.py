"""Decision records: what a decision needs to be reproduced, sealed so that only a key holder can read it.

A record is `{"schema_version", "application", "inputs"}`: the validated application as the model saw it
(canonical JSON) and the names of the model's inputs, whose values `split` reads from it. The scorer seals it
into its decision's `streamer-record` header; the audit opens it, keeps the application and the features
without the protected attributes, and seals those alone again for the row. Pure: no Kafka, no Postgres, no
settings (the key ring is given).

Envelope v1: `0x01 | len(key id) | key id | salt (16) | nonce (12) | AES-256-GCM ciphertext and tag`.
The associated data is the envelope's purpose and the decision's 16 uuid bytes, so an envelope moved to
another decision, or from a header to a row, fails authentication. Each `Sealer` encrypts under its own key,
derived from the master key and a random salt (HKDF-SHA256): random 96-bit nonces are safe for about 2^32
messages per key, which one master key would reach within a week at 10,000 decisions/s.
"""

from __future__ import annotations

import base64
import binascii
import os
import re
from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

import msgspec
import orjson
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from schemas.application import SCHEMA_VERSION, LoanApplication
from schemas.application_fast import Application
from schemas.features import FEATURES_BY_NAME, PROTECTED_FEATURES

HEADER = "streamer-record"  # the Kafka header of a decision that carries its record
RECORD = b"streamer-record/1\x00"  # purposes, the first part of the associated data
PROTECTED = b"streamer-protected/1\x00"
PROTECTED_APPLICANT = ("personal_status", "age_years", "foreign_worker")  # application.applicant's, by name

_VERSION = 1
_SALT, _NONCE, _TAG = 16, 12, 16
_KEY_ID = re.compile(r"[A-Za-z0-9._-]{1,64}")
_MAX_USES = 1 << 20  # per derived key; far below the 2^32 limit of random nonces


class Unreadable(ValueError):
    """An envelope that cannot be opened: malformed, under an unknown key, or failing authentication."""


class KeyRingError(ValueError):
    """STREAMER_RECORD_KEYS / STREAMER_RECORD_KEY_ID cannot make a key ring (the message quotes no key)."""


class Sealer:
    """Seals records under one derived key (one AESGCM object); make one per batch."""

    def __init__(self, key_id: str, master: bytes, purpose: bytes) -> None:
        salt = os.urandom(_SALT)
        self._aead = AESGCM(_derive(master, salt))
        self._head = bytes((_VERSION, len(key_id))) + key_id.encode() + salt
        self._purpose = purpose
        self._uses = 0

    def seal(self, plaintext: bytes, decision_id: bytes) -> bytes:
        """The envelope of `plaintext`, bound to the decision (its 16 uuid bytes)."""
        [envelope] = self.seal_many([plaintext], [decision_id])
        return envelope

    def seal_many(self, plaintexts: Sequence[bytes], decision_ids: Sequence[bytes]) -> list[bytes]:
        """One envelope per plaintext; the nonces come from one read of the OS's random source."""
        self._uses += len(plaintexts)
        if self._uses > _MAX_USES:
            raise RuntimeError("a Sealer is for one batch; make a new one")
        nonces = os.urandom(_NONCE * len(plaintexts))
        head, purpose, encrypt = self._head, self._purpose, self._aead.encrypt
        envelopes = []
        for i, (plaintext, decision_id) in enumerate(zip(plaintexts, decision_ids, strict=True)):
            nonce = nonces[i * _NONCE:(i + 1) * _NONCE]
            envelopes.append(head + nonce + encrypt(nonce, plaintext, purpose + decision_id))
        return envelopes


class KeyRing:
    """The record keys by id; `current` seals, any of them opens."""

    def __init__(self, keys: Mapping[str, bytes], current: str) -> None:
        if current not in keys:
            raise KeyRingError(f"the record key id {current!r} is not among the keys ({', '.join(sorted(keys))})")
        for key_id, key in keys.items():
            if not _KEY_ID.fullmatch(key_id):
                raise KeyRingError(f"a record key id must match {_KEY_ID.pattern}, not {key_id!r}")
            if len(key) != 32:
                raise KeyRingError(f"record key {key_id!r} is {len(key)} bytes; AES-256 needs 32")
        self._keys = dict(keys)
        self.current = current
        self._opened: dict[tuple[bytes, bytes], AESGCM] = {}  # (key id, salt) -> its derived key

    @classmethod
    def parse(cls, keys: str, current: str | None) -> KeyRing:
        """From `kid1:base64key,kid2:base64key`; `current` defaults to the only key when there is one."""
        ring: dict[str, bytes] = {}
        for item in filter(None, (part.strip() for part in keys.split(","))):
            key_id, sep, encoded = item.partition(":")
            if not sep:
                raise KeyRingError("record keys are `key id:base64 key`, comma-separated")
            try:
                ring[key_id.strip()] = base64.b64decode(encoded.strip(), validate=True)
            except binascii.Error:
                raise KeyRingError(f"record key {key_id.strip()!r} is not base64") from None
        if current is None and len(ring) == 1:
            current = next(iter(ring))
        if current is None:
            raise KeyRingError("several record keys and no STREAMER_RECORD_KEY_ID to say which one encrypts")
        return cls(ring, current)

    @property
    def key_ids(self) -> list[str]:
        return sorted(self._keys)

    def sealer(self, purpose: bytes) -> Sealer:
        return Sealer(self.current, self._keys[self.current], purpose)

    def open(self, envelope: bytes, purpose: bytes, decision_id: bytes) -> bytes:
        """The plaintext, or Unreadable."""
        key_id, salt, nonce, sealed = _parts(envelope)
        aead = self._opened.get((key_id, salt))
        if aead is None:
            master = self._keys.get(key_id.decode())
            if master is None:
                raise Unreadable(f"sealed under key {key_id.decode()!r}, which is not in the key ring")
            if len(self._opened) >= 256:
                self._opened.clear()
            aead = self._opened[(key_id, salt)] = AESGCM(_derive(master, salt))
        try:
            return aead.decrypt(nonce, sealed, purpose + decision_id)
        except InvalidTag:
            raise Unreadable("the envelope fails authentication (tampered, or another decision's)") from None


def envelope_key_id(envelope: bytes) -> str:
    """The id of the key an envelope was sealed under (without opening it)."""
    return _parts(envelope)[0].decode()


def generate_keys(key_id: str = "dev") -> str:
    """A fresh `key id:base64 key` for a development stack."""
    return f"{key_id}:{base64.b64encode(os.urandom(32)).decode()}"


class RecordEncoder:
    """Records for one model. A record holds the application and the names of the model's inputs, not their
    values: every input is an application field (streamer/core/features.py checks that at load), so the values
    are the application's under those names (`split` makes them), and a record that carried them too would cost
    the scorer twice as much (about 5 µs per application, mostly reading enum values)."""

    def __init__(self, feature_names: Sequence[str]) -> None:
        self._inputs = orjson.Fragment(orjson.dumps(list(feature_names)))  # encoded once per model

    def document(self, application: Application) -> bytes:
        """The record's JSON."""
        return orjson.dumps({"schema_version": SCHEMA_VERSION, "application": orjson.Fragment(canonical(application)),
                             "inputs": self._inputs})


def canonical(application: Application) -> bytes:
    """The application's canonical JSON: the schema's fields in order, the same from either decoder."""
    if isinstance(application, LoanApplication):
        return application.model_dump_json().encode()
    return msgspec.json.encode(application)


class SplitRecord(NamedTuple):
    """A record as the audit stores it: in the clear without the protected attributes, and those alone."""

    schema_version: int
    application: bytes  # JSON, without applicant.personal_status, age_years, foreign_worker
    features: bytes  # JSON, without the protected features
    protected: bytes  # JSON: {"applicant": {...}, "features": {...}}


def split(document: bytes) -> SplitRecord:
    """A record's clear and protected parts, with the features fed to the model by name (categories as their
    values, numbers and flags as the application has them; the model casts them to float32). Unreadable if it
    is not a record."""
    try:
        record = orjson.loads(document)
        version, application, inputs = record["schema_version"], record["application"], record["inputs"]
        if type(version) is not int or type(inputs) is not list:
            raise TypeError
        features = {}
        for name in inputs:
            field = FEATURES_BY_NAME[name]
            features[name] = application[field.section][field.attribute]
        applicant = application["applicant"]
        protected_applicant = {k: applicant.pop(k) for k in PROTECTED_APPLICANT if k in applicant}
        protected_features = {k: features.pop(k) for k in PROTECTED_FEATURES if k in features}
    except (orjson.JSONDecodeError, KeyError, TypeError):
        raise Unreadable("not a decision record") from None
    return SplitRecord(version, orjson.dumps(application), orjson.dumps(features),
                       orjson.dumps({"applicant": protected_applicant, "features": protected_features}))


def joined(application: dict[str, Any], protected: bytes) -> dict[str, Any]:
    """The stored application with its protected attributes back in place (`protected`: SplitRecord's JSON)."""
    applicant = {**application["applicant"], **orjson.loads(protected)["applicant"]}
    return {**application, "applicant": applicant}


def _derive(master: bytes, salt: bytes) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=salt, info=b"streamer-record-key/1").derive(master)


def _parts(envelope: bytes) -> tuple[bytes, bytes, bytes, bytes]:
    """Key id, salt, nonce and ciphertext of an envelope; Unreadable if it is not one."""
    if len(envelope) < 2 or envelope[0] != _VERSION:
        raise Unreadable("not a version 1 record envelope")
    start = 2 + envelope[1]
    key_id = envelope[2:start]
    if len(envelope) < start + _SALT + _NONCE + _TAG or not _KEY_ID.fullmatch(key_id.decode("ascii", "replace")):
        raise Unreadable("a truncated record envelope")
    nonce_at = start + _SALT
    return key_id, envelope[start:nonce_at], envelope[nonce_at:nonce_at + _NONCE], envelope[nonce_at + _NONCE:]

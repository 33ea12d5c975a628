"""Decision records: what a decision needs to be reproduced, sealed so that only a key holder can read it.

A record is the validated application as the model saw it and the model's inputs by name, in three JSON
texts: the application and the inputs without the protected attributes, and those. The scorer seals it into
its decision's `streamer-record` header; the audit opens it, keeps the first two in the clear, and seals the
protected attributes alone again for the row. Pure: no Kafka, no Postgres, no
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
import struct
from collections.abc import Callable, Mapping, Sequence
from operator import itemgetter
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
_POOLED = 1024  # nonces drawn at once by Sealer.seal
_FRAME = struct.Struct(">BHII")  # record format, application schema version, lengths of the first two texts
_JSON = msgspec.json.Encoder()
_asdict = msgspec.structs.asdict


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
        self._pool, self._pool_at = b"", 0

    def seal(self, plaintext: bytes, decision_id: bytes) -> bytes:
        """The envelope of `plaintext`, bound to the decision (its 16 uuid bytes)."""
        self._uses += 1
        if self._uses > _MAX_USES:
            raise RuntimeError("a Sealer is for one batch; make a new one")
        # Nonces are drawn _POOLED at a time: os.urandom releases the GIL, and in the worker, where four threads
        # want it, each release can let another thread run before this one gets it back.
        if self._pool_at == len(self._pool):
            self._pool, self._pool_at = os.urandom(_NONCE * _POOLED), 0
        nonce = self._pool[self._pool_at:self._pool_at + _NONCE]
        self._pool_at += _NONCE
        return self._head + nonce + self._aead.encrypt(nonce, plaintext, self._purpose + decision_id)

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
    """Records for one model, split as the audit stores them, so that the audit parses no JSON: the scorer's
    decoded application is at hand, while the audit would have to parse the record and write it out again
    (about 20 µs per row, most of the audit's budget)."""

    def __init__(self, feature_names: Sequence[str]) -> None:
        fields = [FEATURES_BY_NAME[n] for n in feature_names]
        # The clear inputs, loan's first, read with one itemgetter per section (a loop over them cost twice as much).
        loan = [f for f in fields if f.section == "loan" and f.name not in PROTECTED_FEATURES]
        applicant = [f for f in fields if f.section == "applicant" and f.name not in PROTECTED_FEATURES]
        self._names = tuple(f.name for f in loan + applicant)
        self._loan, self._applicant = _getter([f.attribute for f in loan]), _getter([f.attribute for f in applicant])
        self._protected = [(f.name, f.section == "loan", f.attribute) for f in fields if f.name in PROTECTED_FEATURES]

    def document(self, application: Application) -> bytes:
        """The record: a frame of the application's schema version and three JSON texts (msgspec encodes the
        enums and times of both decoders' models alike, the application's fields in the schema's order)."""
        if isinstance(application, LoanApplication):  # pydantic read it (the rare path)
            loan, applicant = application.loan.model_dump(), application.applicant.model_dump()
        else:
            loan, applicant = _asdict(application.loan), _asdict(application.applicant)
        features = dict(zip(self._names, self._loan(loan) + self._applicant(applicant), strict=True))
        protected_features = {n: (loan if in_loan else applicant)[a] for n, in_loan, a in self._protected}
        protected = {"applicant": {k: applicant.pop(k) for k in PROTECTED_APPLICANT}, "features": protected_features}
        a = application
        clear = _JSON.encode({"schema_version": a.schema_version, "application_id": a.application_id,
                              "applicant_id": a.applicant_id, "submitted_at": a.submitted_at, "loan": loan,
                              "applicant": applicant})
        inputs = _JSON.encode(features)
        return _FRAME.pack(_VERSION, SCHEMA_VERSION, len(clear), len(inputs)) + clear + inputs + _JSON.encode(protected)


class SplitRecord(NamedTuple):
    """A record's parts as the audit stores them."""

    schema_version: int
    application: bytes  # JSON, without applicant.personal_status, age_years and foreign_worker
    features: bytes  # JSON: the model's inputs by name, without the protected ones
    protected: bytes  # JSON: {"applicant": {the three}, "features": {the protected inputs, if any}}


def split(document: bytes) -> SplitRecord:
    """A record's parts (slices of it: no JSON is parsed); Unreadable if it is not a record."""
    if len(document) < _FRAME.size:
        raise Unreadable("not a decision record")
    version, schema_version, application_length, features_length = _FRAME.unpack_from(document)
    features_at = _FRAME.size + application_length
    protected_at = features_at + features_length
    if version != _VERSION or protected_at >= len(document):
        raise Unreadable("not a decision record")
    return SplitRecord(schema_version, document[_FRAME.size:features_at], document[features_at:protected_at],
                       document[protected_at:])


def joined(application: dict[str, Any], protected: bytes) -> dict[str, Any]:
    """The stored application with its protected attributes back in place (`protected`: SplitRecord's JSON)."""
    applicant = {**application["applicant"], **orjson.loads(protected)["applicant"]}
    return {**application, "applicant": applicant}


def _getter(keys: Sequence[str]) -> Callable[[dict[str, Any]], tuple[Any, ...]]:
    """A dict's values under `keys`, always as a tuple (itemgetter gives a bare value for one key)."""
    if not keys:
        return lambda _: ()
    if len(keys) == 1:
        return lambda d: (d[keys[0]],)
    return itemgetter(*keys)


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

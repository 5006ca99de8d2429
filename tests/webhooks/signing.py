"""Test key pairs in GHL's two schemes, and GHL-shaped signed events."""

from __future__ import annotations

import base64
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, padding, rsa


def ghl_timestamp(at: datetime | None = None) -> str:
    """``2026-12-02T05:40:00.123Z``: ISO-8601 UTC with milliseconds, as GHL sends it."""
    at = at or datetime.now(UTC)
    return at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{at.microsecond // 1000:03d}Z"


def event(location_id: str = "loc1", type: str = "ContactUpdate", *, age: float = 0.0, **fields: Any) -> dict[str, Any]:
    """A GHL-shaped event with a fresh ``webhookId``, its ``timestamp`` ``age`` seconds in the past."""
    return {
        "type": type,
        "locationId": location_id,
        "webhookId": fields.pop("webhookId", str(uuid.uuid4())),
        "timestamp": ghl_timestamp(datetime.now(UTC) - timedelta(seconds=age)),
        "id": fields.pop("id", uuid.uuid4().hex[:20]),
        **fields,
    }


@dataclass(frozen=True)
class Signer:
    """Private keys that stand in for GHL's; their public halves go into the receiver's settings."""

    ed25519_key: ed25519.Ed25519PrivateKey
    rsa_key: rsa.RSAPrivateKey

    @classmethod
    def generate(cls) -> Signer:
        return cls(ed25519.Ed25519PrivateKey.generate(), rsa.generate_private_key(public_exponent=65537, key_size=4096))

    @property
    def public_key(self) -> str:
        """The Ed25519 public key as base64 SPKI (the form GHL publishes)."""
        der = self.ed25519_key.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        return base64.b64encode(der).decode()

    @property
    def legacy_public_key(self) -> str:
        """The RSA public key as PEM."""
        return (
            self.rsa_key.public_key()
            .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
            .decode()
        )

    def sign(self, body: bytes) -> str:
        return base64.b64encode(self.ed25519_key.sign(body)).decode()

    def sign_legacy(self, body: bytes) -> str:
        return base64.b64encode(self.rsa_key.sign(body, padding.PKCS1v15(), hashes.SHA256())).decode()

    def delivery(self, payload: dict[str, Any], *, scheme: str = "ed25519") -> tuple[bytes, dict[str, str]]:
        """The raw body and headers of one delivery signed by ``scheme`` (``ed25519``, ``rsa`` or ``both``)."""
        body = orjson.dumps(payload)
        headers = {"Content-Type": "application/json"}
        if scheme in ("ed25519", "both"):
            headers["X-GHL-Signature"] = self.sign(body)
        if scheme in ("rsa", "both"):
            headers["X-WH-Signature"] = self.sign_legacy(body)
        return body, headers


def claimed(inbox: Any, location_id: str, limit: int = 10_000) -> Any:
    """``inbox.claim(...)``, which must find a batch."""
    batch = inbox.claim(location_id, limit)
    assert batch is not None, f"no batch to claim for {location_id}"
    return batch

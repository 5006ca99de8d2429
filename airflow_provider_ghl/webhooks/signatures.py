"""GHL's webhook signatures, checked over the raw body bytes with ``cryptography``.

* ``X-GHL-Signature``: base64 Ed25519 signature (the current scheme).
* ``X-WH-Signature``: base64 RSASSA-PKCS1-v1_5 / SHA-256 signature (legacy; GHL drops it in 2026).

When ``X-GHL-Signature`` is present it decides alone: a bad one is refused even if a legacy signature would
pass, so a forger cannot fall back to the weaker path. The legacy header counts only while it is accepted.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ed25519, padding, rsa
from cryptography.hazmat.primitives.serialization import load_der_public_key, load_pem_public_key

SIGNATURE_HEADER = "X-GHL-Signature"
LEGACY_SIGNATURE_HEADER = "X-WH-Signature"
#: The smallest RSA key accepted for the legacy scheme (GHL's is 4096 bits).
MIN_RSA_BITS = 2048


class SignatureRefused(Exception):
    """A delivery's signature is missing or does not verify.

    :param reason: ``missing`` or ``invalid``, for the counter and the log line.
    """

    def __init__(self, reason: str, detail: str) -> None:
        self.reason = reason
        super().__init__(detail)


def load_public_key(text: str) -> ed25519.Ed25519PublicKey | rsa.RSAPublicKey:
    """A public key from PEM (``-----BEGIN PUBLIC KEY-----``) or base64 SPKI (DER) text.

    :raises ValueError: the text is neither, or holds another kind of key.
    """
    text = text.strip()
    try:
        if "-----BEGIN" in text:
            key = load_pem_public_key(text.encode())
        else:
            key = load_der_public_key(base64.b64decode("".join(text.split()), validate=True))
    except (ValueError, binascii.Error, UnsupportedAlgorithm) as err:
        raise ValueError(f"not a PEM or base64 SPKI public key ({type(err).__name__})") from None
    if not isinstance(key, ed25519.Ed25519PublicKey | rsa.RSAPublicKey):
        raise ValueError(f"a {type(key).__name__}, expected an Ed25519 or RSA public key")
    return key


def _signature(value: str) -> bytes:
    try:
        return base64.b64decode(value.strip(), validate=True)
    except (binascii.Error, ValueError):
        raise SignatureRefused("invalid", "signature is not base64") from None


@dataclass(frozen=True)
class SignatureVerifier:
    """Checks one delivery's signature headers against GHL's keys.

    :param public_key: the Ed25519 key of ``X-GHL-Signature``.
    :param legacy_key: the RSA key of ``X-WH-Signature``; None: the legacy scheme is refused.
    """

    public_key: ed25519.Ed25519PublicKey
    legacy_key: rsa.RSAPublicKey | None = None

    def presented(self, headers: Mapping[str, str]) -> tuple[str, bytes]:
        """The signature a delivery presents, ``(scheme, signature)``, judged from its headers alone: the receiver
        asks before it reads a byte of the body, so a request without a usable signature costs nothing.

        :param headers: the request headers (a case-insensitive mapping, as Starlette's).
        :raises SignatureRefused: no usable signature header, or one that is not base64.
        """
        current = headers.get(SIGNATURE_HEADER)
        if current is not None:
            return "ed25519", _signature(current)
        legacy = headers.get(LEGACY_SIGNATURE_HEADER)
        if legacy is not None and self.legacy_key is not None:
            return "rsa", _signature(legacy)
        if legacy is not None:
            raise SignatureRefused("missing", f"no {SIGNATURE_HEADER}, and {LEGACY_SIGNATURE_HEADER} is not accepted")
        raise SignatureRefused("missing", f"no {SIGNATURE_HEADER} header")

    def verify(self, body: bytes, headers: Mapping[str, str]) -> str:
        """The scheme that verified ``body`` (``ed25519`` or ``rsa``).

        :param body: the raw request body, exactly as received.
        :param headers: the request headers (a case-insensitive mapping, as Starlette's).
        :raises SignatureRefused: no usable signature, or one that does not verify.
        """
        scheme, signature = self.presented(headers)
        try:
            if scheme == "ed25519":
                self.public_key.verify(signature, body)
            else:
                assert self.legacy_key is not None  # presented() offers rsa only with a legacy key
                self.legacy_key.verify(signature, body, padding.PKCS1v15(), hashes.SHA256())
        except InvalidSignature:
            header = SIGNATURE_HEADER if scheme == "ed25519" else LEGACY_SIGNATURE_HEADER
            raise SignatureRefused("invalid", f"{header} does not verify") from None
        return scheme

"""Field-level envelope encryption of user content at rest (AES-256-GCM, per-environment key).

Postgres files, WAL and backups hold only ciphertext; the API decrypts for
callers who are allowed to read. Each value is bound to its column (the
associated data), so a ciphertext copied into another column does not decrypt.
Values written before encryption was on (no prefix) are returned as they are.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

PREFIX = "enc:v1:"
NONCE_BYTES = 12


class CipherError(Exception):
    """A stored value cannot be decrypted with this environment's key."""


class FieldCipher:
    def __init__(self, key_b64: str) -> None:
        try:
            key = base64.b64decode(key_b64, validate=True)
        except (binascii.Error, ValueError):
            raise ValueError("the data key must be base64") from None
        if len(key) != 32:
            raise ValueError(f"the data key must be 32 bytes, got {len(key)}")
        self._aead = AESGCM(key)
        self.key_id = hashlib.sha256(key).hexdigest()[:8]

    def encrypt(self, column: str, plaintext: str) -> str:
        nonce = os.urandom(NONCE_BYTES)
        sealed = self._aead.encrypt(nonce, plaintext.encode(), column.encode())
        return f"{PREFIX}{self.key_id}:{base64.b64encode(nonce + sealed).decode()}"

    def decrypt(self, column: str, stored: str) -> str:
        if not stored.startswith(PREFIX):
            return stored
        key_id, _, payload = stored[len(PREFIX) :].partition(":")
        if key_id != self.key_id:
            raise CipherError(f"{column} was encrypted with key {key_id}, not {self.key_id}")
        raw = base64.b64decode(payload)
        try:
            plain = self._aead.decrypt(raw[:NONCE_BYTES], raw[NONCE_BYTES:], column.encode())
        except InvalidTag:
            raise CipherError(f"{column}: ciphertext does not authenticate") from None
        return plain.decode()

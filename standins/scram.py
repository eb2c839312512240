"""SCRAM-SHA-256 password verifiers, so plain passwords never travel in SQL text."""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets

ITERATIONS = 4096


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def scram_verifier(password: str, *, iterations: int = ITERATIONS) -> str:
    """The `SCRAM-SHA-256$iter:salt$StoredKey:ServerKey` secret PostgreSQL stores for `password`.

    Passwords are used as UTF-8 without SASLprep normalisation, which matches PostgreSQL for the
    ASCII passwords the stand-ins generate.
    """
    salt = secrets.token_bytes(16)
    salted = hashlib.pbkdf2_hmac("sha256", password.encode("utf-8"), salt, iterations)
    client_key = hmac.new(salted, b"Client Key", hashlib.sha256).digest()
    stored_key = hashlib.sha256(client_key).digest()
    server_key = hmac.new(salted, b"Server Key", hashlib.sha256).digest()
    return f"SCRAM-SHA-256${iterations}:{_b64(salt)}${_b64(stored_key)}:{_b64(server_key)}"


def new_password() -> str:
    """A fresh random password, URL-safe so it needs no quoting anywhere."""
    return secrets.token_urlsafe(24)

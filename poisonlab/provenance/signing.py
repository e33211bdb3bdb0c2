"""Ed25519 keys and signatures for ledger batches (via ``cryptography``).

A private key lives in a PEM PKCS#8 file (mode 0600); its public half is written
next to it as ``<path>.pub``, one line of 64 hex characters (the raw 32-byte key).
"""

from __future__ import annotations

import os
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from poisonlab.errors import ConfigError, DataError

__all__ = [
    "Ed25519PrivateKey",
    "generate_key",
    "load_private_key",
    "public_key_hex",
    "sign",
    "verify_signature",
]


def public_key_hex(key: Ed25519PrivateKey) -> str:
    """The raw public key of ``key`` as 64 hex characters."""
    raw = key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return raw.hex()


def generate_key(path: str | os.PathLike[str]) -> Ed25519PrivateKey:
    """Create a new key: the private key at ``path`` (0600), the public key hex at ``path.pub``.

    Raises
    ------
    ConfigError
        If ``path`` or ``path.pub`` already exists (a key is never overwritten).
    """
    path = Path(path)
    public = Path(f"{path}.pub")
    if path.exists() or public.exists():
        raise ConfigError(f"{path} or {public} already exists; not overwriting a key")
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(pem)
    os.chmod(path, 0o600)  # O_CREAT's mode is filtered by the umask
    public.write_text(public_key_hex(key) + "\n", encoding="ascii")
    return key


def load_private_key(path: str | os.PathLike[str]) -> Ed25519PrivateKey:
    """Read a PEM PKCS#8 Ed25519 private key written by :func:`generate_key`.

    Raises
    ------
    DataError
        If the file is missing, unreadable, or not an unencrypted Ed25519 key.
    """
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise DataError(f"{path}: no such key file") from None
    except OSError as exc:
        raise DataError(f"{path}: cannot read the key file ({exc.strerror})") from exc
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError) as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise DataError(f"{path}: not a PEM PKCS#8 private key ({reason})") from exc
    if not isinstance(key, Ed25519PrivateKey):
        raise DataError(f"{path}: the key is not an Ed25519 key")
    return key


def sign(key: Ed25519PrivateKey, message: bytes) -> bytes:
    """The 64-byte Ed25519 signature of ``message``."""
    return key.sign(message)


def verify_signature(public_key_hex: str, message: bytes, signature: bytes) -> bool:
    """Whether ``signature`` is ``message`` signed by the key whose raw public bytes are ``public_key_hex``.

    A malformed key or signature gives ``False``, never an exception.
    """
    try:
        public = Ed25519PublicKey.from_public_bytes(bytes.fromhex(public_key_hex))
        public.verify(bytes(signature), message)
    except (InvalidSignature, ValueError, TypeError):
        return False
    return True

"""Encryption at rest of the state, its backup and journal, and of saved plans (``ORCH_STATE_PASSPHRASE``).

Why: the state and saved plans hold every attribute of the managed objects, secrets included, in clear
(OpenTofu's state encryption answers the same need). With a passphrase in the environment, orch writes them
AES-256-GCM encrypted under a key derived from the passphrase with scrypt.

An encrypted file starts with one plain JSON line that says how to decrypt it (never the key)::

    {"orch_encrypted":1,"method":"aes-256-gcm","kdf":{"name":"scrypt","n":32768,"r":8,"p":1,"salt":"<b64>"},
     "check":"<b64>"}

followed by lines of ``base64(nonce || ciphertext || tag)``, each sealed on its own with a random 96-bit nonce
and the header line as associated data: one line for a state file or a plan file, one per record for a journal
(so that a record appended just before a SIGKILL is whole or recognisably torn, as a plain record is).
``check`` seals the empty text under the key: it tells a wrong passphrase from a damaged file.

scrypt is slow on purpose (~0.1 s, 32 MiB), so a key is derived once per process per (passphrase, salt):
a process writes every file under one salt (the one of the first encrypted file it read, else a new random
one), and reads a file of another salt with one more derivation.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

from ..diagnostics import Diagnostic

PASSPHRASE_ENV = "ORCH_STATE_PASSPHRASE"
FORMAT_VERSION = 1
METHOD = "aes-256-gcm"
MAGIC = b'{"orch_encrypted":'  # how every encrypted file starts (json.dumps keeps this key first)

SCRYPT_N, SCRYPT_R, SCRYPT_P = 2**15, 8, 1
_SALT_BYTES = 16
_NONCE_BYTES = 12
_TAG_BYTES = 16
_CHECK_AAD = b"orch key check"
# A header comes from a file that may have been handed to us (a plan file): bound the work it can ask for.
_MAX_N, _MAX_R, _MAX_P = 2**20, 32, 16

# Why a file cannot be decrypted (EncryptionError.reason)
NO_PASSPHRASE = "no-passphrase"
WRONG_PASSPHRASE = "wrong-passphrase"
INVALID = "invalid"  # damaged, or written by a newer orch


class EncryptionError(ValueError):
    """An encrypted file that cannot be read; ``reason`` is NO_PASSPHRASE, WRONG_PASSPHRASE or INVALID."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


def passphrase_from_env() -> str | None:
    """The passphrase, or None when ``ORCH_STATE_PASSPHRASE`` is unset or empty (an empty one is no key)."""
    return os.environ.get(PASSPHRASE_ENV) or None


def is_encrypted(data: bytes) -> bool:
    return data.startswith(MAGIC)


@dataclass(frozen=True, slots=True)
class Cipher:
    """A derived key and the header line that says how to derive it again."""

    header: bytes  # without its newline; also the associated data of every line sealed under it
    aead: AESGCM

    def seal(self, plaintext: bytes) -> bytes:
        """One line (without its newline): base64 of nonce, ciphertext and tag."""
        nonce = os.urandom(_NONCE_BYTES)
        return base64.b64encode(nonce + self.aead.encrypt(nonce, plaintext, self.header))

    def open(self, line: bytes) -> bytes | None:
        """The plaintext of a sealed line; None when it is not one whole, authentic line (torn or damaged: the
        key is right, the header's check said so)."""
        try:
            raw = base64.b64decode(line, validate=True)
        except (binascii.Error, ValueError):
            return None
        if len(raw) < _NONCE_BYTES + _TAG_BYTES:
            return None
        try:
            return self.aead.decrypt(raw[:_NONCE_BYTES], raw[_NONCE_BYTES:], self.header)
        except InvalidTag:
            return None


_cache_lock = threading.Lock()
_keys: dict[tuple[str, bytes, int, int, int], bytes] = {}
_writers: dict[str, Cipher] = {}  # passphrase -> the cipher this process writes with


def _derive(passphrase: str, salt: bytes, n: int, r: int, p: int) -> bytes:
    with _cache_lock:  # held while deriving: two threads never pay for the same key twice
        key = _keys.get((passphrase, salt, n, r, p))
        if key is None:
            key = Scrypt(salt=salt, length=32, n=n, r=r, p=p).derive(passphrase.encode("utf-8"))
            _keys[(passphrase, salt, n, r, p)] = key
        return key


def writer(passphrase: str) -> Cipher:
    """The cipher this process encrypts with (one salt, so one derivation, per process)."""
    with _cache_lock:
        cipher = _writers.get(passphrase)
    if cipher is not None:
        return cipher
    salt = os.urandom(_SALT_BYTES)
    aead = AESGCM(_derive(passphrase, salt, SCRYPT_N, SCRYPT_R, SCRYPT_P))
    nonce = os.urandom(_NONCE_BYTES)
    check = nonce + aead.encrypt(nonce, b"", _CHECK_AAD)
    header = json.dumps({"orch_encrypted": FORMAT_VERSION, "method": METHOD,
                         "kdf": {"name": "scrypt", "n": SCRYPT_N, "r": SCRYPT_R, "p": SCRYPT_P,
                                 "salt": base64.b64encode(salt).decode("ascii")},
                         "check": base64.b64encode(check).decode("ascii")}, separators=(",", ":"))
    with _cache_lock:
        return _writers.setdefault(passphrase, Cipher(header.encode("ascii"), aead))


def reader(header: bytes, passphrase: str | None) -> Cipher:
    """The cipher of a file whose header line is ``header``. Raises EncryptionError."""
    try:
        doc = json.loads(header)
    except (ValueError, RecursionError):
        raise EncryptionError(INVALID, "its encryption header is not valid JSON") from None
    if not isinstance(doc, dict):
        raise EncryptionError(INVALID, "its encryption header is not a JSON object")
    version = doc.get("orch_encrypted")
    if version != FORMAT_VERSION:
        raise EncryptionError(INVALID, f"it is encrypted in format {version!r}, which this orch does not know "
                                       f"(it reads {FORMAT_VERSION}); a newer orch wrote it")
    if doc.get("method") != METHOD:
        raise EncryptionError(INVALID, f"it is encrypted with method {doc.get('method')!r}, which this orch "
                                       f"does not know (only {METHOD})")
    salt, n, r, p, check = _kdf(doc)
    if passphrase is None:
        raise EncryptionError(NO_PASSPHRASE, f"{PASSPHRASE_ENV} is not set")
    aead = AESGCM(_derive(passphrase, salt, n, r, p))
    try:
        aead.decrypt(check[:_NONCE_BYTES], check[_NONCE_BYTES:], _CHECK_AAD)
    except InvalidTag:
        raise EncryptionError(WRONG_PASSPHRASE, f"the passphrase in {PASSPHRASE_ENV} is not the one it was "
                                                "encrypted with") from None
    cipher = Cipher(header, aead)
    if (n, r, p) == (SCRYPT_N, SCRYPT_R, SCRYPT_P):
        with _cache_lock:  # write under this salt too: the command then derives one key, not two
            _writers.setdefault(passphrase, cipher)
    return cipher


def _kdf(doc: dict[str, Any]) -> tuple[bytes, int, int, int, bytes]:
    kdf = doc.get("kdf")
    if not isinstance(kdf, dict) or kdf.get("name") != "scrypt":
        name = kdf.get("name") if isinstance(kdf, dict) else None
        raise EncryptionError(INVALID, f"its key derivation {name!r} is not one this orch knows (only scrypt)")
    n, r, p = kdf.get("n"), kdf.get("r"), kdf.get("p")
    if not (isinstance(n, int) and isinstance(r, int) and isinstance(p, int)
            and 2 <= n <= _MAX_N and n & (n - 1) == 0 and 1 <= r <= _MAX_R and 1 <= p <= _MAX_P):
        raise EncryptionError(INVALID, "its scrypt parameters are not valid")
    try:
        salt = base64.b64decode(str(kdf.get("salt")), validate=True)
        check = base64.b64decode(str(doc.get("check")), validate=True)
    except (binascii.Error, ValueError):
        raise EncryptionError(INVALID, "its encryption header is damaged (salt or check)") from None
    if not salt or len(check) != _NONCE_BYTES + _TAG_BYTES:
        raise EncryptionError(INVALID, "its encryption header is damaged (salt or check)")
    return salt, n, r, p, check


def encrypt_document(plaintext: bytes, passphrase: str) -> bytes:
    """A whole file (a state, a backup, a plan): the header line, then the sealed ``plaintext`` on one line."""
    cipher = writer(passphrase)
    return cipher.header + b"\n" + cipher.seal(plaintext) + b"\n"


def decrypt_document(data: bytes, passphrase: str | None) -> bytes:
    """The plaintext of what :func:`encrypt_document` wrote. Raises EncryptionError."""
    header, newline, body = data.partition(b"\n")
    if not newline:
        raise EncryptionError(INVALID, "it is cut short after its encryption header")
    plaintext = reader(header, passphrase).open(body.rstrip(b"\n"))
    if plaintext is None:
        raise EncryptionError(INVALID, "its encrypted content is damaged (it does not match its "
                                       "authentication tag)")
    return plaintext


def locked_diagnostic(e: EncryptionError, path: str | os.PathLike[str], what: str) -> Diagnostic:
    """The error of a missing or wrong passphrase; ``what`` names the kind of file: "state", "plan file"."""
    name = Path(path).name
    if e.reason == NO_PASSPHRASE:
        return Diagnostic.error(
            f"{what[:1].upper()}{what[1:]} is encrypted",
            f"{path} is encrypted ({METHOD}, with a key derived from a passphrase) and {PASSPHRASE_ENV} is not "
            "set, so orch cannot read it. Nothing was read or written.",
            hint=f"set {PASSPHRASE_ENV} to the passphrase {name} was encrypted with")
    return Diagnostic.error(
        f"Cannot decrypt the {what}: wrong passphrase",
        f"{path} was encrypted with another passphrase than the one in {PASSPHRASE_ENV}. Nothing was read or "
        "written.",
        hint=f"set {PASSPHRASE_ENV} to the passphrase {name} was encrypted with")


__all__ = ["INVALID", "MAGIC", "NO_PASSPHRASE", "PASSPHRASE_ENV", "WRONG_PASSPHRASE", "Cipher", "EncryptionError",
           "decrypt_document", "encrypt_document", "is_encrypted", "locked_diagnostic", "passphrase_from_env",
           "reader", "writer"]

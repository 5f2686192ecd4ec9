"""RSA PKCS#1 v1.5 block encryption, the way WaaS providers chunk it.

ChainUp (RSA-2048, URL-safe Base64) and UU Wallet (RSA-1024, standard Base64) both "encrypt with
the private key": PKCS#1 v1.5 *type-1* blocks (the signature padding, no DigestInfo) that anyone
holding the public key can open, and both want answers encrypted to a public key with ordinary
*type-2* blocks. Long messages are cut into chunks of at most `k - 11` bytes, each padded to its
own `k`-byte block, and the blocks are concatenated before Base64.

Everything goes through OpenSSL. Public operations through `cryptography`: opening a type-1 block
is signature recovery with no digest algorithm (the same raw c^e mod n and strict 00 01 FF..FF 00
check). `cryptography` cannot *make* a hash-less type-1 block, so the private operations (ChainUp's
answers; the WaaS side for tests and demos) call the same libcrypto through ctypes
(`shared.libcrypto`: ~0.3 ms of CPU per RSA-2048 block instead of 7-16 ms of Python ints). Where
no libcrypto can be found they fall back to Python ints (CRT with blinding and a re-encryption
check), byte for byte the same blocks. A private operation still takes longer than a request
should hold an event loop: async callers run it in an executor (libcrypto runs without the GIL).
Unpadding is strict: a block that does not unpad is an `InvalidInput`, never garbage plaintext.
"""

from __future__ import annotations

import base64
import binascii
import functools
import math
import secrets
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from shared import libcrypto
from shared.errors import InvalidInput

_MIN_PS = 8  # PKCS#1 v1.5: at least eight padding bytes
_OVERHEAD = 3 + _MIN_PS  # 00 BT PS 00
_B64_CHARS = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/-_")
_B64_URLSAFE_TO_STD = bytes.maketrans(b"-_", b"+/")
_B64_IGNORED = b" \t\r\n"  # MIME encoders wrap lines; a stray newline must not fail a callback
_PKCS1 = padding.PKCS1v15()


# -- keys ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RsaPublic:
    """An RSA public key as the two numbers the arithmetic needs."""

    n: int
    e: int

    @property
    def size(self) -> int:
        """Block length `k` in bytes (128 for RSA-1024, 256 for RSA-2048)."""
        return (self.n.bit_length() + 7) // 8

    @property
    def max_chunk(self) -> int:
        """The largest plaintext chunk one block can carry (`k - 11`)."""
        return self.size - _OVERHEAD


@dataclass(frozen=True, slots=True, repr=False)
class RsaPrivate:
    """An RSA private key in CRT form; never printed."""

    public: RsaPublic
    d: int
    p: int
    q: int
    dp: int
    dq: int
    qinv: int

    def __repr__(self) -> str:
        return f"RsaPrivate(<{self.public.n.bit_length()}-bit, hidden>)"


def public_from_crypto(key: rsa.RSAPublicKey) -> RsaPublic:
    """Convert a `cryptography` RSA public key."""
    numbers = key.public_numbers()
    return RsaPublic(n=numbers.n, e=numbers.e)


def private_from_crypto(key: rsa.RSAPrivateKey) -> RsaPrivate:
    """Convert a `cryptography` RSA private key."""
    nums = key.private_numbers()
    return RsaPrivate(
        public=RsaPublic(n=nums.public_numbers.n, e=nums.public_numbers.e),
        d=nums.d,
        p=nums.p,
        q=nums.q,
        dp=nums.dmp1,
        dq=nums.dmq1,
        qinv=nums.iqmp,
    )


def load_public_key(data: bytes | str) -> RsaPublic:
    """Load an RSA public key from PEM (SPKI or PKCS#1) or bare Base64 DER.

    Providers hand keys out by e-mail, often as one Base64 line without the PEM armour, so both
    forms are accepted. Raises `ValueError` with a readable reason; the caller names the setting.
    """
    raw = data.encode() if isinstance(data, str) else data
    try:
        if b"-----BEGIN" in raw:
            key: object = serialization.load_pem_public_key(raw)
        else:
            key = serialization.load_der_public_key(_armour_free_der(raw))
    except (ValueError, TypeError, InvalidInput) as e:
        raise ValueError(f"not an RSA public key: {e}") from None
    if not isinstance(key, rsa.RSAPublicKey):
        raise ValueError(f"not an RSA public key: got {type(key).__name__}")
    return public_from_crypto(key)


def load_private_key(data: bytes | str) -> RsaPrivate:
    """Load an unencrypted RSA private key from PEM (PKCS#8 or PKCS#1) or bare Base64 DER (PKCS#8)."""
    raw = data.encode() if isinstance(data, str) else data
    try:
        if b"-----BEGIN" in raw:
            key: object = serialization.load_pem_private_key(raw, password=None)
        else:
            key = serialization.load_der_private_key(_armour_free_der(raw), password=None)
    except (ValueError, TypeError, InvalidInput) as e:
        raise ValueError(f"not an RSA private key: {e}") from None
    if not isinstance(key, rsa.RSAPrivateKey):
        raise ValueError(f"not an RSA private key: got {type(key).__name__}")
    return private_from_crypto(key)


def _armour_free_der(raw: bytes) -> bytes:
    return b64decode(raw, field="key")


# -- Base64 ----------------------------------------------------------------------------------


def b64decode(text: bytes | str, *, field: str = "data") -> bytes:
    """Decode Base64 in either alphabet, with or without `=` padding, ignoring line breaks.

    ChainUp sends URL-safe Base64 with the padding stripped, UU Wallet standard Base64 with it;
    both are accepted everywhere because accepting the other alphabet costs nothing and admits
    no second meaning. Raises `InvalidInput(field, ...)` on anything else.
    """
    if isinstance(text, str):
        if not text.isascii():
            raise InvalidInput(field, "not Base64: non-ASCII characters")
        text = text.encode("ascii")
    compact = text.translate(None, _B64_IGNORED).rstrip(b"=")
    if not compact:
        raise InvalidInput(field, "empty")
    if not _B64_CHARS.issuperset(compact):
        raise InvalidInput(field, "not Base64: unexpected characters")
    if len(compact) % 4 == 1:
        raise InvalidInput(field, "not Base64: truncated")
    std = compact.translate(_B64_URLSAFE_TO_STD)
    try:
        return base64.b64decode(std + b"=" * (-len(std) % 4), validate=True)
    except binascii.Error as e:  # pragma: no cover - the checks above leave nothing to reject
        raise InvalidInput(field, f"not Base64: {e}") from None


def b64encode(data: bytes, *, urlsafe: bool = False, padded: bool = True) -> str:
    """Encode as Base64: standard alphabet with padding unless told otherwise."""
    out = base64.urlsafe_b64encode(data) if urlsafe else base64.b64encode(data)
    return (out if padded else out.rstrip(b"=")).decode("ascii")


# -- block operations ------------------------------------------------------------------------


def public_decrypt(key: RsaPublic, ciphertext: bytes, *, field: str = "data") -> bytes:
    """Open type-1 blocks made with the private key ("private-key encryption"); strict unpadding."""
    public, blocks = _openssl_public(key), _blocks(key, ciphertext, field)
    try:
        return b"".join(public.recover_data_from_signature(block, _PKCS1, None) for block in blocks)
    except (InvalidSignature, ValueError):
        raise InvalidInput(field, "block does not unpad as PKCS#1 v1.5 type 1 (wrong key or corrupted)") from None


# Kept for callers written while both paths existed; there is one path now.
public_decrypt_openssl = public_decrypt


def public_encrypt(key: RsaPublic, plaintext: bytes, *, chunk_size: int | None = None) -> bytes:
    """Encrypt to the public key with type-2 blocks (random non-zero padding), `chunk_size` bytes per block."""
    public = _openssl_public(key)
    return b"".join(public.encrypt(chunk, _PKCS1) for chunk in _chunks(key, plaintext, chunk_size))


def private_encrypt(key: RsaPrivate, plaintext: bytes, *, chunk_size: int | None = None) -> bytes:
    """Make type-1 blocks with the private key, as a WaaS does for its callbacks and answers.

    ~0.3 ms of CPU per RSA-2048 block (4.5 ms for RSA-4096): from an event loop, call it in an executor.
    """
    chunks = _chunks(key.public, plaintext, chunk_size)
    native = _native(key)
    if native is None:
        return b"".join(_python_type1(key, chunk) for chunk in chunks)
    return b"".join(native.sign_type1(chunk) for chunk in chunks)


def private_decrypt(key: RsaPrivate, ciphertext: bytes, *, field: str = "data") -> bytes:
    """Open type-2 blocks with the private key.

    For tests, demos and tooling that check what we sent. Its error behaviour is a padding
    oracle, so never expose it to untrusted callers.
    """
    size, native = key.public.size, _native(key)
    # The bare private operation and our own unpadding, not OpenSSL's PKCS#1 decryption: since
    # 3.2 that answers a bad block with random bytes ("implicit rejection") instead of an error.
    blocks = _blocks(key.public, ciphertext, field)
    if native is None:
        opened = [_to_bytes(_private_op(key, int.from_bytes(block, "big")), size) for block in blocks]
    else:
        opened = [native.raw(block) for block in blocks]
    return b"".join(_unpad_type2(em, field) for em in opened)


@functools.lru_cache(maxsize=32)
def _native(key: RsaPrivate) -> libcrypto.PrivateKey | None:
    if not libcrypto.available():
        return None
    der = _crypto_private(key).private_bytes(
        serialization.Encoding.DER, serialization.PrivateFormat.TraditionalOpenSSL, serialization.NoEncryption()
    )
    return libcrypto.private_key(der, key.public.size)


def _crypto_private(key: RsaPrivate) -> rsa.RSAPrivateKey:
    public = rsa.RSAPublicNumbers(key.public.e, key.public.n)
    return rsa.RSAPrivateNumbers(key.p, key.q, key.d, key.dp, key.dq, key.qinv, public).private_key()


def _python_type1(key: RsaPrivate, chunk: bytes) -> bytes:
    """One type-1 block with Python ints: the fallback, and the reference the tests hold OpenSSL to."""
    size = key.public.size
    return _to_bytes(_private_op(key, int.from_bytes(_pad_type1(chunk, size), "big")), size)


@functools.lru_cache(maxsize=32)
def _openssl_public(key: RsaPublic) -> rsa.RSAPublicKey:
    return rsa.RSAPublicNumbers(key.e, key.n).public_key()


def _blocks(key: RsaPublic, ciphertext: bytes, field: str) -> list[bytes]:
    size = key.size
    if not ciphertext or len(ciphertext) % size:
        raise InvalidInput(field, f"ciphertext length {len(ciphertext)} is not a positive multiple of {size}")
    blocks = [ciphertext[i : i + size] for i in range(0, len(ciphertext), size)]
    if any(int.from_bytes(block, "big") >= key.n for block in blocks):
        raise InvalidInput(field, "ciphertext block is not below the modulus (wrong key?)")
    return blocks


def _chunks(key: RsaPublic, plaintext: bytes, chunk_size: int | None) -> list[bytes]:
    size = key.max_chunk if chunk_size is None else chunk_size
    if not 1 <= size <= key.max_chunk:
        raise ValueError(f"chunk_size must be 1..{key.max_chunk} for a {key.size}-byte key, got {size}")
    # An empty message still gets one block, so that the receiver sees a well-formed ciphertext.
    return [plaintext[i : i + size] for i in range(0, len(plaintext), size)] or [b""]


def _pad_type1(chunk: bytes, size: int) -> bytes:
    return b"\x00\x01" + b"\xff" * (size - 3 - len(chunk)) + b"\x00" + chunk


def _unpad_type2(em: bytes, field: str) -> bytes:
    # 00 02, at least eight non-zero random bytes, 00: the first zero after them ends the padding.
    sep = em.find(b"\x00", 2)
    if not (em[0] == 0 and em[1] == 2 and sep >= 2 + _MIN_PS):
        raise InvalidInput(field, "block does not unpad as PKCS#1 v1.5 type 2 (wrong key or corrupted)")
    return em[sep + 1 :]


def _private_op(key: RsaPrivate, c: int) -> int:
    n, e = key.public.n, key.public.e
    # Blinding keeps the timing of Python's pow() independent of the (possibly attacker-chosen) input.
    while True:
        r = secrets.randbelow(n - 2) + 2
        if math.gcd(r, n) == 1:
            break
    blinded = c * pow(r, e, n) % n
    m1 = pow(blinded, key.dp, key.p)
    m2 = pow(blinded, key.dq, key.q)
    m = (m2 + (key.qinv * (m1 - m2) % key.p) * key.q) * pow(r, -1, n) % n
    # A CRT fault would leak a factor of n in the output; check before anything leaves.
    if pow(m, e, n) != c:  # pragma: no cover - hardware/arithmetic fault only
        raise RuntimeError("RSA private operation failed its consistency check")
    return m


def _to_bytes(value: int, size: int) -> bytes:
    return value.to_bytes(size, "big")

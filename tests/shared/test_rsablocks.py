from __future__ import annotations

import base64
import contextlib
import hashlib
import secrets
from concurrent.futures import ThreadPoolExecutor
from functools import cache

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, padding, rsa
from hypothesis import given, settings
from hypothesis import strategies as st

from shared import libcrypto, rsablocks
from shared.errors import InvalidInput
from shared.rsablocks import (
    RsaPrivate,
    RsaPublic,
    b64decode,
    b64encode,
    load_private_key,
    load_public_key,
    private_decrypt,
    private_encrypt,
    private_from_crypto,
    public_decrypt,
    public_encrypt,
    public_from_crypto,
)

# DER prefix of a SHA-256 DigestInfo, to check our type-1 blocks against OpenSSL's signatures.
_SHA256_DIGEST_INFO = bytes.fromhex("3031300d060960864801650304020105000420")


@cache
def _crypto_key(bits: int, which: int = 0) -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=bits)


def _key(bits: int = 1024, which: int = 0) -> RsaPrivate:
    return private_from_crypto(_crypto_key(bits, which))


def _raw_private(key: RsaPrivate, em: bytes) -> bytes:
    """Apply the private operation to a hand-built encoded message (no padding by us)."""
    n = key.public.n
    return pow(int.from_bytes(em, "big"), key.d, n).to_bytes(key.public.size, "big")


def test_sizes_follow_the_modulus() -> None:
    assert (_key(1024).public.size, _key(1024).public.max_chunk) == (128, 117)
    assert (_key(2048).public.size, _key(2048).public.max_chunk) == (256, 245)


@settings(max_examples=40, deadline=None)
@given(message=st.binary(max_size=700), bits=st.sampled_from([1024, 2048]))
def test_type1_round_trip(message: bytes, bits: int) -> None:
    key = _key(bits)
    ciphertext = private_encrypt(key, message)
    assert len(ciphertext) % key.public.size == 0
    assert public_decrypt(key.public, ciphertext) == message


@settings(max_examples=40, deadline=None)
@given(message=st.binary(max_size=700), bits=st.sampled_from([1024, 2048]))
def test_type2_round_trip(message: bytes, bits: int) -> None:
    key = _key(bits)
    assert private_decrypt(key, public_encrypt(key.public, message)) == message


def test_chunking_uses_one_block_per_chunk() -> None:
    key = _key(2048)
    # ChainUp's Java helper cuts 234-byte chunks, Go 245: the receiver must not care.
    assert len(private_encrypt(key, b"x" * 468, chunk_size=234)) == 2 * 256
    assert len(private_encrypt(key, b"x" * 468)) == 2 * 256
    assert len(private_encrypt(key, b"x" * 491)) == 3 * 256
    assert public_decrypt(key.public, private_encrypt(key, b"y" * 500, chunk_size=234)) == b"y" * 500
    assert len(public_encrypt(_key(1024).public, b"z" * 117)) == 128
    assert len(public_encrypt(_key(1024).public, b"z" * 118)) == 256
    assert len(private_encrypt(key, b"")) == 256


@pytest.mark.parametrize("chunk_size", [0, 246, -1])
def test_chunk_size_out_of_range_is_a_programming_error(chunk_size: int) -> None:
    with pytest.raises(ValueError, match="chunk_size"):
        private_encrypt(_key(2048), b"abc", chunk_size=chunk_size)


def test_type2_padding_is_random() -> None:
    key = _key(1024)
    assert public_encrypt(key.public, b"same") != public_encrypt(key.public, b"same")


def test_libcrypto_is_found_here() -> None:
    # Without it every test below would pass on the Python fallback and prove nothing about OpenSSL.
    assert libcrypto.available()
    assert rsablocks._native(_key(1024)) is not None


@pytest.mark.parametrize(("bits", "examples"), [(1024, 40), (2048, 20), (4096, 4)])
def test_openssl_type1_blocks_equal_the_python_reference(bits: int, examples: int) -> None:
    key = _key(bits)

    # Type-1 padding is deterministic, so the two implementations must agree byte for byte.
    @settings(max_examples=examples, deadline=None)
    @given(message=st.binary(max_size=2 * key.public.max_chunk), chunk=st.integers(1, key.public.max_chunk))
    def check(message: bytes, chunk: int) -> None:
        pieces = [message[i : i + chunk] for i in range(0, len(message), chunk)] or [b""]
        reference = b"".join(rsablocks._python_type1(key, piece) for piece in pieces)
        assert private_encrypt(key, message, chunk_size=chunk) == reference

    check()


@pytest.mark.parametrize("bits", [1024, 2048, 4096])
def test_openssl_raw_private_operation_equals_python(bits: int) -> None:
    key = _key(bits)
    native = rsablocks._native(key)
    assert native is not None
    for _ in range(3):
        block = secrets.randbelow(key.public.n).to_bytes(key.public.size, "big")
        expected = rsablocks._private_op(key, int.from_bytes(block, "big")).to_bytes(key.public.size, "big")
        assert native.raw(block) == expected


def test_private_operations_are_safe_from_threads() -> None:
    # The gateway runs them in an executor: one shared EVP_PKEY, a context per call.
    key = _key(2048)
    messages = [f"answer {i}".encode() for i in range(64)]
    with ThreadPoolExecutor(8) as pool:
        blocks = list(pool.map(lambda m: private_encrypt(key, m), messages))
    assert blocks == [rsablocks._python_type1(key, m) for m in messages]


@pytest.mark.parametrize("bits", [1024, 2048, 4096])
def test_type1_blocks_interoperate_with_openssl(bits: int) -> None:
    crypto = _crypto_key(bits)
    key = private_from_crypto(crypto)
    digest = hashlib.sha256(b"hello").digest()
    signature = crypto.sign(b"hello", padding.PKCS1v15(), hashes.SHA256())
    assert public_decrypt(key.public, signature) == _SHA256_DIGEST_INFO + digest
    ours = private_encrypt(key, _SHA256_DIGEST_INFO + digest)
    crypto.public_key().verify(ours, b"hello", padding.PKCS1v15(), hashes.SHA256())


@pytest.mark.parametrize("bits", [1024, 2048, 4096])
def test_type2_blocks_interoperate_with_openssl(bits: int) -> None:
    crypto = _crypto_key(bits)
    key = private_from_crypto(crypto)
    assert crypto.decrypt(public_encrypt(key.public, b"to openssl"), padding.PKCS1v15()) == b"to openssl"
    assert private_decrypt(key, crypto.public_key().encrypt(b"from openssl", padding.PKCS1v15())) == b"from openssl"


def test_wrong_key_never_yields_plaintext() -> None:
    ciphertext = private_encrypt(_key(1024, 0), b'{"type":1}')
    with pytest.raises(InvalidInput, match=r"unpad|modulus"):
        public_decrypt(_key(1024, 1).public, ciphertext)


def test_a_flipped_bit_is_rejected() -> None:
    key = _key(1024)
    ciphertext = bytearray(private_encrypt(key, b"deposit"))
    ciphertext[40] ^= 0x01
    with pytest.raises(InvalidInput, match="unpad"):
        public_decrypt(key.public, bytes(ciphertext))


@pytest.mark.parametrize(
    ("em_hex", "ok"),
    [
        ("0001" + "ff" * 8 + "00" + "61" * 117, True),  # the shortest legal padding
        ("0001" + "ff" * 7 + "00" + "61" * 118, False),  # PS one byte short
        ("0001" + "ff" * 60 + "fe" + "ff" * 4 + "00" + "61" * 60, False),  # PS not all 0xff
        ("0001" + "ff" * 126, False),  # no separator
        ("0002" + "ff" * 60 + "00" + "61" * 65, False),  # type-2 block where type 1 is required
        ("0101" + "ff" * 60 + "00" + "61" * 65, False),  # leading byte not zero
    ],
)
def test_type1_unpadding_is_strict(em_hex: str, ok: bool) -> None:
    key = _key(1024)
    em = bytes.fromhex(em_hex)
    assert len(em) == 128
    block = _raw_private(key, em)
    if ok:
        assert public_decrypt(key.public, block) == b"a" * 117
    else:
        with pytest.raises(InvalidInput, match="type 1"):
            public_decrypt(key.public, block)


def test_type2_unpadding_is_strict() -> None:
    key = _key(1024)
    type1 = _raw_private(key, bytes.fromhex("0001" + "ff" * 60 + "00" + "61" * 65))
    with pytest.raises(InvalidInput, match="type 2"):
        # A type-1 block opened with the public operation is not what private_decrypt expects.
        private_decrypt(key, pow(int.from_bytes(type1, "big"), key.public.e, key.public.n).to_bytes(128, "big"))


@pytest.mark.parametrize("length", [0, 1, 127, 129, 255])
def test_ciphertext_must_be_whole_blocks(length: int) -> None:
    with pytest.raises(InvalidInput, match="multiple of 128") as info:
        public_decrypt(_key(1024).public, b"\x01" * length, field="body")
    assert info.value.field == "body"


def test_block_at_or_above_the_modulus_is_rejected() -> None:
    key = _key(1024)
    with pytest.raises(InvalidInput, match="modulus"):
        public_decrypt(key.public, key.public.n.to_bytes(128, "big"))
    with pytest.raises(InvalidInput, match="modulus"):
        public_decrypt(key.public, b"\xff" * 128)


@settings(max_examples=300, deadline=None)
@given(data=st.binary(max_size=600))
def test_arbitrary_bytes_only_raise_invalid_input(data: bytes) -> None:
    key = _key(1024)
    with contextlib.suppress(InvalidInput):
        public_decrypt(key.public, data)
    with contextlib.suppress(InvalidInput):
        private_decrypt(key, data)


@settings(max_examples=300, deadline=None)
@given(text=st.one_of(st.binary(max_size=300), st.text(max_size=300)))
def test_arbitrary_base64_input_only_raises_invalid_input(text: bytes | str) -> None:
    with contextlib.suppress(InvalidInput):
        b64decode(text)


@settings(max_examples=100, deadline=None)
@given(data=st.binary(min_size=1, max_size=300))
def test_base64_accepts_both_alphabets_with_or_without_padding(data: bytes) -> None:
    std = base64.b64encode(data).decode()
    url = base64.urlsafe_b64encode(data).decode()
    wrapped = "\r\n".join(std[i : i + 76] for i in range(0, len(std), 76))
    for text in (std, url, url.rstrip("="), std.rstrip("="), wrapped):
        assert b64decode(text) == data
    assert b64decode(b64encode(data, urlsafe=True, padded=False)) == data
    assert b64encode(data) == std


@pytest.mark.parametrize("text", ["", "====", "abc$", "a", "abcde", "ab=c", "é" * 4, "YWJj\x00"])
def test_base64_rejects_junk(text: str) -> None:
    with pytest.raises(InvalidInput):
        b64decode(text)


def test_load_public_key_accepts_pem_pkcs1_and_bare_der() -> None:
    public = _crypto_key(1024).public_key()
    expected = public_from_crypto(public)
    spki_pem = public.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    pkcs1_pem = public.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.PKCS1)
    der = public.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    for form in (spki_pem, pkcs1_pem, base64.b64encode(der), base64.b64encode(der).decode() + "\n"):
        assert load_public_key(form) == expected
    assert load_public_key(spki_pem) == RsaPublic(n=expected.n, e=65537)


def test_load_private_key_accepts_pem_and_bare_der() -> None:
    crypto = _crypto_key(1024)
    pem = crypto.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    der = crypto.private_bytes(
        serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    key = load_private_key(pem)
    assert key == load_private_key(base64.b64encode(der))
    assert public_decrypt(key.public, private_encrypt(key, b"ok")) == b"ok"
    assert "hidden" in repr(key) and str(key.d) not in repr(key)


@pytest.mark.parametrize("junk", [b"", b"not a key", b"-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n"])
def test_load_keys_reject_junk(junk: bytes) -> None:
    with pytest.raises(ValueError, match="not an RSA public key"):
        load_public_key(junk)
    with pytest.raises(ValueError, match="not an RSA private key"):
        load_private_key(junk)


def test_load_keys_reject_other_algorithms() -> None:
    ed = ed25519.Ed25519PrivateKey.generate()
    pub_pem = ed.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    priv_pem = ed.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    with pytest.raises(ValueError, match="Ed25519"):
        load_public_key(pub_pem)
    with pytest.raises(ValueError, match="Ed25519"):
        load_private_key(priv_pem)


def _reference_type1(em: bytes) -> bytes | None:
    """PKCS#1 v1.5 type-1 unpadding as RFC 8017 §8.2.2 / §9.2 describe it, written out plainly."""
    if em[:2] != b"\x00\x01":
        return None
    sep = em.find(b"\x00", 2)
    if sep < 10 or em[2:sep] != b"\xff" * (sep - 2):
        return None
    return em[sep + 1 :]


@settings(max_examples=300, deadline=None)
@given(
    head=st.sampled_from([b"\x00\x01", b"\x00\x02", b"\x00\x00", b"\x01\x01"]),
    ps=st.integers(min_value=0, max_value=20),
    filler=st.sampled_from([b"\xff", b"\xfe", b"\x00"]),
    tail=st.binary(min_size=100, max_size=100),
)
def test_type1_unpadding_agrees_with_the_rfc(head: bytes, ps: int, filler: bytes, tail: bytes) -> None:
    # Built to land near the edges: short/long padding runs, wrong fillers, a separator or not.
    key = _key(1024)
    em = (head + b"\xff" * ps + filler + tail)[:128].ljust(128, b"\x00")
    block = _raw_private(key, em)
    expected = _reference_type1(em)
    if expected is None:
        with pytest.raises(InvalidInput):
            public_decrypt(key.public, block)
    else:
        assert public_decrypt(key.public, block) == expected

"""Raw RSA block operations through the OpenSSL libcrypto CPython itself is linked against.

`cryptography` opens type-1 blocks and makes type-2 ones, but it cannot *make* a hash-less
type-1 block ("private-key encryption", what ChainUp wants as a withdrawal-confirmation answer)
nor give the raw private operation. OpenSSL can: `EVP_PKEY_sign` with PKCS#1 padding and no
digest writes exactly `00 01 FF..FF 00 || data` raised to d, with its own blinding and CRT fault
check, in ~0.3 ms of CPU for RSA-2048 against 7-16 ms for Python ints.

The library is the one `_hashlib`/`_ssl` already loaded (libcrypto.so.3 on Debian and the
python:*-slim images), found through /proc/self/maps where there is one; ctypes releases the GIL
during each call, so callers may run these in a thread. `available()` is False when no usable
libcrypto is found (an exotic build); `shared.rsablocks` then falls back to Python ints.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import functools
import logging
from pathlib import Path

logger = logging.getLogger(__name__)

_RSA_PKCS1_PADDING = 1
_RSA_NO_PADDING = 3
# OpenSSL 1.1 has EVP_PKEY_CTX_set_rsa_padding only as a macro over this control call.
_EVP_PKEY_RSA = 6
_EVP_PKEY_CTRL_RSA_PADDING = 0x1000 + 1
_SYMBOLS = (
    "d2i_AutoPrivateKey",
    "EVP_PKEY_free",
    "EVP_PKEY_CTX_new",
    "EVP_PKEY_CTX_free",
    "EVP_PKEY_CTX_ctrl",
    "EVP_PKEY_sign_init",
    "EVP_PKEY_sign",
    "EVP_PKEY_decrypt_init",
    "EVP_PKEY_decrypt",
)

_vp, _int, _size = ctypes.c_void_p, ctypes.c_int, ctypes.c_size_t


class OpensslError(RuntimeError):
    """libcrypto refused an operation on a key it had accepted (should not happen)."""


class PrivateKey:
    """An OpenSSL `EVP_PKEY` holding an RSA private key; freed with the object."""

    __slots__ = ("_lib", "_pkey", "size")

    def __init__(self, lib: ctypes.CDLL, der: bytes, size: int) -> None:
        buf = ctypes.create_string_buffer(der, len(der))
        cursor = _vp(ctypes.addressof(buf))
        pkey = lib.d2i_AutoPrivateKey(None, ctypes.byref(cursor), len(der))
        if not pkey:
            raise OpensslError("libcrypto did not accept the RSA private key")
        self._lib, self._pkey, self.size = lib, pkey, size

    def __del__(self) -> None:
        if getattr(self, "_pkey", None):
            self._lib.EVP_PKEY_free(self._pkey)

    def sign_type1(self, data: bytes) -> bytes:
        """One PKCS#1 v1.5 type-1 block of `data` (at most size-11 bytes): "private encrypt"."""
        return self._run("EVP_PKEY_sign", _RSA_PKCS1_PADDING, data)

    def raw(self, block: bytes) -> bytes:
        """The bare private operation on a `size`-byte block below the modulus (no unpadding)."""
        return self._run("EVP_PKEY_decrypt", _RSA_NO_PADDING, block)

    def _run(self, operation: str, pad: int, data: bytes) -> bytes:
        lib = self._lib
        ctx = lib.EVP_PKEY_CTX_new(self._pkey, None)
        if not ctx:
            raise OpensslError("EVP_PKEY_CTX_new failed")
        try:
            out = ctypes.create_string_buffer(self.size)
            out_len = _size(self.size)
            if getattr(lib, f"{operation}_init")(ctx) <= 0 or _set_padding(lib, ctx, pad) <= 0:
                raise OpensslError(f"{operation}: initialisation failed")
            if getattr(lib, operation)(ctx, out, ctypes.byref(out_len), data, len(data)) <= 0:
                raise OpensslError(f"{operation} failed")
        finally:
            lib.EVP_PKEY_CTX_free(ctx)
        return out.raw[: out_len.value]


def available() -> bool:
    """Whether a libcrypto with the EVP functions we need is loaded."""
    return _library() is not None


def private_key(der: bytes, size: int) -> PrivateKey | None:
    """Import a DER (PKCS#1 or PKCS#8) RSA private key whose blocks are `size` bytes; None
    when no libcrypto is available."""
    lib = _library()
    return PrivateKey(lib, der, size) if lib is not None else None


def _set_padding(lib: ctypes.CDLL, ctx: int, pad: int) -> int:
    # optype -1: whichever operation the context was initialised for.
    return int(lib.EVP_PKEY_CTX_ctrl(ctx, _EVP_PKEY_RSA, -1, _EVP_PKEY_CTRL_RSA_PADDING, pad, None))


@functools.cache
def _library() -> ctypes.CDLL | None:
    # Makes sure CPython's own libcrypto is mapped before we look (absent only without OpenSSL).
    with contextlib.suppress(ImportError):
        import _hashlib  # noqa: F401
    for candidate in (*_mapped_libcrypto(), ctypes.util.find_library("crypto"), "libcrypto.so.3"):
        if not candidate:
            continue
        try:
            lib = ctypes.CDLL(candidate)
        except OSError:
            continue
        if all(hasattr(lib, name) for name in _SYMBOLS):
            _declare(lib)
            return lib
    logger.warning("no usable OpenSSL libcrypto found: RSA private operations run in Python (slow)")
    return None


def _mapped_libcrypto() -> list[str]:
    try:
        maps = Path("/proc/self/maps").read_text()
    except OSError:
        return []
    paths = {line.split(maxsplit=5)[-1] for line in maps.splitlines() if "/libcrypto" in line}
    return sorted(p for p in paths if p.startswith("/"))


def _declare(lib: ctypes.CDLL) -> None:
    lib.d2i_AutoPrivateKey.restype = _vp
    lib.d2i_AutoPrivateKey.argtypes = [_vp, ctypes.POINTER(_vp), ctypes.c_long]
    lib.EVP_PKEY_free.restype = None
    lib.EVP_PKEY_free.argtypes = [_vp]
    lib.EVP_PKEY_CTX_new.restype = _vp
    lib.EVP_PKEY_CTX_new.argtypes = [_vp, _vp]
    lib.EVP_PKEY_CTX_free.restype = None
    lib.EVP_PKEY_CTX_free.argtypes = [_vp]
    lib.EVP_PKEY_CTX_ctrl.restype = _int
    lib.EVP_PKEY_CTX_ctrl.argtypes = [_vp, _int, _int, _int, _int, _vp]
    for name in ("EVP_PKEY_sign", "EVP_PKEY_decrypt"):
        getattr(lib, f"{name}_init").restype = _int
        getattr(lib, f"{name}_init").argtypes = [_vp]
        getattr(lib, name).restype = _int
        getattr(lib, name).argtypes = [_vp, ctypes.c_char_p, ctypes.POINTER(_size), ctypes.c_char_p, _size]

"""The signer process of a gateway process (`python -m gateway.signing_child`, started by
`gateway.signer`): reads length-prefixed frames on stdin, answers with RS256 signatures on stdout.

The first frame is the private key (PKCS#8 DER, over the pipe: never on disk or in argv), every
later one a JWS signing input; each gets one frame back, in order: the signature, or an empty
frame when signing failed. It exits when stdin closes (its gateway stopped or died).
"""

from __future__ import annotations

import os
import signal
import struct
import sys

from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.serialization import load_der_private_key

from shared.providers.cobo_jwt import rs256_signature

HEADER = struct.Struct(">I")


def frame(data: bytes) -> bytes:
    return HEADER.pack(len(data)) + data


def frames(buffer: bytearray) -> list[bytes]:
    """Take the complete frames off the front of `buffer`."""
    out = []
    while len(buffer) >= HEADER.size:
        (size,) = HEADER.unpack_from(buffer)
        if len(buffer) < HEADER.size + size:
            break
        out.append(bytes(buffer[HEADER.size : HEADER.size + size]))
        del buffer[: HEADER.size + size]
    return out


def serve(source: int, sink: int) -> None:
    """Sign what has arrived, answer it in one write, wait for more; until `source` closes.

    Answering what arrived together in one write means one wake-up of the gateway's loop per
    batch, not per signature: the loop writes the signing inputs of one iteration together.
    """
    buffer = bytearray()
    key: rsa.RSAPrivateKey | None = None
    while chunk := os.read(source, 1 << 16):
        buffer += chunk
        answers = []
        for data in frames(buffer):
            if key is None:
                key = _load(data)
                continue
            try:
                answers.append(frame(rs256_signature(data, key)))
            except ValueError:
                answers.append(frame(b""))  # the gateway signs that one itself
        write_all(sink, b"".join(answers))


def _load(der: bytes) -> rsa.RSAPrivateKey:
    key = load_der_private_key(der, password=None)
    if not isinstance(key, rsa.RSAPrivateKey):
        raise SystemExit("gateway.signing_child: not an RSA private key")
    return key


def write_all(sink: int, data: bytes) -> None:
    """Write all of `data` to the blocking descriptor `sink` (os.write may take only part)."""
    view = memoryview(data)
    while view:
        view = view[os.write(sink, view) :]


if __name__ == "__main__":
    # Ctrl-C in a terminal reaches the whole process group: the gateway decides when this ends
    # (it closes stdin), so that the answers already given to it are still signed.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    serve(sys.stdin.fileno(), sys.stdout.fileno())

"""Address normalisation: the one place that decides when two spellings are the same address.

Policy lists, expected orders and decision requests all go through `normalize_address`, so a
deny list cannot be dodged by re-casing an address.
"""

from __future__ import annotations

import re

# 0x-prefixed hex (EVM, and the hex forms of Aptos/Sui/Starknet) is case-insensitive: EIP-55 mixed
# case is only a checksum. Anything else (base58, bech32 with its own rules, TRON base58) is kept
# as given, because re-casing base58 changes the address.
_HEX_ADDRESS = re.compile(r"0[xX][0-9a-fA-F]+")


def normalize_address(address: str) -> str:
    """The canonical spelling of `address`: trimmed, and lower-cased when it is 0x-hex."""
    trimmed = address.strip()
    if _HEX_ADDRESS.fullmatch(trimmed):
        return "0x" + trimmed[2:].lower()
    return trimmed


def normalize_symbol(value: str) -> str:
    """The canonical spelling of a chain id, asset symbol, curve or protocol name: upper-case.

    A 0x contract address used as an asset is normalised as an address instead, so it compares
    equal to the same contract written elsewhere.
    """
    trimmed = value.strip()
    if trimmed[:2] in ("0x", "0X") and _HEX_ADDRESS.fullmatch(trimmed):
        return "0x" + trimmed[2:].lower()
    return trimmed.upper()

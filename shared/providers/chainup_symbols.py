"""ChainUp coin symbols: which chain and which asset a bare `symbol` such as `USDTERC20` names.

Both ChainUp protocols callgate decides for name a transfer by ChainUp's coin symbol alone: the
MPC co-signer's withdrawal callback and the Custody WaaS V2 withdrawal second confirmation
(protocols/chainup_wyre.md §1.2, §2A). Policies and registered orders speak of a chain and an
asset, as for every other provider, so both codecs split the symbol here, the same way.
"""

from __future__ import annotations

from collections.abc import Mapping

# A ChainUp `symbol` names a coin uniquely across chains: a native coin by its own symbol (`ETH`,
# `TRX`), a token by its name followed by its chain's token standard (`USDTERC20`). ChainUp's MPC
# API docs (coin list) give USDTERC20 `base_symbol` ETH and `symbol_alias` USDT, and the Web3
# callback's `main_chain_symbol` names chains with the same symbols (`ETH`, `HECO`).
# [I] TRC20 -> TRX (Tron, whose native coin ChainUp calls TRX) and BEP20 -> BSC (the coin list's
# main-chain symbol for BNB Smart Chain) are inferred; protocols/chainup_wyre.md states neither.
TOKEN_STANDARDS: Mapping[str, str] = {"ERC20": "ETH", "TRC20": "TRX", "BEP20": "BSC"}


def chain_and_asset(symbol: str, main_chain_symbol: str | None = None) -> tuple[str, str]:
    """The chain and the asset a ChainUp coin `symbol` names: `USDTERC20` is (ETH, USDT), `ETH` is
    (ETH, ETH). `main_chain_symbol`, when the callback carries one, names the chain. A symbol that
    ends in no known token standard is a native coin or one we cannot split: it is the asset,
    on `main_chain_symbol` or on a chain of its own name. Never refused for that alone."""
    for standard, chain in TOKEN_STANDARDS.items():
        token = symbol.removesuffix(standard)
        if token and token != symbol:
            return main_chain_symbol or chain, token
    return main_chain_symbol or symbol, symbol

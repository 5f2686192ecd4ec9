"""Settings: read once from the environment in each entry point and passed down explicitly.

Secrets have no defaults, may also be given as `<NAME>_FILE` (the Docker/Kubernetes secrets
convention) and are never logged: `Settings.__repr__` hides them. A provider whose required
settings are absent is disabled (its sub-settings are None); one whose settings are present but
wrong stops start-up with a `ConfigError` naming the variable.
"""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from urllib.parse import urlsplit

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa

from shared import rsablocks
from shared.errors import ConfigError
from shared.notify.schedule import DeliveryPolicy
from shared.risk.checks import RiskConfig, VelocityLimit
from shared.waas.cobo_auth import ENVIRONMENTS, CoboEnvironment, load_api_secret, load_public_key, public_key_hex
from shared.waas.cobo_client import ClientOptions

Env = Mapping[str, str]

DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"
DEFAULT_DATABASE_URL = "postgresql://postgres@127.0.0.1:5432/callgate"


# -- typed readers ---------------------------------------------------------------------------


def _str(env: Env, name: str, default: str) -> str:
    value = env.get(name, "").strip()
    return value or default


def _int(env: Env, name: str, default: int, *, minimum: int = 0, maximum: int | None = None) -> int:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(name, f"expected an integer, got {raw!r}") from None
    if value < minimum or (maximum is not None and value > maximum):
        raise ConfigError(name, f"{value} is out of range [{minimum}, {maximum if maximum is not None else '∞'}]")
    return value


def _float(env: Env, name: str, default: float, *, minimum: float = 0.0) -> float:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(name, f"expected a number, got {raw!r}") from None
    if value < minimum:
        raise ConfigError(name, f"{value} is below {minimum}")
    return value


def _bool(env: Env, name: str, default: bool) -> bool:
    raw = env.get(name, "").strip().lower()
    if not raw:
        return default
    if raw in ("true", "1"):
        return True
    if raw in ("false", "0"):
        return False
    raise ConfigError(name, f"expected true/false/1/0, got {raw!r}")


def _list(env: Env, name: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in env.get(name, "").split(",") if part.strip())


def _secret(env: Env, name: str) -> str | None:
    """A secret from `NAME` or from the file named by `NAME_FILE`; None when neither is set."""
    value = env.get(name, "").strip()
    path = env.get(f"{name}_FILE", "").strip()
    if value and path:
        raise ConfigError(name, f"set either {name} or {name}_FILE, not both")
    if path:
        return _read_file(f"{name}_FILE", path).decode().strip() or None
    return value or None


def _secret_list(env: Env, name: str) -> tuple[str, ...]:
    raw = _secret(env, name) or ""
    return tuple(part.strip() for part in raw.split(",") if part.strip())


def _read_file(name: str, path: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as e:
        raise ConfigError(name, f"cannot read {path}: {e.strerror}") from None


def _pem_file(env: Env, name: str) -> bytes | None:
    path = env.get(name, "").strip()
    return _read_file(name, path) if path else None


def load_rsa_public_key(name: str, pem: bytes) -> rsa.RSAPublicKey:
    """Parse an RSA public key (SPKI or PKCS#1 PEM); `name` is the variable it came from."""
    try:
        key = serialization.load_pem_public_key(pem)
    except ValueError:
        raise ConfigError(name, "not a PEM RSA public key") from None
    if not isinstance(key, rsa.RSAPublicKey):
        raise ConfigError(name, "the PEM key is not an RSA key")
    return key


def load_rsa_private_key(name: str, pem: bytes) -> rsa.RSAPrivateKey:
    """Parse an unencrypted RSA private key (PKCS#1 or PKCS#8 PEM)."""
    try:
        key = serialization.load_pem_private_key(pem, password=None)
    except (ValueError, TypeError):
        raise ConfigError(name, "not an unencrypted PEM RSA private key") from None
    if not isinstance(key, rsa.RSAPrivateKey):
        raise ConfigError(name, "the PEM key is not an RSA key")
    return key


def _rsa_public(env: Env, name: str) -> rsa.RSAPublicKey | None:
    pem = _pem_file(env, name)
    return load_rsa_public_key(name, pem) if pem is not None else None


def _rsa_private(env: Env, name: str) -> rsa.RSAPrivateKey | None:
    pem = _pem_file(env, name)
    return load_rsa_private_key(name, pem) if pem is not None else None


def _ed25519_public_hex(env: Env, name: str) -> ed25519.Ed25519PublicKey | None:
    raw = env.get(name, "").strip()
    if not raw:
        return None
    try:
        return ed25519.Ed25519PublicKey.from_public_bytes(bytes.fromhex(raw))
    except ValueError:
        raise ConfigError(name, "expected 32 bytes of hex (an Ed25519 public key)") from None


def _redis_url(env: Env, name: str, default: str) -> str:
    url = _str(env, name, default)
    parts = urlsplit(url)
    if parts.scheme not in ("redis", "rediss", "unix"):
        raise ConfigError(name, f"unsupported scheme {parts.scheme!r} (redis://, rediss:// or unix://)")
    if parts.scheme != "unix" and not parts.hostname:
        raise ConfigError(name, "missing host")
    return url


def _database_url(env: Env, name: str, default: str) -> str:
    url = _str(env, name, default)
    parts = urlsplit(url)
    if parts.scheme not in ("postgresql", "postgres"):
        raise ConfigError(name, f"unsupported scheme {parts.scheme!r} (postgresql://)")
    if not parts.path.strip("/"):
        raise ConfigError(name, "missing database name")
    return url


# -- provider sections (one per provider; None = disabled) ------------------------------------


@dataclass(frozen=True, slots=True)
class WyreSettings:
    path_token: str = field(repr=False)
    signing_secret: str | None = field(default=None, repr=False)


def _wyre(env: Env) -> WyreSettings | None:
    token = _secret(env, "CALLGATE_WYRE_PATH_TOKEN")
    if token is None:
        return None
    if len(token) < 16:
        raise ConfigError("CALLGATE_WYRE_PATH_TOKEN", "must be at least 16 characters (it is a secret)")
    return WyreSettings(path_token=token, signing_secret=_secret(env, "CALLGATE_WYRE_SIGNING_SECRET"))


# >>> cobo_tss settings (owned by the Cobo TSS provider)


SIGNERS = ("process", "thread", "loop")


@dataclass(frozen=True, slots=True)
class CoboTssSettings:
    """Cobo TSS Node callback server v2: both keys are required to enable it."""

    node_public_key: rsa.RSAPublicKey = field(repr=False)  # verifies the node's request tokens
    private_key: rsa.RSAPrivateKey = field(repr=False)  # signs our answers
    event_public_key: rsa.RSAPublicKey | None = field(default=None, repr=False)  # None: /v2/event off
    check_path: str = "/cobo/tss-node/v2/check"
    event_path: str = "/cobo/tss-node/v2/event"
    issuer: str = "callgate"
    response_ttl_minutes: float = 2.0
    token_leeway_seconds: float = 30.0
    # Where answers are signed: "process" (a signer process beside each gateway process),
    # "thread" or "loop" (on the event loop); see gateway/signer.py.
    signer: str = "process"


def _cobo_tss(env: Env) -> CoboTssSettings | None:
    node_var, ours_var = "CALLGATE_COBO_TSS_NODE_PUBLIC_KEY_FILE", "CALLGATE_COBO_TSS_PRIVATE_KEY_FILE"
    node, ours = _rsa_public(env, node_var), _rsa_private(env, ours_var)
    if node is None and ours is None:
        return None
    if node is None or ours is None:
        raise ConfigError(node_var if node is None else ours_var, f"{node_var} and {ours_var} go together")
    paths = {}
    for name, default in (("CHECK", "/cobo/tss-node/v2/check"), ("EVENT", "/cobo/tss-node/v2/event")):
        paths[name] = _str(env, f"CALLGATE_COBO_TSS_{name}_PATH", default)
        if not paths[name].startswith("/"):
            raise ConfigError(f"CALLGATE_COBO_TSS_{name}_PATH", "must start with /")
    return CoboTssSettings(
        node_public_key=node,
        private_key=ours,
        event_public_key=_rsa_public(env, "CALLGATE_COBO_TSS_EVENT_PUBLIC_KEY_FILE"),
        check_path=paths["CHECK"],
        event_path=paths["EVENT"],
        issuer=_str(env, "CALLGATE_COBO_TSS_ISSUER", "callgate"),
        response_ttl_minutes=_float(env, "CALLGATE_COBO_TSS_RESPONSE_TTL_MINUTES", 2.0, minimum=0.5),
        token_leeway_seconds=_float(env, "CALLGATE_COBO_TSS_TOKEN_LEEWAY_SECONDS", 30.0),
        signer=_signer(env),
    )


def _signer(env: Env) -> str:
    signer = _str(env, "CALLGATE_COBO_TSS_SIGNER", "process")
    if signer not in SIGNERS:
        raise ConfigError("CALLGATE_COBO_TSS_SIGNER", f"{signer!r} is not one of {', '.join(SIGNERS)}")
    # The older switch predates CALLGATE_COBO_TSS_SIGNER and still means what it did: true is "thread".
    return "thread" if _bool(env, "CALLGATE_COBO_TSS_SIGN_IN_THREAD", False) else signer


# <<< cobo_tss settings


# >>> cobo_ucw settings (owned by the Cobo UCW / WaaS provider)
@dataclass(frozen=True, slots=True)
class CoboWaasSettings:
    """Cobo WaaS 2.0: API access for reconciliation, and the key that signs answers and webhooks."""

    base_url: str
    api_secret: ed25519.Ed25519PrivateKey = field(repr=False)
    response_public_key: ed25519.Ed25519PublicKey = field(repr=False)
    client: ClientOptions = field(default_factory=ClientOptions)


@dataclass(frozen=True, slots=True)
class CoboUcwSettings:
    """UCW TSS request callbacks; they need `CoboWaasSettings` too (the WaaS state is the truth)."""

    api_keys: tuple[str, ...] = field(repr=False)
    # How long a callback may wait for a freshly reconciled state before answering (0: never wait).
    wait_ms: int = 0
    # Re-checks of a TSS request WaaS has not finished, then give up (and judge the report).
    recheck_backoff_s: tuple[float, ...] = (2, 5, 10, 30, 60, 120, 300, 600, 1800, 3600)
    horizon_s: int = 24 * 3600


def _cobo_waas(env: Env) -> CoboWaasSettings | None:
    secret = _secret(env, "CALLGATE_COBO_WAAS_API_SECRET")
    if secret is None:
        return None
    try:
        key = load_api_secret(secret)
    except ValueError:
        raise ConfigError("CALLGATE_COBO_WAAS_API_SECRET", "expected 64 hex characters (Ed25519 seed)") from None
    api_key = env.get("CALLGATE_COBO_WAAS_API_KEY", "").strip().lower()
    if api_key and api_key != public_key_hex(key):
        raise ConfigError("CALLGATE_COBO_WAAS_API_KEY", "is not the public key of CALLGATE_COBO_WAAS_API_SECRET")
    base_url = _str(env, "CALLGATE_COBO_WAAS_BASE_URL", ENVIRONMENTS[CoboEnvironment.DEV].base_url).rstrip("/")
    if urlsplit(base_url).scheme not in ("https", "http") or not urlsplit(base_url).hostname:
        raise ConfigError("CALLGATE_COBO_WAAS_BASE_URL", "expected an http(s) URL such as https://api.cobo.com/v2")
    # The three public environments have known keys; anything else (a proxy, a stand-in) must say.
    known = {info.base_url: info.response_public_key for info in ENVIRONMENTS.values()}
    response_key = _ed25519_public_hex(env, "CALLGATE_COBO_WAAS_RESPONSE_PUBLIC_KEY")
    if response_key is None and base_url not in known:
        raise ConfigError("CALLGATE_COBO_WAAS_RESPONSE_PUBLIC_KEY", f"required for {base_url}")
    client = ClientOptions(
        timeout_s=_float(env, "CALLGATE_COBO_WAAS_TIMEOUT_SECONDS", 10.0, minimum=0.1),
        max_attempts=_int(env, "CALLGATE_COBO_WAAS_MAX_ATTEMPTS", 4, minimum=1, maximum=20),
        max_concurrency=_int(env, "CALLGATE_COBO_WAAS_MAX_CONCURRENCY", 8, minimum=1),
        rate_per_s=_float(env, "CALLGATE_COBO_WAAS_RATE_PER_SECOND", 20.0, minimum=0.1),
    )
    return CoboWaasSettings(base_url, key, response_key or load_public_key(known[base_url]), client)


def _cobo_ucw(env: Env) -> CoboUcwSettings | None:
    keys = _secret_list(env, "CALLGATE_UCW_API_KEYS")
    if not keys:
        return None
    if any(len(k) < 16 for k in keys):
        raise ConfigError("CALLGATE_UCW_API_KEYS", "every key must be at least 16 characters (they are secrets)")
    if _secret(env, "CALLGATE_COBO_WAAS_API_SECRET") is None:
        raise ConfigError("CALLGATE_COBO_WAAS_API_SECRET", "required when CALLGATE_UCW_API_KEYS is set")
    return CoboUcwSettings(
        api_keys=keys,
        wait_ms=_int(env, "CALLGATE_UCW_WAIT_MS", 0, minimum=0, maximum=10_000),
        horizon_s=_int(env, "CALLGATE_UCW_RECHECK_HORIZON_SECONDS", 24 * 3600, minimum=60),
    )


# <<< cobo_ucw settings

# >>> chainup settings (owned by the ChainUp provider)
IpNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(frozen=True, slots=True)
class ChainupCosignerSettings:
    """MPC Co-Signer approval callbacks. Their JSON is neither signed nor encrypted, so the shared
    token and the source allowlist are the only authentication; either may be left empty."""

    token: str | None = field(default=None, repr=False)
    allowed_networks: tuple[IpNetwork, ...] = ()  # empty: any source address
    app_id: str | None = None  # checked by the co-signer's `verify_public_hash` self-check
    client_system_public_key_pem: str | None = None  # the keys that self-check hashes
    verify_sign_public_key_pem: str | None = None
    max_body_bytes: int = 64 * 1024


@dataclass(frozen=True, slots=True)
class ChainupWaasSettings:
    """ChainUp Custody WaaS V2 (and MPC) notifications and the withdrawal second confirmation."""

    app_id: str
    public_key: rsablocks.RsaPublic = field(repr=False)  # ChainUp's `rsa_wallet_pub`: opens `data`
    merchant_private_key: rsablocks.RsaPrivate | None = field(default=None, repr=False)  # None: never confirm
    # A notification is about 2 KiB; the cap bounds the RSA work one request can cause.
    max_body_bytes: int = 64 * 1024
    # `callgate demo` only: the private half of a *test* ChainUp key pair, to play ChainUp.
    demo_private_key_file: str | None = None


def _networks(env: Env, name: str) -> tuple[IpNetwork, ...]:
    try:
        return tuple(ipaddress.ip_network(item, strict=False) for item in _list(env, name))
    except ValueError as e:
        raise ConfigError(name, f"expected comma-separated addresses or CIDR networks: {e}") from None


def _pem_text(env: Env, name: str) -> str | None:
    pem = _pem_file(env, name)
    if pem is None:
        return None
    load_rsa_public_key(name, pem)  # fail at start-up, not at the co-signer's self-check
    return pem.decode()


def _chainup_cosigner(env: Env) -> ChainupCosignerSettings | None:
    token = _secret(env, "CALLGATE_CHAINUP_COSIGNER_TOKEN")
    networks = _networks(env, "CALLGATE_CHAINUP_COSIGNER_ALLOWED_IPS")
    if not _bool(env, "CALLGATE_CHAINUP_COSIGNER_ENABLED", token is not None or bool(networks)):
        return None
    if token is not None and len(token) < 16:
        raise ConfigError("CALLGATE_CHAINUP_COSIGNER_TOKEN", "must be at least 16 characters (it is a secret)")
    return ChainupCosignerSettings(
        token=token,
        allowed_networks=networks,
        app_id=_str(env, "CALLGATE_CHAINUP_APP_ID", "") or None,
        client_system_public_key_pem=_pem_text(env, "CALLGATE_CHAINUP_COSIGNER_CLIENT_PUBLIC_KEY_FILE"),
        verify_sign_public_key_pem=_pem_text(env, "CALLGATE_CHAINUP_COSIGNER_VERIFY_SIGN_PUBLIC_KEY_FILE"),
        max_body_bytes=_int(env, "CALLGATE_CHAINUP_MAX_BODY_BYTES", 64 * 1024, minimum=1024),
    )


def _chainup_waas(env: Env) -> ChainupWaasSettings | None:
    app_id = _str(env, "CALLGATE_CHAINUP_APP_ID", "")
    pem = _pem_file(env, "CALLGATE_CHAINUP_PUBLIC_KEY_FILE")
    if pem is None:
        return None  # an app id alone may serve the co-signer's self-check
    if not app_id:
        raise ConfigError("CALLGATE_CHAINUP_APP_ID", "required when CALLGATE_CHAINUP_PUBLIC_KEY_FILE is set")
    try:
        public_key = rsablocks.load_public_key(pem)  # PEM or the bare Base64 DER line
    except ValueError as e:
        raise ConfigError("CALLGATE_CHAINUP_PUBLIC_KEY_FILE", str(e)) from None
    if public_key.n.bit_length() < 2048:
        raise ConfigError("CALLGATE_CHAINUP_PUBLIC_KEY_FILE", "ChainUp keys are RSA-2048; this one is shorter")
    private_pem = _pem_file(env, "CALLGATE_CHAINUP_MERCHANT_PRIVATE_KEY_FILE")
    try:
        private_key = rsablocks.load_private_key(private_pem) if private_pem is not None else None
    except ValueError as e:
        raise ConfigError("CALLGATE_CHAINUP_MERCHANT_PRIVATE_KEY_FILE", str(e)) from None
    return ChainupWaasSettings(
        app_id=app_id,
        public_key=public_key,
        merchant_private_key=private_key,
        max_body_bytes=_int(env, "CALLGATE_CHAINUP_MAX_BODY_BYTES", 64 * 1024, minimum=1024),
        demo_private_key_file=_chainup_demo_key(env, public_key),
    )


def _chainup_demo_key(env: Env, public_key: rsablocks.RsaPublic) -> str | None:
    name = "CALLGATE_CHAINUP_DEMO_PRIVATE_KEY_FILE"
    pem = _pem_file(env, name)
    try:
        if pem is not None and rsablocks.load_private_key(pem).public != public_key:
            raise ConfigError(name, "is not the private half of CALLGATE_CHAINUP_PUBLIC_KEY_FILE")
    except ValueError as e:
        raise ConfigError(name, str(e)) from None
    return None if pem is None else env[name].strip()


# <<< chainup settings


# >>> uuwallet settings (owned by the UU Wallet provider)
@dataclass(frozen=True, slots=True)
class UuWalletSettings:
    """UU Wallet WaaS callbacks: accepted `X-API-KEY` values (several during a rotation) and the
    WaaS RSA public key, which opens every callback and encrypts every answer."""

    api_keys: tuple[str, ...] = field(repr=False)
    public_key: rsablocks.RsaPublic = field(repr=False)
    # A real callback is about 1 KiB; the cap bounds the RSA work an API-key holder can cause.
    max_body_bytes: int = 16 * 1024
    # The private half of a *test* WaaS key pair, for `callgate demo` only (it plays the WaaS).
    demo_private_key_file: str | None = None


def _uuwallet(env: Env) -> UuWalletSettings | None:
    keys = _secret_list(env, "CALLGATE_UUWALLET_API_KEYS")
    pem = _pem_file(env, "CALLGATE_UUWALLET_PUBLIC_KEY_FILE")
    if not keys and pem is None:
        return None
    if not keys:
        raise ConfigError("CALLGATE_UUWALLET_API_KEYS", "required when CALLGATE_UUWALLET_PUBLIC_KEY_FILE is set")
    if pem is None:
        raise ConfigError("CALLGATE_UUWALLET_PUBLIC_KEY_FILE", "required when CALLGATE_UUWALLET_API_KEYS is set")
    if any(len(k) < 16 for k in keys):
        raise ConfigError("CALLGATE_UUWALLET_API_KEYS", "every key must be at least 16 characters (they are secrets)")
    try:
        # PEM or the bare Base64 DER line the WaaS e-mails out.
        public_key = rsablocks.load_public_key(pem)
    except ValueError as e:
        raise ConfigError("CALLGATE_UUWALLET_PUBLIC_KEY_FILE", str(e)) from None
    if public_key.n.bit_length() < 1024:
        raise ConfigError("CALLGATE_UUWALLET_PUBLIC_KEY_FILE", "the RSA key is shorter than 1024 bits")
    return UuWalletSettings(
        api_keys=keys,
        public_key=public_key,
        max_body_bytes=_int(env, "CALLGATE_UUWALLET_MAX_BODY_BYTES", 16 * 1024, minimum=1024),
        demo_private_key_file=_uuwallet_demo_key(env, public_key),
    )


def _uuwallet_demo_key(env: Env, public_key: rsablocks.RsaPublic) -> str | None:
    name = "CALLGATE_UUWALLET_DEMO_PRIVATE_KEY_FILE"
    pem = _pem_file(env, name)
    if pem is None:
        return None
    try:
        private = rsablocks.load_private_key(pem)
    except ValueError as e:
        raise ConfigError(name, str(e)) from None
    if private.public != public_key:
        raise ConfigError(name, "is not the private half of CALLGATE_UUWALLET_PUBLIC_KEY_FILE")
    return env[name].strip()


# <<< uuwallet settings


@dataclass(frozen=True, slots=True)
class ProviderSettings:
    """One optional section per provider; a provider with None here is disabled (404)."""

    wyre: WyreSettings | None = None
    # >>> provider fields (one line per provider, in the order above)
    cobo_tss: CoboTssSettings | None = None
    cobo_waas: CoboWaasSettings | None = None
    cobo_ucw: CoboUcwSettings | None = None
    uuwallet: UuWalletSettings | None = None
    chainup_cosigner: ChainupCosignerSettings | None = None
    chainup_waas: ChainupWaasSettings | None = None
    # <<< provider fields


def _providers(env: Env) -> ProviderSettings:
    return ProviderSettings(
        wyre=_wyre(env),
        # >>> provider loaders
        cobo_tss=_cobo_tss(env),
        cobo_waas=_cobo_waas(env),
        cobo_ucw=_cobo_ucw(env),
        uuwallet=_uuwallet(env),
        chainup_cosigner=_chainup_cosigner(env),
        chainup_waas=_chainup_waas(env),
        # <<< provider loaders
    )


# -- workers: delivery and risk (docs/operations.md, "Configuration") --------------------------


def _seconds_list(env: Env, name: str, default: tuple[float, ...]) -> tuple[float, ...]:
    parts = _list(env, name)
    try:
        values = tuple(float(p) for p in parts)
    except ValueError:
        raise ConfigError(name, "expected comma-separated seconds, e.g. 5,300,1800") from None
    if any(v <= 0 for v in values):
        raise ConfigError(name, "every delay must be above 0")
    return values or default


def _delivery(env: Env) -> DeliveryPolicy:
    d = DeliveryPolicy()
    return DeliveryPolicy(
        schedule_s=_seconds_list(env, "CALLGATE_DELIVERY_SCHEDULE_SECONDS", d.schedule_s),
        jitter=_float(env, "CALLGATE_DELIVERY_JITTER", d.jitter),
        timeout_s=_float(env, "CALLGATE_DELIVERY_TIMEOUT_SECONDS", d.timeout_s, minimum=0.1),
        connect_timeout_s=_float(env, "CALLGATE_DELIVERY_CONNECT_TIMEOUT_SECONDS", d.connect_timeout_s, minimum=0.1),
        breaker_threshold=_int(env, "CALLGATE_DELIVERY_BREAKER_THRESHOLD", d.breaker_threshold, minimum=1),
        breaker_cooldown_s=_float(env, "CALLGATE_DELIVERY_BREAKER_COOLDOWN_SECONDS", d.breaker_cooldown_s, minimum=1),
        max_inflight=_int(env, "CALLGATE_DELIVERY_MAX_INFLIGHT", d.max_inflight, minimum=1),
    )


def _velocity(env: Env, name: str, default: tuple[VelocityLimit, ...]) -> tuple[VelocityLimit, ...]:
    """`window_s:max_count[:max_amount]`, comma-separated: `60:30,3600:500:100000`."""
    limits = []
    for part in _list(env, name):
        fields = part.split(":")
        try:
            if len(fields) not in (2, 3):
                raise ValueError
            amount = Decimal(fields[2]) if len(fields) == 3 else None
            limits.append(VelocityLimit(int(fields[0]), int(fields[1]), amount))
        except (ValueError, ArithmeticError):
            raise ConfigError(name, f"expected window_s:max_count[:max_amount], got {part!r}") from None
        if limits[-1].window_s <= 0 or limits[-1].max_count < 0:
            raise ConfigError(name, f"window and count must be positive, got {part!r}")
    return tuple(limits) or default


def _amounts(env: Env, name: str) -> dict[str, Decimal]:
    """`ASSET=amount`, comma-separated (`*` for every other asset): `BTC=5,USDT=250000,*=100000`."""
    out: dict[str, Decimal] = {}
    for part in _list(env, name):
        asset, _, amount = part.partition("=")
        try:
            out[asset.strip().upper()] = Decimal(amount.strip())
        except ArithmeticError:
            raise ConfigError(name, f"expected ASSET=amount, got {part!r}") from None
    return out


def _risk(env: Env) -> RiskConfig:
    r = RiskConfig()
    return RiskConfig(
        velocity=_velocity(env, "CALLGATE_RISK_VELOCITY", r.velocity),
        deny_counterparties=frozenset(_list(env, "CALLGATE_RISK_DENY_COUNTERPARTIES")),
        large_amounts=_amounts(env, "CALLGATE_RISK_LARGE_AMOUNTS"),
        kyt_alert_level=_int(env, "CALLGATE_RISK_KYT_ALERT_LEVEL", r.kyt_alert_level, maximum=100),
        kyt_freeze_level=_int(env, "CALLGATE_RISK_KYT_FREEZE_LEVEL", r.kyt_freeze_level, maximum=100),
        reject_window_s=_int(env, "CALLGATE_RISK_REJECT_WINDOW_SECONDS", r.reject_window_s, minimum=1),
        rejects_to_freeze=_int(env, "CALLGATE_RISK_REJECTS_TO_FREEZE", r.rejects_to_freeze, minimum=1),
    )


# -- the whole -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Settings:
    redis_url: str = DEFAULT_REDIS_URL
    database_url: str = DEFAULT_DATABASE_URL
    host: str = "127.0.0.1"
    port: int = 8080
    worker_metrics_port: int = 9091
    admin_token: str | None = field(default=None, repr=False)
    max_body_bytes: int = 256 * 1024
    # A request's line and headers must arrive within this long of its first byte (slowloris on the
    # head; aiohttp itself only drops a connection after its 75 s keep-alive timeout).
    request_head_timeout_seconds: float = 10.0
    # Dedup markers outlive every provider's retry horizon (UU Wallet retries for days).
    dedup_ttl_seconds: int = 7 * 24 * 3600
    # A synchronous answer is remembered at least as long as a signer may retry (≥ 48 h).
    memo_ttl_seconds: int = 72 * 3600
    redis_timeout_seconds: float = 2.0
    queue_name: str = "arq:queue"
    key_prefix: str = "callgate"
    spool_dir: str = "var/spool"
    spool_replay_interval_seconds: float = 1.0
    job_timeout_seconds: int = 60
    worker_max_jobs: int = 50
    # arq polls the queue; its 0.5 s default adds up to half a second to every hop of an event.
    worker_poll_delay_seconds: float = 0.05
    delivery: DeliveryPolicy = field(default_factory=DeliveryPolicy)
    risk: RiskConfig = field(default_factory=RiskConfig)
    log_level: str = "INFO"
    log_json: bool = True
    providers: ProviderSettings = field(default_factory=ProviderSettings)

    @classmethod
    def from_env(cls, environ: Env = os.environ) -> Settings:
        """Read and validate every setting; raises ConfigError naming the first bad variable."""
        env = environ
        return cls(
            redis_url=_redis_url(env, "REDIS_URL", DEFAULT_REDIS_URL),
            database_url=_database_url(env, "DATABASE_URL", DEFAULT_DATABASE_URL),
            host=_str(env, "CALLGATE_HOST", "127.0.0.1"),
            port=_int(env, "CALLGATE_PORT", 8080, minimum=0, maximum=65535),
            worker_metrics_port=_int(env, "CALLGATE_WORKER_METRICS_PORT", 9091, minimum=0, maximum=65535),
            admin_token=_secret(env, "CALLGATE_ADMIN_TOKEN"),
            max_body_bytes=_int(env, "CALLGATE_MAX_BODY_BYTES", 256 * 1024, minimum=1024),
            request_head_timeout_seconds=_float(env, "CALLGATE_REQUEST_HEAD_TIMEOUT_SECONDS", 10.0, minimum=0.1),
            dedup_ttl_seconds=_int(env, "CALLGATE_DEDUP_TTL_SECONDS", 7 * 24 * 3600, minimum=60),
            memo_ttl_seconds=_int(env, "CALLGATE_MEMO_TTL_SECONDS", 72 * 3600, minimum=48 * 3600),
            redis_timeout_seconds=_float(env, "CALLGATE_REDIS_TIMEOUT_SECONDS", 2.0, minimum=0.05),
            queue_name=_str(env, "CALLGATE_QUEUE_NAME", "arq:queue"),
            key_prefix=_str(env, "CALLGATE_KEY_PREFIX", "callgate"),
            spool_dir=_str(env, "CALLGATE_SPOOL_DIR", "var/spool"),
            spool_replay_interval_seconds=_float(env, "CALLGATE_SPOOL_REPLAY_INTERVAL_SECONDS", 1.0, minimum=0.05),
            job_timeout_seconds=_int(env, "CALLGATE_JOB_TIMEOUT_SECONDS", 60, minimum=1),
            worker_max_jobs=_int(env, "CALLGATE_WORKER_MAX_JOBS", 50, minimum=1),
            worker_poll_delay_seconds=_float(env, "CALLGATE_WORKER_POLL_DELAY_SECONDS", 0.05, minimum=0.0),
            delivery=_delivery(env),
            risk=_risk(env),
            log_level=_log_level(env),
            log_json=_bool(env, "CALLGATE_LOG_JSON", True),
            providers=_providers(env),
        )

    def enabled_providers(self) -> list[str]:
        return [name for name in ProviderSettings.__slots__ if getattr(self.providers, name) is not None]


def _log_level(env: Env) -> str:
    level = _str(env, "CALLGATE_LOG_LEVEL", "INFO").upper()
    if level not in ("DEBUG", "INFO", "WARNING", "ERROR"):
        raise ConfigError("CALLGATE_LOG_LEVEL", f"expected DEBUG/INFO/WARNING/ERROR, got {level!r}")
    return level

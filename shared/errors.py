"""Exceptions, one base per domain, translated to protocol answers at the edges."""

from __future__ import annotations


class CallgateError(Exception):
    """Base of every error callgate raises on purpose."""


# -- configuration ---------------------------------------------------------------------------


class ConfigError(CallgateError):
    """An environment variable is missing or has a value we cannot use."""

    def __init__(self, variable: str, reason: str) -> None:
        super().__init__(variable, reason)
        self.variable = variable
        self.reason = reason

    def __str__(self) -> str:
        return f"{self.variable}: {self.reason}"


# -- untrusted input -------------------------------------------------------------------------


class InputError(CallgateError):
    """Base of errors caused by what a caller sent."""


class InvalidInput(InputError):
    """A field of a request is missing, of the wrong type or out of bounds."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(field, reason)
        self.field = field
        self.reason = reason

    def __str__(self) -> str:
        return f"{self.field}: {self.reason}"


class Unauthorized(InputError):
    """The caller could not be authenticated (bad key, token, signature or source)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason

    def __str__(self) -> str:
        return self.reason


# -- queue and storage -----------------------------------------------------------------------


class QueueUnavailable(CallgateError):
    """Redis could not take a job, and the spool could not either."""


class SpoolError(CallgateError):
    """The local durable spool could not be written or read."""


# -- outbound calls --------------------------------------------------------------------------


class ApiError(CallgateError):
    """A provider or downstream API answered with an error or an unverifiable response."""

    def __init__(self, method: str, url: str, status: int, body: str) -> None:
        super().__init__(method, url, status, body)
        self.method = method
        self.url = url
        self.status = status
        self.body = body

    def __str__(self) -> str:
        return f"{self.method} {self.url} -> {self.status}: {self.body[:200]}"


# -- policy ----------------------------------------------------------------------------------


class PolicyError(CallgateError):
    """A policy document is invalid; `path` names the bad field (e.g. `rules[3].max_amount`)."""

    def __init__(self, path: str, reason: str) -> None:
        super().__init__(path, reason)
        self.path = path
        self.reason = reason

    def __str__(self) -> str:
        return f"{self.path}: {self.reason}"

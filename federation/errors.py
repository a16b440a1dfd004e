"""Errors of exchanges between agencies."""

from node.errors import NodeError


class FederationError(NodeError):
    """Base of every error raised by the federation package."""


class InvalidEnvelopeError(FederationError):
    """Signed bytes that cannot be used: malformed, of another type, or short of signatures."""


class ReplayError(FederationError):
    """A request nonce was used before."""


class StaleRequestError(FederationError):
    """A request's timestamp is outside the allowed clock skew."""


class ExchangeRefusedError(FederationError):
    """No agreement in force covers the exchange, or its purpose is not one the agreement allows."""

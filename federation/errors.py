"""Errors of exchanges between agencies."""

from node.errors import NodeError


class FederationError(NodeError):
    """Base of every error raised by the federation package."""


class InvalidEnvelopeError(FederationError):
    """Signed bytes that cannot be used: malformed, of another type, or short of signatures."""

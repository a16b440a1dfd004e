"""Errors of the node process itself."""

from node.errors import NodeError


class GatewayError(NodeError):
    """Base of the errors raised by the node process."""


class ConfigError(GatewayError):
    """The node's configuration, or a file it names, is unusable. Start-up stops."""

"""The node's error base and the errors every layer shares."""

from __future__ import annotations


class NodeError(Exception):
    """Base of every error raised on purpose by this project.

    The CLI catches this once and prints `diagnostics()`; the gateway maps its
    subclasses to gRPC status codes in one table.
    """

    def diagnostics(self) -> str:
        """One line that tells an operator what went wrong and what to do."""
        return str(self)

    def metadata(self) -> dict[str, str]:
        """The variables of the message, by lowerCamelCase name, for the status's ErrorInfo."""
        return {}


class ValidationError(NodeError):
    """A value given to the node is not acceptable.

    Attributes:
        field: The name of the offending field, as the caller spelled it.
        problem: What is wrong with it.
    """

    def __init__(self, field: str, problem: str) -> None:
        """Name the field and the problem."""
        super().__init__(f"{field}: {problem}")
        self.field = field
        self.problem = problem

    def metadata(self) -> dict[str, str]:
        """The field named."""
        return {"field": self.field}


class UnauthenticatedError(NodeError):
    """The caller did not prove who it is: no session, or one expired, forged or not its own."""


class PermissionDeniedError(NodeError):
    """The caller may not do this. Says nothing about whether the data exists (SHR-6)."""


class NotFoundError(NodeError):
    """The named record does not exist (answered only after permission is checked)."""


class AlreadyExistsError(NodeError):
    """A record with that key already exists."""


class PreconditionError(NodeError):
    """The request is well formed but the system's state forbids it (e.g. an expired agreement)."""


class UnavailableError(NodeError):
    """A partner node could not be reached or did not answer in time."""


class RateLimitedError(NodeError):
    """The caller sent more than its limit allows; nothing of the call was taken.

    Attributes:
        retry_after: Seconds after which the same call would be taken (if nothing else comes).
    """

    def __init__(self, message: str, *, retry_after: float, **variables: str) -> None:
        """Say what limit was passed; `variables` are those named in `message`."""
        super().__init__(message)
        self.retry_after = retry_after
        self._variables = {**variables, "retryAfterSeconds": f"{retry_after:.3f}"}

    def metadata(self) -> dict[str, str]:
        """The limit, the caller's key and when to try again."""
        return dict(self._variables)

"""Errors the API raises; front ends turn them into messages and exit codes."""

from __future__ import annotations


class SessionctlError(Exception):
    """Base of every error sessionctl reports to its caller."""

    exit_code = 1


class InvalidArgument(SessionctlError):
    """A target, option or value that cannot be right."""


class NoSuchSession(SessionctlError):
    """No session matches the given id, name or user."""


class AccessDenied(SessionctlError):
    """The caller may not act on that session."""


class BackendUnavailable(SessionctlError):
    """The requested backend cannot answer on this machine."""


class NotSupported(SessionctlError):
    """This system does not implement what was asked (a stubbed or missing function)."""


class SourceError(SessionctlError):
    """A system source (utmp, /proc, D-Bus) could not be read or made no sense."""


class NotPossible(SessionctlError):
    """The session cannot take that action as it stands (nothing was touched): e.g. a
    disconnect of a session with nothing that would keep running."""


class UnsafePath(SessionctlError):
    """Root was pointed at a file or directory someone else owns or can change."""

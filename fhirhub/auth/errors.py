"""The typed failures of ``fhirhub.auth``.

Each maps to one OAuth error (RFC 6749 §5.2, RFC 6750 §3.1) where a later step turns them into
responses: :class:`TokenError` is a 401 ``invalid_token``, :class:`ClientAssertionError` a 400
``invalid_client``, :class:`fhirhub.auth.scopes.ScopeError` a 400 ``invalid_scope``, and
:class:`AuthConfigError` stops the server at start-up.
"""

from __future__ import annotations


class AuthError(Exception):
    """Base of every auth failure; the message is safe to show (no key or token material)."""


class AuthConfigError(AuthError):
    """The auth settings are missing or unusable; the server refuses to start."""


class TokenError(AuthError):
    """An access token that is malformed, wrongly signed, expired or meant for someone else."""


class ClientAssertionError(AuthError):
    """A client's ``private_key_jwt`` assertion that must not authenticate it."""

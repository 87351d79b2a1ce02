"""Secrets out of anything printed or logged: URLs with their password and secret query parameters hidden.

Broker and store URLs carry credentials (``mqtt://user:password@host``, ``influxdb://host/db?token=..``); any
line that shows a URL, a setting or an error message quoting one goes through :func:`redact_url` or
:func:`redact_text` first.
"""

from __future__ import annotations

import re
import urllib.parse

__all__ = ["HIDDEN", "SECRET_PARAMS", "redact_text", "redact_url"]

HIDDEN = "***"
"""What a secret is replaced with."""

SECRET_PARAMS = frozenset(
    {"token", "password", "passwd", "pass", "pwd", "secret", "key", "api_key", "apikey", "access_token", "auth", "sig"}
)
"""Query parameters whose values are secrets (compared case-insensitively)."""

# A URL in free text: a scheme, then everything up to white space or a quote (error messages quote URLs with repr).
_URL_IN_TEXT = re.compile(r"\b[A-Za-z][A-Za-z0-9+.-]*://[^\s'\"<>]+")


_SECRET_IN_QUERY = re.compile(r"([?&](?:" + "|".join(sorted(SECRET_PARAMS)) + r")=)[^&#]*", re.IGNORECASE)


def redact_url(url: str) -> str:
    """``url`` with its userinfo's password and the values of secret query parameters replaced by ``***``.

    The user name stays (it says who connects, and is no secret); a URL that does not parse is returned with
    anything between ``://`` and ``@`` hidden, so a malformed URL cannot leak its password either.
    """
    try:
        parts = urllib.parse.urlsplit(url)
        netloc = parts.netloc
        if "@" in netloc:
            userinfo, _, hostport = netloc.rpartition("@")
            user, colon, _password = userinfo.partition(":")
            netloc = f"{user}:{HIDDEN}@{hostport}" if colon else f"{userinfo}@{hostport}"
        query = parts.query
        if query:
            query = "&".join(_redact_param(p) for p in query.split("&"))
        return urllib.parse.urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))
    except ValueError:
        scheme, sep, rest = url.partition("://")
        if sep and "@" in rest:
            url = f"{scheme}://{HIDDEN}@{rest.rpartition('@')[2]}"
        return _SECRET_IN_QUERY.sub(lambda m: f"{m.group(1)}{HIDDEN}", url)


def _redact_param(param: str) -> str:
    name, eq, _value = param.partition("=")
    if eq and urllib.parse.unquote_plus(name).lower() in SECRET_PARAMS:
        return f"{name}={HIDDEN}"
    return param


def redact_text(text: str) -> str:
    """``text`` with every URL in it passed through :func:`redact_url` (for error messages that quote a URL)."""
    return _URL_IN_TEXT.sub(lambda m: redact_url(m.group(0)), text)

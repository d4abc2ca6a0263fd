"""Locations that may be fsspec URLs (the cache, the output root): telling them from paths and
keeping their credentials out of every message. Standard library only, so the shot layer and
the store can both use it."""

from __future__ import annotations

import os
import re
from typing import Any
from urllib.parse import urlsplit, urlunsplit

SECRET_NAME = re.compile(r"key|secret|token|password|passwd|credential|sas|signature|auth",
                         re.IGNORECASE)


def is_url(location: str | os.PathLike[str]) -> bool:
    """``PROTOCOL://...`` or a chained ``a::b`` fsspec URL; a Windows drive is a path."""
    text = os.fspath(location)
    protocol, sep, _ = text.partition("://")
    if sep and len(protocol) > 1 and protocol.replace("+", "").replace("-", "").isalnum():
        return True
    return "::" in text


def redact(url: str) -> str:
    """The URL without a password or query (where SAS tokens and signatures go). A user or
    an Azure ``container@account`` stays."""
    def one(part: str) -> str:
        split = urlsplit(part)
        if not split.scheme:
            return part
        user, at, host = split.netloc.rpartition("@")
        netloc = f"{user.partition(':')[0]}{at}{host}"
        return urlunsplit(split._replace(netloc=netloc, query="", fragment=""))

    return "::".join(one(part) for part in url.split("::"))


def secrets_of(url: str, options: dict[str, Any]) -> list[str]:
    """Strings that must never be printed: option values that look like credentials and a
    password or query values in the URL; longest first, so a scrub never leaves a tail."""
    return sorted(_option_secrets(options) | _url_secrets(url), key=len, reverse=True)


def describe(error: BaseException, secrets: list[str]) -> str:
    """An exception as one line of at most 300 characters, with ``secrets`` masked."""
    text = " ".join(str(error).split()) or type(error).__name__
    for secret in secrets:
        text = text.replace(secret, "***")
    return text if len(text) <= 300 else text[:297] + "..."


def _option_secrets(options: dict[str, Any]) -> set[str]:
    found = set()
    for name, value in options.items():
        if isinstance(value, dict):
            found |= _option_secrets(value)
        elif isinstance(value, str) and len(value) >= 4 and SECRET_NAME.search(str(name)):
            found.add(value)
    return found


def _url_secrets(url: str) -> set[str]:
    found = set()
    for part in url.split("::"):
        split = urlsplit(part)
        password = split.netloc.rpartition("@")[0].partition(":")[2]
        values = [value for _, _, value in (q.partition("=") for q in split.query.split("&"))]
        found |= {value for value in (password, *values) if len(value) >= 4}
    return found

"""Public Suffix List lookups (the list ships with the publicsuffixlist package)."""

from __future__ import annotations

import functools

from publicsuffixlist import PublicSuffixList


@functools.cache
def _public_suffix_list() -> PublicSuffixList:
    return PublicSuffixList()


def registered_domain(hostname: str) -> str:
    """Return the registered domain of a hostname by the Public Suffix List.

    shop.example.co.uk gives example.co.uk. A hostname that is itself a public
    suffix is its own registered domain.
    """
    return _public_suffix_list().privatesuffix(hostname) or hostname


def is_public_suffix(name: str) -> bool:
    """Return whether name is a public suffix (co.uk, github.io) rather than a domain in one."""
    return _public_suffix_list().is_public(name)

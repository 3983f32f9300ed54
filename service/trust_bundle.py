"""Loading the roots that uploaded chains must reach: CERTSVC_TRUST_BUNDLE or the system's."""

from __future__ import annotations

import functools
import logging
import ssl
from pathlib import Path

import certifi

from service.config import ConfigError
from service.validation.trust_anchors import TrustAnchors, parse_bundle

logger = logging.getLogger(__name__)


def default_bundle_path() -> Path:
    """Return the system's CA bundle (OpenSSL's default file), or certifi's when there is none."""
    paths = ssl.get_default_verify_paths()
    for candidate in (paths.cafile, paths.openssl_cafile):
        if candidate and Path(candidate).is_file():
            return Path(candidate)
    return Path(certifi.where())


@functools.lru_cache(maxsize=4)
def load_trust_anchors(configured_path: Path | None) -> TrustAnchors:
    """Read and index the trust bundle once per path, raising ConfigError when it is unusable."""
    path = configured_path or default_bundle_path()
    source = f"CERTSVC_TRUST_BUNDLE={path}" if configured_path else f"the default trust bundle {path}"
    try:
        bundle_pem = path.read_bytes()
    except OSError as error:
        raise ConfigError(f"{source} cannot be read: {error.strerror}") from None
    roots, skipped = parse_bundle(bundle_pem)
    if not roots:
        raise ConfigError(f"{source} contains no PEM certificates; point CERTSVC_TRUST_BUNDLE "
                          "at a file of '-----BEGIN CERTIFICATE-----' blocks")
    if skipped:
        logger.warning("skipped unreadable certificates in trust bundle path=%s skipped=%d",
                       path, skipped)
    logger.info("loaded trust bundle path=%s roots=%d", path, len(roots))
    return TrustAnchors(roots)

"""The api's TLS files: CERTSVC_TLS_CERT, CERTSVC_TLS_KEY and CERTSVC_TLS_CLIENT_CA.

They are checked before grpc gets them, both at start-up and before a reload, because
grpc reports a pair it cannot use only in its own log and keeps the previous one.
"""

from __future__ import annotations

import dataclasses
import datetime
from pathlib import Path

import grpc
from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from service.config import ConfigError, Settings, read_config_file

MIN_RSA_BITS = 2048
# ECDSA keys on these curves work with grpcio 1.85's TLS stack. It rejects others, such
# as secp256k1, and reports that only in its own log.
SUPPORTED_CURVES = (ec.SECP256R1, ec.SECP384R1)
_BEGIN_CERTIFICATE = b"-----BEGIN CERTIFICATE-----"


@dataclasses.dataclass(frozen=True)
class TlsFiles:
    """The contents of the TLS files."""

    certificate_chain: bytes
    private_key: bytes = dataclasses.field(repr=False)
    client_ca: bytes | None

    def configuration(self) -> grpc.ServerCertificateConfiguration:
        return grpc.ssl_server_certificate_configuration(
            [(self.private_key, self.certificate_chain)], root_certificates=self.client_ca)

    def leaf(self) -> x509.Certificate:
        return x509.load_pem_x509_certificate(self.certificate_chain)


def read_tls_files(settings: Settings) -> TlsFiles | None:
    """Read and check the TLS files, or return None when the api speaks plaintext.

    Raises ConfigError when the settings are incomplete or a file cannot be read or
    parsed. It also raises it for a key that grpc cannot use or that does not belong
    to the first certificate, for a chain out of order, and for a first certificate
    outside its validity period.
    """
    if settings.tls_cert is None and settings.tls_key is None:
        if settings.tls_client_ca is not None:
            raise ConfigError("CERTSVC_TLS_CLIENT_CA needs CERTSVC_TLS_CERT and CERTSVC_TLS_KEY: "
                              "mutual TLS runs on top of the api's own TLS certificate")
        return None
    if settings.tls_cert is None or settings.tls_key is None:
        raise ConfigError("set both CERTSVC_TLS_CERT and CERTSVC_TLS_KEY, or neither")
    chain = read_config_file("CERTSVC_TLS_CERT", settings.tls_cert)
    key = read_config_file("CERTSVC_TLS_KEY", settings.tls_key)
    client_ca = (read_config_file("CERTSVC_TLS_CLIENT_CA", settings.tls_client_ca)
                 if settings.tls_client_ca else None)

    certificates = _parse_certificates("CERTSVC_TLS_CERT", settings.tls_cert, chain)
    private_key = _parse_key(settings.tls_key, key)
    if _public_key_der(private_key.public_key()) != _public_key_der(certificates[0].public_key()):
        raise ConfigError(f"CERTSVC_TLS_KEY ({settings.tls_key}) does not belong to the first "
                          f"certificate in CERTSVC_TLS_CERT ({settings.tls_cert}); install the "
                          "key and certificate of one pair")
    _check_chain(settings.tls_cert, certificates)
    if client_ca is not None:
        _parse_certificates("CERTSVC_TLS_CLIENT_CA", settings.tls_client_ca, client_ca)
    return TlsFiles(chain, key, client_ca)


def _parse_certificates(variable: str, path: Path, data: bytes) -> list[x509.Certificate]:
    try:
        certificates = x509.load_pem_x509_certificates(data)
    except (ValueError, UnsupportedAlgorithm) as error:
        raise ConfigError(f"{variable} ({path}) does not contain PEM certificates: "
                          f"{error}") from None
    # The parser passes over a last block without its END line, as in a file cut short.
    if data.count(_BEGIN_CERTIFICATE) != len(certificates):
        raise ConfigError(f"{variable} ({path}) contains an incomplete certificate; wait "
                          "until the file is fully written, or write it elsewhere and rename it")
    return certificates


def _parse_key(path: Path, data: bytes) -> rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey:
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError, UnsupportedAlgorithm) as error:
        raise ConfigError(f"CERTSVC_TLS_KEY ({path}) is not an unencrypted PEM private key: "
                          f"{error}") from None
    if isinstance(key, rsa.RSAPrivateKey) and key.key_size >= MIN_RSA_BITS:
        return key
    if isinstance(key, ec.EllipticCurvePrivateKey) and isinstance(key.curve, SUPPORTED_CURVES):
        return key
    kind = (f"an RSA key of {key.key_size} bits" if isinstance(key, rsa.RSAPrivateKey)
            else f"an EC key on {key.curve.name}" if isinstance(key, ec.EllipticCurvePrivateKey)
            else f"a {type(key).__name__}")
    raise ConfigError(f"CERTSVC_TLS_KEY ({path}) is {kind}; use an RSA key of at least "
                      f"{MIN_RSA_BITS} bits or an ECDSA key on P-256 or P-384")


def _check_chain(path: Path, certificates: list[x509.Certificate]) -> None:
    """Raise ConfigError when the chain is out of order or its first certificate is not
    valid now."""
    for position, (certificate, issuer) in enumerate(zip(certificates, certificates[1:]),
                                                     start=1):
        if certificate.issuer != issuer.subject:
            raise ConfigError(
                f"CERTSVC_TLS_CERT ({path}): certificate {position + 1} "
                f"({issuer.subject.rfc4514_string()}) did not issue certificate {position} "
                f"({certificate.subject.rfc4514_string()}); put the api's certificate first, "
                "then each issuer in turn")
    leaf = certificates[0]
    now = datetime.datetime.now(datetime.timezone.utc)
    if now > leaf.not_valid_after_utc:
        raise ConfigError(f"CERTSVC_TLS_CERT ({path}) expired at "
                          f"{leaf.not_valid_after_utc.isoformat()}; install a current one")
    if now < leaf.not_valid_before_utc:
        raise ConfigError(f"CERTSVC_TLS_CERT ({path}) is valid only from "
                          f"{leaf.not_valid_before_utc.isoformat()}; check the clock or the "
                          "certificate")


def _public_key_der(public_key: object) -> bytes:
    return public_key.public_bytes(serialization.Encoding.DER,  # type: ignore[attr-defined]
                                   serialization.PublicFormat.SubjectPublicKeyInfo)

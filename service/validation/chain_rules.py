"""The rules a path must follow to serve a hostname to browsers, each failure tied to its certificate.

RFC 5280 path validation for a TLS server comes from cryptography.x509.verification
(PolicyBuilder and ServerVerifier, which apply the CA/Browser Forum profile). That
verifier stops at the first failure and names the rule in a few words, so the checks
here run first, on every certificate, and state which certificate broke which rule
and how to fix it. The verifier's own answer is reported only when these checks
found nothing. Pure functions without I/O.
"""

from __future__ import annotations

import datetime
import re

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509 import verification
from cryptography.x509.oid import AuthorityInformationAccessOID, ExtendedKeyUsageOID, NameOID

from service.certificate_details import dns_names
from service.validation.chain import (
    CertificatePath,
    PathBreak,
    UploadedCertificate,
    basic_constraints,
    describe_name,
    describe_subject,
    weak_signature_hash,
)
from service.validation.hostname import covers
from service.validation.key_policy import KEY_FIX, key_rejection
from service.validation.problems import CHAIN_FIELD, Problem, Rank
from service.validation.trust_anchors import TrustAnchors

# Names listed in a message before the rest is summarised.
MAX_NAMES_SHOWN = 10
_VERIFIER_CERTIFICATE = re.compile(
    r"\s*\(encountered processing <Certificate\(subject=<Name\((.*?)\)>, \.\.\.\)>\)\s*$")
_EXTENSION_NAMES = {
    "2.5.29.14": "subjectKeyIdentifier", "2.5.29.15": "keyUsage",
    "2.5.29.17": "subjectAltName", "2.5.29.19": "basicConstraints",
    "2.5.29.30": "nameConstraints", "2.5.29.32": "certificatePolicies",
    "2.5.29.35": "authorityKeyIdentifier", "2.5.29.37": "extKeyUsage",
    "1.3.6.1.5.5.7.1.1": "authorityInfoAccess",
}


def format_time(moment: datetime.datetime) -> str:
    return f"{moment:%Y-%m-%d %H:%M} UTC"


# The leaf


def name_problems(leaf: UploadedCertificate, hostname: str) -> list[Problem]:
    """Check that the leaf's subjectAltName covers hostname; browsers ignore the Common Name."""
    try:
        leaf.certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName)
    except x509.ExtensionNotFound:
        common_names = leaf.certificate.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
        common_name = f" ({common_names[0].value})" if common_names else ""
        return [Problem(CHAIN_FIELD, Rank.NAMES, (
            f"the certificate {leaf.subject} has no subjectAltName (subject alternative name) "
            f"extension: browsers ignore the Common Name{common_name} and reject it. Have the "
            f"certificate reissued with {hostname} as a DNS name in its subjectAltName"))]
    except ValueError:
        return [Problem(CHAIN_FIELD, Rank.NAMES, (
            f"the certificate {leaf.subject} has a malformed subjectAltName extension that "
            "cannot be decoded; have it reissued by your CA"))]
    names = dns_names(leaf.certificate)
    if any(covers(name, hostname) for name in names):
        return []
    if not names:
        return [Problem(CHAIN_FIELD, Rank.NAMES, (
            f"the certificate {leaf.subject} lists no DNS names in its subjectAltName, so it "
            f"cannot cover {hostname}; upload a certificate issued for {hostname}"))]
    names_listed = ", ".join(names[:MAX_NAMES_SHOWN])
    if len(names) > MAX_NAMES_SHOWN:
        names_listed += f" and {len(names) - MAX_NAMES_SHOWN} more"
    return [Problem(CHAIN_FIELD, Rank.NAMES, (
        f"the certificate {leaf.subject} does not cover {hostname}: its subjectAltName lists "
        f"{names_listed}.{_wildcard_hint(names, hostname)} Upload a certificate issued for {hostname}"))]


def _wildcard_hint(names: list[str], hostname: str) -> str:
    if hostname.startswith("*."):
        return f" A wildcard domain needs a certificate that lists {hostname} itself."
    for name in names:
        if not name.startswith("*."):
            continue
        base = name[2:]
        if hostname == base:
            return (f" A wildcard covers exactly one label: {name} covers names such as "
                    f"www.{base}, but not {base} itself, which the certificate must list too.")
        if hostname.endswith("." + base):
            return (f" A wildcard covers exactly one label: {name} does not cover {hostname}, "
                    "which has more labels in place of the '*'.")
    return ""


def validity_problem(item: UploadedCertificate, now: datetime.datetime,
                     role: str = "certificate") -> Problem | None:
    """Report a certificate that expired or is not valid yet, with its dates."""
    certificate = item.certificate
    not_before, not_after = certificate.not_valid_before_utc, certificate.not_valid_after_utc
    if not_after < now:
        days = (now - not_after).days
        fix = ("renew it with your CA and upload the new certificate" if role == "certificate"
               else "download the current intermediate from your CA and upload it instead")
        return Problem(CHAIN_FIELD, Rank.VALIDITY, (
            f"the {role} {item.subject} expired on {format_time(not_after)} "
            f"({days} day{'s' if days != 1 else ''} ago; "
            f"it was valid from {format_time(not_before)}); {fix}"))
    if not_before > now:
        return Problem(CHAIN_FIELD, Rank.VALIDITY, (
            f"the {role} {item.subject} is not valid yet: it is valid from "
            f"{format_time(not_before)} to {format_time(not_after)}. Upload it once it is valid, "
            "or check the dates your CA set"))
    return None


def leaf_problems(leaf: UploadedCertificate, now: datetime.datetime) -> list[Problem]:
    """Check the leaf's dates, key and usage for a TLS server."""
    problems: list[Problem] = []
    validity = validity_problem(leaf, now)
    if validity:
        problems.append(validity)
    rejection = key_rejection(_public_key(leaf.certificate))
    if rejection:
        problems.append(Problem(CHAIN_FIELD, Rank.KEY_STRENGTH, (
            f"the certificate {leaf.subject} cannot be used because {rejection}. To fix this, "
            f"{KEY_FIX}")))
    problems += _leaf_usage_problems(leaf)
    return problems


def _leaf_usage_problems(leaf: UploadedCertificate) -> list[Problem]:
    certificate = leaf.certificate
    reasons = []
    constraints = basic_constraints(certificate)
    if constraints is not None and constraints.ca:
        reasons.append("it is a CA certificate (basicConstraints CA:TRUE), not a server "
                       "certificate; upload the server certificate your CA issued for the domain")
    usages = _extended_key_usages(certificate)
    if usages is not None and ExtendedKeyUsageOID.SERVER_AUTH not in usages:
        listed = ", ".join(_usage_name(usage) for usage in usages) or "nothing"
        reasons.append(f"its extended key usage lists {listed} but not serverAuth (TLS Web "
                       "Server Authentication), so browsers reject it for a website; have it "
                       "reissued as a TLS server certificate")
    key_usage = _key_usage(certificate)
    if key_usage is not None:
        public_key = _public_key(certificate)
        signs = key_usage.digital_signature or (isinstance(public_key, rsa.RSAPublicKey)
                                                and key_usage.key_encipherment)
        if key_usage.key_cert_sign:
            reasons.append("its key usage includes keyCertSign, which a server certificate must "
                           "not have; have it reissued as a TLS server certificate")
        elif not signs and isinstance(public_key, (rsa.RSAPublicKey, ec.EllipticCurvePublicKey)):
            reasons.append("its key usage lacks digitalSignature, which a TLS server needs to "
                           "sign the handshake; have it reissued as a TLS server certificate")
    return [Problem(CHAIN_FIELD, Rank.LEAF_USAGE, f"the certificate {leaf.subject}: {reason}")
            for reason in reasons]


# The intermediates and the root


def trust_problems(path: CertificatePath, hostname: str) -> list[Problem]:
    """Explain why a path does not reach a trusted root."""
    last = path.last
    reason = path.break_reason
    if reason is None:
        return []
    if reason is PathBreak.SELF_SIGNED_LEAF:
        alternative = ("" if hostname.startswith("*.") else
                       ", or let this service obtain one from Let's Encrypt with "
                       "RequestCertificate")
        message = (f"the certificate {last.subject} is self-signed: browsers trust only "
                   f"certificates issued by a public certificate authority. Get a certificate "
                   f"from a public CA{alternative}")
    elif reason is PathBreak.UNTRUSTED_ROOT:
        message = (f"the chain ends at the root certificate {last.subject}, which is not in the "
                   "trust store, so browsers will not trust it. A certificate from a private or "
                   "test CA cannot serve a public website; use one from a publicly trusted CA")
    elif reason is PathBreak.BAD_SIGNATURE:
        wrong = describe_subject(path.wrong_issuer) if path.wrong_issuer else "its issuer"
        message = (f"the signature of {last.subject} does not verify with the public key of "
                   f"{wrong}, although that certificate has the issuer's name: the certificate "
                   "was altered, or the chain holds another CA certificate of the same name. "
                   "Download the current chain from your CA and upload it again")
    elif reason is PathBreak.MISSING_ISSUER:
        issuer = describe_name(last.certificate.issuer)
        message = (f"the chain is incomplete: the certificate {issuer} that issued "
                   f"{last.subject} is missing, and it is not a trusted root. If it is an "
                   f"intermediate, append it after {last.subject} in {CHAIN_FIELD}; your CA "
                   "provides it, often as chain.pem, ca-bundle.crt or inside fullchain.pem"
                   f"{_issuer_url(last.certificate)}. If it is the root of a private CA, "
                   "browsers do not trust the chain either: use a certificate from a publicly "
                   "trusted CA")
    else:
        message = (f"no path from {path.certificates[0].subject} to a trusted root was found "
                   "among the uploaded certificates; upload only the server certificate and "
                   "the intermediates your CA sent")
    return [Problem(CHAIN_FIELD, Rank.TRUST, message)]


def _issuer_url(certificate: x509.Certificate) -> str:
    """Return ' (also at URL)' for the issuer certificate named in authorityInfoAccess."""
    try:
        access = certificate.extensions.get_extension_for_class(
            x509.AuthorityInformationAccess).value
    except (x509.ExtensionNotFound, ValueError):
        return ""
    for description in access:
        if (description.access_method == AuthorityInformationAccessOID.CA_ISSUERS
                and isinstance(description.access_location, x509.UniformResourceIdentifier)):
            return f" (the certificate names it as {description.access_location.value})"
    return ""


def issuer_problems(path: CertificatePath, now: datetime.datetime) -> list[Problem]:
    """Check each CA certificate of the path: dates, CA flags, key usage, path length."""
    problems: list[Problem] = []
    certificates = path.certificates
    for index, item in enumerate(certificates[1:], start=1):
        child = certificates[index - 1]
        validity = validity_problem(item, now, role="intermediate certificate")
        if validity:
            problems.append(validity)
        problems += [Problem(CHAIN_FIELD, Rank.PATH_RULES, message)
                     for message in _ca_rule_failures(item, child)]
        below = _intermediates_below(certificates, index)
        problems += _path_length_problems(item.certificate, item.subject, below)
    if path.anchor is not None:
        below = _intermediates_below(certificates, len(certificates))
        problems += _path_length_problems(path.anchor, describe_subject(path.anchor), below)
    for item in certificates:
        algorithm = weak_signature_hash(item.certificate)
        if algorithm:
            problems.append(Problem(CHAIN_FIELD, Rank.PATH_RULES, (
                f"the certificate {item.subject} is signed with {algorithm}, which browsers "
                "reject as breakable; ask your CA to reissue it with SHA-256")))
    return problems


def _ca_rule_failures(item: UploadedCertificate, child: UploadedCertificate) -> list[str]:
    certificate = item.certificate
    fix = "upload the intermediate certificate your CA provides instead"
    failures = []
    constraints = basic_constraints(certificate)
    if constraints is None or not constraints.ca:
        state = "CA:FALSE" if constraints is not None else "missing"
        # The usage extensions of a certificate that is no CA at all add nothing to this.
        return [f"the certificate {item.subject} issued {child.subject} but is not a CA "
                f"certificate (basicConstraints {state}), so it may not issue certificates; "
                f"{fix}"]
    key_usage = _key_usage(certificate)
    if key_usage is not None and not key_usage.key_cert_sign:
        failures.append(f"the intermediate certificate {item.subject} has a key usage without "
                        f"keyCertSign, so it may not sign certificates such as {child.subject}; "
                        f"{fix}")
    usages = _extended_key_usages(certificate)
    if (usages is not None and ExtendedKeyUsageOID.SERVER_AUTH not in usages
            and ExtendedKeyUsageOID.ANY_EXTENDED_KEY_USAGE not in usages):
        listed = ", ".join(_usage_name(usage) for usage in usages) or "nothing"
        failures.append(f"the intermediate certificate {item.subject} limits its extended key "
                        f"usage to {listed}, which excludes serverAuth, so it cannot issue TLS "
                        f"server certificates; {fix}")
    rejection = key_rejection(_public_key(certificate))
    if rejection:
        failures.append(f"the intermediate certificate {item.subject} cannot be used because "
                        f"{rejection}; {fix}")
    return failures


def _intermediates_below(certificates: list[UploadedCertificate], index: int) -> int:
    """Count the CA certificates between the leaf and certificates[index], as RFC 5280 does.

    Self-issued certificates (subject equal to issuer) do not count.
    """
    return sum(1 for item in certificates[1:index]
               if item.certificate.subject != item.certificate.issuer)


def _path_length_problems(certificate: x509.Certificate, subject: str,
                          below: int) -> list[Problem]:
    constraints = basic_constraints(certificate)
    if constraints is None or constraints.path_length is None or below <= constraints.path_length:
        return []
    return [Problem(CHAIN_FIELD, Rank.PATH_RULES, (
        f"the CA certificate {subject} allows at most {constraints.path_length} intermediate "
        f"certificates below it (pathLenConstraint), but the chain has {below}; remove the extra "
        "intermediate certificates or ask your CA for the correct chain"))]


def _public_key(certificate: x509.Certificate) -> object:
    """Return the certificate's public key, or None when cryptography cannot load it.

    That is a key of an unknown type, or a malformed one (an EC point off its curve
    raises ValueError).
    """
    try:
        return certificate.public_key()
    except (UnsupportedAlgorithm, ValueError):
        return None


def _extended_key_usages(certificate: x509.Certificate) -> list[x509.ObjectIdentifier] | None:
    try:
        return list(certificate.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value)
    except (x509.ExtensionNotFound, ValueError):
        return None


def _key_usage(certificate: x509.Certificate) -> x509.KeyUsage | None:
    try:
        return certificate.extensions.get_extension_for_class(x509.KeyUsage).value
    except (x509.ExtensionNotFound, ValueError):
        return None


def _usage_name(usage: x509.ObjectIdentifier) -> str:
    names = {ExtendedKeyUsageOID.SERVER_AUTH: "serverAuth",
             ExtendedKeyUsageOID.CLIENT_AUTH: "clientAuth",
             ExtendedKeyUsageOID.CODE_SIGNING: "codeSigning",
             ExtendedKeyUsageOID.EMAIL_PROTECTION: "emailProtection",
             ExtendedKeyUsageOID.TIME_STAMPING: "timeStamping",
             ExtendedKeyUsageOID.OCSP_SIGNING: "OCSPSigning",
             ExtendedKeyUsageOID.ANY_EXTENDED_KEY_USAGE: "anyExtendedKeyUsage"}
    return names.get(usage, usage.dotted_string)


# The verifier


def verifier_failure(path: CertificatePath, hostname: str, anchors: TrustAnchors,
                     now: datetime.datetime) -> Problem | None:
    """Run cryptography's ServerVerifier on a path that reaches a trusted root.

    The name given to the verifier is one the leaf covers, because name_problems
    already reports a leaf that does not cover the hostname.
    """
    if path.anchor is None:
        return None
    leaf = path.certificates[0]
    try:
        subject = x509.DNSName(_verifier_name(hostname, dns_names(leaf.certificate)))
        verifier = (verification.PolicyBuilder().store(anchors.store).time(now)
                    .build_server_verifier(subject))
    except ValueError:
        return None  # a name the verifier cannot take; name_problems covers names
    intermediates = [item.certificate for item in path.certificates[1:]]
    try:
        verifier.verify(leaf.certificate, intermediates)
    except verification.VerificationError as error:
        reason, certificate_name = _describe_verifier_error(str(error))
        where = f" at the certificate \"{certificate_name}\"" if certificate_name else ""
        return Problem(CHAIN_FIELD, Rank.PATH_RULES, (
            f"the chain fails RFC 5280 path validation for a TLS server{where}: {reason}. "
            "Ask your CA for a certificate and chain that meet the CA/Browser Forum Baseline "
            "Requirements"))
    return None


def _verifier_name(hostname: str, names: list[str]) -> str:
    """Pick a concrete DNS name for the verifier: the hostname, or one the leaf covers."""
    candidates = [hostname] if any(covers(name, hostname) for name in names) else names[:1]
    name = candidates[0] if candidates else hostname
    return "a." + name[2:] if name.startswith("*.") else name


def _describe_verifier_error(text: str) -> tuple[str, str]:
    """Split a VerificationError message into the broken rule and the certificate's subject."""
    for prefix in ("validation failed: ", "candidates exhausted: "):
        if text.startswith(prefix):
            text = text[len(prefix):]
    certificate_name = ""
    match = _VERIFIER_CERTIFICATE.search(text)
    if match:
        certificate_name = match.group(1)
        text = text[:match.start()]
    for oid, name in _EXTENSION_NAMES.items():
        text = text.replace(f"{oid}:", f"{name} ({oid}):")
    return text.strip(), certificate_name

"""The policy for public keys in certificates that browsers are served.

Accepted: RSA of at least 2048 bits and ECDSA on P-256 or P-384. These are the keys
that section 5.1 of the Mozilla Root Store Policy lets publicly trusted CAs certify
(it leaves out P-521) and that every current browser accepts. Pure functions.
"""

from __future__ import annotations

from cryptography.hazmat.primitives.asymmetric import dsa, ec, ed448, ed25519, rsa

from service.certificate_details import key_type_name

MIN_RSA_BITS = 2048
ACCEPTED_CURVES = frozenset({"secp256r1", "secp384r1"})


def key_rejection(public_key: object) -> str:
    """Return why browsers would not accept a certificate with this key, or "".

    The reason is a clause about the certificate ("its key is ..."), to follow "because".
    public_key None stands for a key that cryptography cannot load (unknown or malformed).
    """
    if public_key is None:
        return "its public key is malformed or uses an algorithm that this service cannot read"
    name = key_type_name(public_key)
    if isinstance(public_key, rsa.RSAPublicKey):
        if public_key.key_size < MIN_RSA_BITS:
            return (f"its {name} key is too small (browsers and CAs require RSA keys of at "
                    f"least {MIN_RSA_BITS} bits)")
        return ""
    if isinstance(public_key, ec.EllipticCurvePublicKey):
        curve = public_key.curve.name
        if curve in ACCEPTED_CURVES:
            return ""
        if curve == "secp521r1":
            return ("its key is on the P-521 curve, which the Mozilla Root Store Policy does not "
                    "allow for publicly trusted certificates (this service accepts P-256 and "
                    "P-384)")
        return (f"its key is on the curve {curve}, which TLS clients do not support for "
                "certificates (TLS 1.3 defines ECDSA only for P-256, P-384 and P-521)")
    if isinstance(public_key, (ed25519.Ed25519PublicKey, ed448.Ed448PublicKey)):
        return (f"its key is {name}, and browsers do not accept {name} server certificates "
                "(publicly trusted CAs do not issue them)")
    if isinstance(public_key, dsa.DSAPublicKey):
        return "its key is DSA, which TLS 1.3 and current browsers do not support"
    return f"its key type ({name}) is not supported for TLS server certificates"


KEY_FIX = ("generate a new RSA-2048 or ECDSA P-256 key, for example with "
           "`openssl ecparam -name prime256v1 -genkey -noout -out key.pem`, and have the "
           "certificate reissued for it")

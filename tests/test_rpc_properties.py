"""Property-based tests of the gRPC api: no input makes an RPC answer UNKNOWN or INTERNAL.

Each example is a real call to the shared api. An INVALID_ARGUMENT must carry a
message saying what is wrong.
"""

from __future__ import annotations

import base64
import datetime

import grpc
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import unique_hostname
from service.grpc_gen.certsvc.v1 import certsvc_pb2 as pb

BROKEN = {grpc.StatusCode.UNKNOWN, grpc.StatusCode.INTERNAL}
EXAMPLES = settings(max_examples=60, deadline=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture])

hostname_text = st.one_of(
    st.text(max_size=300),
    st.from_regex(r"[a-zA-Z0-9.*_-]{1,70}", fullmatch=True),
    st.builds(lambda name: name + ".example.com", st.text(min_size=1, max_size=30)),
)


def _answer(call, request) -> grpc.StatusCode:
    """Make the call; return its status code after checking it is a proper answer."""
    try:
        call(request, timeout=20)
    except grpc.RpcError as error:
        code = error.code()
        assert code not in BROKEN, f"{code.name}: {error.details()}"
        if code == grpc.StatusCode.INVALID_ARGUMENT:
            assert error.details(), "INVALID_ARGUMENT without a message"
        return code
    return grpc.StatusCode.OK


@EXAMPLES
@given(hostname=hostname_text, app_id=st.text(max_size=150))
def test_add_domain_any_input(stub, hostname: str, app_id: str) -> None:
    _answer(stub.AddDomain, pb.AddDomainRequest(hostname=hostname, app_id=app_id))


@EXAMPLES
@given(rpc=st.sampled_from(["GetDomain", "RemoveDomain", "RequestCertificate",
                            "ListDomainEvents", "SetForceHttps", "CheckDomain"]),
       hostname=hostname_text)
def test_hostname_rpcs_any_input(stub, rpc: str, hostname: str) -> None:
    _answer(getattr(stub, rpc), getattr(pb, f"{rpc}Request")(hostname=hostname))


@EXAMPLES
@given(hostname=hostname_text, include_private_key=st.booleans())
def test_get_certificate_any_input(stub, hostname: str, include_private_key: bool) -> None:
    _answer(stub.GetCertificate, pb.GetCertificateRequest(
        hostname=hostname, include_private_key=include_private_key))


def _valid_domain_token(hostname: str) -> str:
    return base64.urlsafe_b64encode(f"domain:{hostname}".encode()).decode().rstrip("=")


page_tokens = st.one_of(
    st.text(max_size=600),
    st.builds(lambda text: base64.urlsafe_b64encode(text.encode()).decode(),
              st.text(max_size=80)),
    st.builds(lambda kind, value: base64.urlsafe_b64encode(f"{kind}:{value}".encode()).decode(),
              st.sampled_from(["domain", "event", "other"]), st.text(max_size=40)),
    st.builds(lambda hostname, cut: _valid_domain_token(hostname)[:cut],
              st.from_regex(r"[a-z0-9.-]{1,40}", fullmatch=True), st.integers(0, 60)),
)


@EXAMPLES
@given(app_id=st.text(max_size=150), page_size=st.integers(-2**31, 2**31 - 1),
       page_token=page_tokens)
def test_list_domains_any_input(stub, app_id: str, page_size: int, page_token: str) -> None:
    _answer(stub.ListDomains, pb.ListDomainsRequest(app_id=app_id, page_size=page_size,
                                                    page_token=page_token))


@pytest.fixture(scope="module")
def events_hostname(stub) -> str:
    hostname = unique_hostname("events-fuzz")
    stub.AddDomain(pb.AddDomainRequest(hostname=hostname, app_id="app-fuzz"))
    return hostname


@EXAMPLES
@given(page_size=st.integers(-2**31, 2**31 - 1), page_token=page_tokens)
def test_list_events_any_input(stub, events_hostname: str, page_size: int,
                               page_token: str) -> None:
    _answer(stub.ListDomainEvents, pb.ListDomainEventsRequest(
        hostname=events_hostname, page_size=page_size, page_token=page_token))


@EXAMPLES
@given(issuance_id=st.one_of(st.text(max_size=100), st.uuids().map(str)))
def test_get_issuance_any_input(stub, issuance_id: str) -> None:
    _answer(stub.GetIssuance, pb.GetIssuanceRequest(id=issuance_id))


METHODS = [method.name for method in
           pb.DESCRIPTOR.services_by_name["CertificateService"].methods]


@EXAMPLES
@given(method=st.sampled_from(METHODS), payload=st.binary(max_size=300))
def test_raw_bytes_any_method(channel, method: str, payload: bytes) -> None:
    call = channel.unary_unary(f"/certsvc.v1.CertificateService/{method}")

    _answer(call, payload)


def _pem_material() -> tuple[str, str, str]:
    """Return a self-signed certificate, its EC key and an RSA key, all as PEM text."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "upload.example.com")])
    now = datetime.datetime.now(datetime.timezone.utc)
    certificate = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
                   .public_key(key.public_key()).serial_number(x509.random_serial_number())
                   .not_valid_before(now).not_valid_after(now + datetime.timedelta(days=30))
                   .add_extension(x509.SubjectAlternativeName(
                       [x509.DNSName("upload.example.com")]), critical=False)
                   .sign(key, hashes.SHA256()))
    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    as_pem = (serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
              serialization.NoEncryption())
    return (certificate.public_bytes(serialization.Encoding.PEM).decode(),
            key.private_bytes(*as_pem).decode(), rsa_key.private_bytes(*as_pem).decode())


CERTIFICATE_PEM, KEY_PEM, RSA_KEY_PEM = _pem_material()


@st.composite
def mutated_pem(draw: st.DrawFn) -> str:
    """PEM text with the accidents of copying and pasting, or worse."""
    text = draw(st.sampled_from([CERTIFICATE_PEM, KEY_PEM, RSA_KEY_PEM,
                                 CERTIFICATE_PEM + CERTIFICATE_PEM, KEY_PEM + CERTIFICATE_PEM]))
    for _ in range(draw(st.integers(1, 3))):
        position = draw(st.integers(0, len(text)))
        mutation = draw(st.sampled_from(
            ["truncate", "insert", "delete", "flip", "crlf", "bom", "junk", "utf16", "binary"]))
        if mutation == "truncate":
            text = text[:position]
        elif mutation == "insert":
            text = text[:position] + draw(st.text(max_size=20)) + text[position:]
        elif mutation == "delete":
            text = text[:position] + text[position + draw(st.integers(1, 40)):]
        elif mutation == "flip" and position < len(text):
            text = text[:position] + chr((ord(text[position]) + 1) % 0x80) + text[position + 1:]
        elif mutation == "crlf":
            text = text.replace("\n", "\r\n")
        elif mutation == "bom":
            text = "\ufeff" + text
        elif mutation == "junk":
            text = draw(st.text(max_size=50)) + "\n" + text + "\n" + draw(st.text(max_size=50))
        elif mutation == "utf16":
            text = text.encode("utf-16").decode("latin-1")
        elif mutation == "binary":
            text = draw(st.binary(max_size=200)).decode("latin-1")
    return text


pem_text = st.one_of(mutated_pem(), st.text(max_size=500),
                     st.sampled_from([CERTIFICATE_PEM, KEY_PEM, RSA_KEY_PEM, ""]))


@pytest.fixture(scope="module")
def upload_hostname(stub) -> str:
    hostname = unique_hostname("upload-fuzz")
    stub.AddDomain(pb.AddDomainRequest(hostname=hostname, app_id="app-fuzz"))
    return hostname


@settings(max_examples=150, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(chain=pem_text, key=pem_text, passphrase=st.one_of(st.just(""), st.text(max_size=40)))
def test_upload_certificate_any_input(stub, upload_hostname: str, chain: str, key: str,
                                      passphrase: str) -> None:
    _answer(stub.UploadCertificate, pb.UploadCertificateRequest(
        hostname=upload_hostname, certificate_chain_pem=chain, private_key_pem=key,
        passphrase=passphrase))

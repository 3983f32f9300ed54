"""validate_upload on every upload case, without I/O: the stored chain or the ordered problems."""

from __future__ import annotations

import datetime
import shutil
import subprocess
from pathlib import Path

import pytest
from cryptography import x509

from pki_factory import Issued, Pki, issue, make_key
from service.certificate_details import key_type_name
from service.validation import chain as chain_module
from service.validation.certificate_upload import validate_upload
from service.validation.hostname import normalize_hostname
from service.validation.problems import CHAIN_FIELD, UploadRejected
from service.validation.trust_anchors import TrustAnchors, parse_bundle
from upload_cases import CASES, UploadCase, host_of, missing_words, words_of

ZONE = "zone.example.com"


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.timezone.utc)


def _validate(case: UploadCase):
    pki = Pki.create(case.name)
    upload = case.build(pki, ZONE)
    hostname = normalize_hostname(upload.hostname).ascii
    anchors = TrustAnchors([pki.root.certificate])
    return upload, lambda: validate_upload(hostname, upload.chain_pem, upload.key_pem,
                                           upload.passphrase, anchors, _now())


@pytest.mark.parametrize("case", [case for case in CASES if case.accepted],
                         ids=lambda case: case.name)
def test_accepted_upload(case: UploadCase) -> None:
    upload, validate = _validate(case)

    result = validate()

    assert [cert.subject for cert in result.chain] == [
        issued.certificate.subject for issued in upload.expected_chain]
    assert result.chain == [issued.certificate for issued in upload.expected_chain]
    for word in case.warnings:
        assert any(word in warning for warning in result.warnings), result.warnings
    if not case.warnings:
        assert result.warnings == []
    if case.key_type:
        assert key_type_name(result.private_key.public_key()) == case.key_type


@pytest.mark.parametrize("case", [case for case in CASES if not case.accepted],
                         ids=lambda case: case.name)
def test_rejected_upload(case: UploadCase) -> None:
    upload, validate = _validate(case)

    with pytest.raises(UploadRejected) as raised:
        validate()

    problems = raised.value.problems
    expected = words_of(case, ZONE)
    assert [problem.field for problem in problems] == [field for field, _ in expected], [
        problem.message for problem in problems]
    for problem, (_, words) in zip(problems, expected):
        assert missing_words(problem.message, words) == [], problem.message


def test_messages_never_contain_key() -> None:
    case = next(case for case in CASES if case.name == "key mismatch")
    upload, validate = _validate(case)

    with pytest.raises(UploadRejected) as raised:
        validate()

    key_lines = [line for line in upload.key_pem.splitlines() if "-----" not in line]
    for problem in raised.value.problems:
        for line in key_lines:
            assert line not in problem.message


def test_dates_checked_at_given_time() -> None:
    pki = Pki.create("time")
    leaf = pki.leaf([host_of(ZONE)])
    anchors = TrustAnchors([pki.root.certificate])
    after_expiry = leaf.certificate.not_valid_after_utc + datetime.timedelta(seconds=1)

    validate_upload(host_of(ZONE), pki.chain_pem(leaf), leaf.key_pem(), "", anchors,
                    leaf.certificate.not_valid_after_utc)
    with pytest.raises(UploadRejected) as raised:
        validate_upload(host_of(ZONE), pki.chain_pem(leaf), leaf.key_pem(), "", anchors,
                        after_expiry)

    assert "expired" in raised.value.problems[0].message


def test_missing_intermediate_names_its_url() -> None:
    pki = Pki.create("aia")
    url = "http://ca.example.net/intermediate.der"
    access = x509.AuthorityInformationAccess([x509.AccessDescription(
        x509.AuthorityInformationAccessOID.CA_ISSUERS, x509.UniformResourceIdentifier(url))])
    leaf = pki.leaf([host_of(ZONE)], extra_extensions=[access])

    with pytest.raises(UploadRejected) as raised:
        validate_upload(host_of(ZONE), leaf.pem(), leaf.key_pem(), "",
                        TrustAnchors([pki.root.certificate]), _now())

    message = raised.value.problems[0].message
    assert "Test Intermediate CA aia" in message
    assert url in message


def test_root_copy_with_new_dates_trusted() -> None:
    pki = Pki.create("reissued root")
    leaf = pki.leaf([host_of(ZONE)])
    reissued = issue(subject_cn="Test Root CA reissued root", signer=None, key=pki.root.key,
                     ca=True)
    anchors = TrustAnchors([reissued.certificate])

    result = validate_upload(host_of(ZONE), pki.chain_pem(leaf) + pki.root.pem(),
                             leaf.key_pem(), "", anchors, _now())

    assert result.chain == [leaf.certificate, pki.intermediate.certificate]


def test_path_search_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    """Check that the search gives up after a bounded number of candidates.

    Same-name CA certificates whose two keys sign each other could otherwise make it
    try every order of them.
    """
    checks = []
    original = chain_module.signed_by

    def counting_signed_by(child, parent):
        checks.append(1)
        return original(child, parent)

    monkeypatch.setattr(chain_module, "signed_by", counting_signed_by)
    first, second = Issued(None, make_key()), Issued(None, make_key())
    name = "Test Mutual CA"
    signer_of = {id(first): second, id(second): first}
    copies = []
    for holder in [first, second] * 20:
        other = signer_of[id(holder)]
        signer = Issued(issue(subject_cn=name, signer=None, key=other.key, ca=True).certificate,
                        other.key)
        copies.append(issue(subject_cn=name, signer=signer, key=holder.key, ca=True))
    leaf_signer = Issued(copies[0].certificate, first.key)
    leaf = issue(subject_cn=host_of(ZONE), signer=leaf_signer, key=None, ca=False,
                 names=[host_of(ZONE)])
    chain = leaf.pem() + "".join(copy.pem() for copy in copies)
    anchors = TrustAnchors([Pki.create("elsewhere").root.certificate])

    with pytest.raises(UploadRejected) as raised:
        validate_upload(host_of(ZONE), chain, leaf.key_pem(), "", anchors, _now())

    assert [problem.field for problem in raised.value.problems] == [CHAIN_FIELD]
    assert "no path" in raised.value.problems[0].message
    # 40 certificates allow about 20**6 orders; a bounded search checks a few hundred links.
    assert len(checks) < 50 * len(copies)


@pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl command")
def test_sha1_signature_named(tmp_path: Path) -> None:
    """cryptography no longer signs with SHA-1, so the openssl command makes this leaf."""
    pki = Pki.create("sha1")
    (tmp_path / "ca.pem").write_text(pki.intermediate.pem())
    (tmp_path / "ca.key").write_text(pki.intermediate.key_pem())
    (tmp_path / "ext.cnf").write_text(
        f"subjectAltName=DNS:{host_of(ZONE)}\nextendedKeyUsage=serverAuth\n"
        "authorityKeyIdentifier=keyid\n")
    commands = [
        ["openssl", "req", "-new", "-newkey", "rsa:2048", "-nodes", "-keyout", "leaf.key",
         "-out", "leaf.csr", "-subj", f"/CN={host_of(ZONE)}"],
        ["openssl", "x509", "-req", "-in", "leaf.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
         "-CAcreateserial", "-sha1", "-days", "30", "-extfile", "ext.cnf", "-out", "leaf.pem"],
    ]
    for command in commands:
        subprocess.run(command, cwd=tmp_path, check=True, capture_output=True)
    leaf_pem = (tmp_path / "leaf.pem").read_text()
    assert x509.load_pem_x509_certificate(leaf_pem.encode()).signature_hash_algorithm.name == "sha1"

    with pytest.raises(UploadRejected) as raised:
        validate_upload(host_of(ZONE), leaf_pem + pki.intermediate.pem(),
                        (tmp_path / "leaf.key").read_text(), "",
                        TrustAnchors([pki.root.certificate]), _now())

    messages = [problem.message for problem in raised.value.problems]
    assert len(messages) == 1
    assert "SHA-1" in messages[0]


def test_bundle_parsing_skips_bad_blocks() -> None:
    pki = Pki.create("bundle")
    broken = "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"

    roots, skipped = parse_bundle((pki.root.pem() + broken + pki.intermediate.pem()).encode())

    assert roots == [pki.root.certificate, pki.intermediate.certificate]
    assert skipped == 1


def test_damaged_leaf_reports_only_damage() -> None:
    """A leaf with a line lost in copying is the only problem; the intermediate is not judged."""
    pki = Pki.create("damaged")
    leaf = pki.leaf([host_of(ZONE)])
    lines = leaf.pem().splitlines(keepends=True)
    damaged_leaf = "".join(lines[:3] + lines[4:])

    with pytest.raises(UploadRejected) as raised:
        validate_upload(host_of(ZONE), damaged_leaf + pki.intermediate.pem(), leaf.key_pem(), "",
                        TrustAnchors([pki.root.certificate]), _now())

    problems = raised.value.problems
    assert len(problems) == 1, [problem.message for problem in problems]
    assert problems[0].field == CHAIN_FIELD


def test_key_off_curve_rejected_cleanly() -> None:
    """A certificate whose EC point is not on its curve is a problem, not a crash."""
    import base64

    pki = Pki.create("off-curve")
    leaf = pki.leaf([host_of(ZONE)], key_kind="p256")
    der = bytearray(leaf.der())
    point = der.index(b"\x03\x42\x00\x04") + 4
    der[point] ^= 0x01
    body = base64.encodebytes(bytes(der)).decode()
    broken_pem = f"-----BEGIN CERTIFICATE-----\n{body}-----END CERTIFICATE-----\n"

    with pytest.raises(UploadRejected) as raised:
        validate_upload(host_of(ZONE), broken_pem + pki.intermediate.pem(), leaf.key_pem(), "",
                        TrustAnchors([pki.root.certificate]), _now())

    assert raised.value.problems

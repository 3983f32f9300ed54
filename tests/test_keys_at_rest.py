"""Private keys at rest: sealed rows, the master key at start-up, rotation, database dumps."""

from __future__ import annotations

import base64
import datetime
import signal
import subprocess
import time
import uuid
from collections.abc import Iterator

import grpc
import psycopg
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

import leak_scan
from conftest import MASTER_KEY, OPERATOR_TOKEN, unique_hostname, wait_for_issuance
from devtools import stack
from devtools.credentials import new_master_key, with_bearer_token
from devtools.pebble import free_port
from service.certificate_details import chain_to_pem, describe, seal_private_key
from service.sealed_columns import (SEALED_COLUMNS, account_key_associated_data,
                                     certificate_key_associated_data)
from service.encryption import Keyring, key_id
from service.grpc_gen.certsvc.v1 import certsvc_pb2 as pb
from service.grpc_gen.certsvc.v1 import certsvc_pb2_grpc
from service.key_rotation import APPLICATION_NAME, count_by_key
from service.store import accounts as account_rows
from service.store import domains as domain_rows
from service.store.certificates import NewCertificate, insert_certificate
from service.store.migrate import migrate


def _keyring(*encoded: str) -> Keyring:
    keys = [base64.b64decode(key) for key in encoded]
    return Keyring(keys[0], tuple(keys[1:]))


def _key_pem(key: ec.EllipticCurvePrivateKey) -> str:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption()).decode()


def store_certificate(connection: psycopg.Connection, keyring: Keyring, domain_id: uuid.UUID,
                      hostname: str) -> str:
    """Store a self-signed certificate as the domain's active one; return its key as PEM."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hostname)])
    now = datetime.datetime.now(datetime.timezone.utc)
    leaf = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now).not_valid_after(now + datetime.timedelta(days=30))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(hostname)]), critical=False)
            .sign(key, hashes.SHA256()))
    details = describe(leaf)
    certificate_id = uuid.uuid4()
    insert_certificate(connection, NewCertificate(
        id=certificate_id, domain_id=domain_id, source="CUSTOM", hostnames=details.hostnames,
        chain_pem=chain_to_pem([leaf]),
        private_key_sealed=seal_private_key(keyring, key,
                                            certificate_key_associated_data(domain_id)),
        key_type=details.key_type, not_before=details.not_before, not_after=details.not_after,
        issuer=details.issuer, serial_number=details.serial_number,
        sha256_fingerprint=details.sha256_fingerprint, warnings=[]))
    domain_rows.update_domain(connection, domain_id, status="ACTIVE",
                              certificate_id=certificate_id)
    leak_scan.watch_private_key(f"test key of {hostname}", key.private_bytes(
        serialization.Encoding.DER, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption()))
    return _key_pem(key)


def add_domain_row(connection: psycopg.Connection, hostname: str, app_id: str = "app-keys"
                   ) -> uuid.UUID:
    domain, _ = domain_rows.insert_domain(connection, hostname=hostname,
                                          unicode_hostname=hostname, app_id=app_id,
                                          wildcard=False)
    return domain.id


def _start_api(processes: stack.Processes, name: str, environment: dict[str, str]
               ) -> tuple[str, grpc.Channel]:
    port = free_port()
    process = processes.start(name, "api", extra_env={
        "CERTSVC_GRPC_ADDRESS": f"127.0.0.1:{port}", "CERTSVC_DEV_INSECURE": "0", **environment})
    stack.wait_for_port("127.0.0.1", port, process=process)
    channel = grpc.insecure_channel(f"127.0.0.1:{port}")
    return name, with_bearer_token(channel, OPERATOR_TOKEN)


def _private_key(channel: grpc.Channel, hostname: str) -> str:
    stub = certsvc_pb2_grpc.CertificateServiceStub(channel)
    return stub.GetCertificate(pb.GetCertificateRequest(hostname=hostname,
                                                        include_private_key=True),
                               timeout=10).private_key_pem


# Sealed rows swapped between domains

def test_swapped_sealed_keys_data_loss(stub, database_url) -> None:
    hostnames = [unique_hostname("swap") for _ in range(2)]
    keyring = _keyring(MASTER_KEY)
    with psycopg.connect(database_url) as connection:
        for hostname in hostnames:
            store_certificate(connection, keyring, add_domain_row(connection, hostname), hostname)
        connection.execute(
            """
            UPDATE certificates c SET private_key_sealed = o.private_key_sealed
            FROM certificates o, domains dc, domains do_
            WHERE dc.id = c.domain_id AND do_.id = o.domain_id
              AND dc.hostname = %s AND do_.hostname = %s
            """, (hostnames[0], hostnames[1]))

    with pytest.raises(grpc.RpcError) as raised:
        stub.GetCertificate(pb.GetCertificateRequest(hostname=hostnames[0],
                                                     include_private_key=True), timeout=10)
    without_key = stub.GetCertificate(pb.GetCertificateRequest(hostname=hostnames[0]), timeout=10)

    assert raised.value.code() == grpc.StatusCode.DATA_LOSS
    assert hostnames[0] in raised.value.details()
    assert "cannot be decrypted" in raised.value.details()
    assert "another row" in raised.value.details()
    assert without_key.hostnames == [hostnames[0]]
    assert without_key.private_key_pem == ""


# The master key at start-up

@pytest.mark.parametrize("command", ["api", "worker", "rotate-master-key"])
@pytest.mark.parametrize(("master_key", "words"), [
    ("", ["no master key", "CERTSVC_MASTER_KEY"]),
    ("not base64!", ["CERTSVC_MASTER_KEY", "not valid base64"]),
    (base64.b64encode(b"sixteen byte key").decode(), ["CERTSVC_MASTER_KEY", "16 bytes", "32"]),
])
def test_master_key_checked_at_start(processes, command: str, master_key: str,
                                     words: list[str]) -> None:
    name = f"{command}-master-key-{uuid.uuid4().hex[:6]}"
    process = processes.start(name, command, extra_env={
        "CERTSVC_DEV_INSECURE": "0", "CERTSVC_MASTER_KEY": master_key,
        "CERTSVC_GRPC_ADDRESS": f"127.0.0.1:{free_port()}"})

    returncode = process.wait(timeout=60)

    assert returncode == 2
    log = processes.log_text(name)
    for word in words:
        assert word in log


def test_responder_needs_no_master_key(processes) -> None:
    port = free_port()
    process = processes.start("responder-no-key", "responder", extra_env={
        "CERTSVC_DEV_INSECURE": "0", "CERTSVC_MASTER_KEY": "",
        "CERTSVC_RESPONDER_ADDRESS": f"127.0.0.1:{port}"})
    try:
        stack.wait_for_port("127.0.0.1", port, process=process)
        running = process.poll() is None
    finally:
        processes.stop("responder-no-key")

    assert running


# Rotation

@pytest.fixture
def rotation_database() -> Iterator[str]:
    name = stack.unique_name("rotate")
    url = stack.create_database(name)
    migrate(url)
    yield url
    stack.drop_database(name)


def _rotate(processes: stack.Processes, name: str, environment: dict[str, str],
            *arguments: str) -> subprocess.Popen:
    return processes.start(name, "rotate-master-key", *arguments, extra_env=environment)


def _wait_until_blocked(database_url: str) -> None:
    """Wait until the rotation process waits for a row lock."""
    database = psycopg.conninfo.conninfo_to_dict(database_url)["dbname"]
    deadline = time.monotonic() + 60
    with psycopg.connect(stack.ADMIN_DATABASE_URL, autocommit=True) as connection:
        while time.monotonic() < deadline:
            waiting = connection.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = %s "
                "AND application_name = %s AND wait_event_type = 'Lock'",
                (database, APPLICATION_NAME)).fetchone()[0]
            if waiting:
                return
            time.sleep(0.05)
    pytest.fail("rotate-master-key never waited for the locked row")


def test_rotation_interrupted_and_rerun(processes, base_environment, rotation_database) -> None:
    old_key, new_key = new_master_key(), new_master_key()
    leak_scan.watch("old master key of the rotation test", old_key)
    leak_scan.watch("new master key of the rotation test", new_key)
    old_keyring = _keyring(old_key)
    expected: dict[str, str] = {}
    with psycopg.connect(rotation_database) as connection:
        for _ in range(30):
            hostname = unique_hostname("rotate")
            expected[hostname] = store_certificate(connection, old_keyring,
                                                   add_domain_row(connection, hostname), hostname)
        account_id = uuid.uuid4()
        account_key = ec.generate_private_key(ec.SECP256R1())
        account_rows.insert_account(
            connection, account_id=account_id, directory_url="https://ca.invalid/dir",
            account_url="https://ca.invalid/acct/1", contact="",
            private_key_sealed=seal_private_key(
                old_keyring, account_key, account_key_associated_data(account_id)))
    during = {**base_environment, "CERTSVC_DATABASE_URL": rotation_database,
              "CERTSVC_DEV_INSECURE": "0", "CERTSVC_MASTER_KEY": new_key,
              "CERTSVC_PREVIOUS_MASTER_KEYS": old_key}
    api_name, channel = _start_api(processes, "api-rotation", during)

    # Interrupt the first run while it waits for a row in the middle.
    with psycopg.connect(rotation_database) as blocker:
        blocked_id = blocker.execute(
            "SELECT id FROM certificates ORDER BY id OFFSET 14 LIMIT 1").fetchone()[0]
        blocker.execute("SELECT 1 FROM certificates WHERE id = %s FOR UPDATE", (blocked_id,))
        first = _rotate(processes, "rotate-interrupted", during, "--batch-size", "5")
        _wait_until_blocked(rotation_database)
        first.send_signal(signal.SIGKILL)
        first.wait(timeout=30)
        blocker.rollback()

    new_id, old_id = key_id(base64.b64decode(new_key)).hex(), key_id(
        base64.b64decode(old_key)).hex()
    with psycopg.connect(rotation_database) as connection:
        halfway = count_by_key(connection)
    served_halfway = {hostname: _private_key(channel, hostname) for hostname in expected}

    second = _rotate(processes, "rotate-rerun", during)
    assert second.wait(timeout=60) == 0, processes.log_text("rotate-rerun")
    with psycopg.connect(rotation_database) as connection:
        after = count_by_key(connection)
    third = _rotate(processes, "rotate-again", during)
    assert third.wait(timeout=60) == 0, processes.log_text("rotate-again")

    processes.stop(api_name)
    only_new = {**during, "CERTSVC_PREVIOUS_MASTER_KEYS": ""}
    api_name, channel = _start_api(processes, "api-after-rotation", only_new)
    try:
        served_after = {hostname: _private_key(channel, hostname) for hostname in expected}
    finally:
        processes.stop(api_name)

    assert 0 < halfway.get(new_id, 0) < 30
    assert halfway[new_id] + halfway[old_id] == 31
    assert served_halfway == expected
    assert after == {new_id: 31}
    assert f"every stored value is sealed under key id={new_id}" in processes.log_text(
        "rotate-rerun")
    assert "re-sealed 0 values" in processes.log_text("rotate-again")
    assert served_after == expected


def test_rotation_reports_unknown_key(processes, base_environment, rotation_database) -> None:
    unknown_key, new_key = new_master_key(), new_master_key()
    hostname = unique_hostname("rotate-unknown")
    with psycopg.connect(rotation_database) as connection:
        store_certificate(connection, _keyring(unknown_key), add_domain_row(connection, hostname),
                          hostname)
        certificate_id = connection.execute("SELECT id FROM certificates").fetchone()[0]

    run = _rotate(processes, "rotate-unknown", {
        **base_environment, "CERTSVC_DATABASE_URL": rotation_database,
        "CERTSVC_MASTER_KEY": new_key})

    assert run.wait(timeout=60) == 1
    log = processes.log_text("rotate-unknown")
    assert f"certificates {certificate_id}" in log
    assert key_id(base64.b64decode(unknown_key)).hex() in log
    assert "CERTSVC_PREVIOUS_MASTER_KEYS" in log


# Database dumps

@pytest.mark.pebble
@pytest.mark.usefixtures("issuance_stack")
def test_database_dump_has_no_private_key(stub, database_url, tmp_path) -> None:
    hostname = unique_hostname("dump")
    stub.AddDomain(pb.AddDomainRequest(hostname=hostname, app_id="app-dump"))
    issuance = stub.RequestCertificate(pb.RequestCertificateRequest(hostname=hostname))
    assert wait_for_issuance(stub, issuance.id).state == pb.Issuance.SUCCEEDED
    key_pem = stub.GetCertificate(pb.GetCertificateRequest(
        hostname=hostname, include_private_key=True)).private_key_pem
    key_der = serialization.load_pem_private_key(key_pem.encode(), None).private_bytes(
        serialization.Encoding.DER, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption())
    with psycopg.connect(database_url) as connection:
        account_id, sealed = connection.execute(
            "SELECT id, private_key_sealed FROM acme_accounts LIMIT 1").fetchone()
    account_der = _keyring(MASTER_KEY).unseal(bytes(sealed),
                                              account_key_associated_data(account_id))

    dump = subprocess.run(["pg_dump", "--no-owner", "--dbname", database_url],
                          capture_output=True, text=True, timeout=120, check=True).stdout

    assert not leak_scan.PEM_BLOCK.search(dump)
    assert "CREATE TABLE public.certificates" in dump
    for der in (key_der, account_der):
        assert der.hex() not in dump
        for description, secret in leak_scan.secret_parts("key", der).items():
            assert secret not in dump, description


def test_every_sealed_column_is_rotated(database_url: str) -> None:
    """A *_sealed column missing from SEALED_COLUMNS would keep its old master key forever."""
    with psycopg.connect(database_url) as connection:
        columns = connection.execute(
            "SELECT table_name, column_name FROM information_schema.columns "
            "WHERE table_schema = 'public' AND column_name LIKE '%%\\_sealed'").fetchall()

    listed = {(column.table, column.column) for column in SEALED_COLUMNS}

    assert set(columns) == listed

"""The demo: issue a real certificate from a local Pebble through certsvc's gRPC api.

Starts Pebble and pebble-challtestsrv on loopback, migrates a fresh database, starts
`certsvc api`, `worker`, `responder` and `scheduler` in development mode, with a fresh
master key and an operator token of their own, adds a domain, requests a certificate,
waits for it and prints it. Stops what it started on exit, unless --keep-running is given.
"""

from __future__ import annotations

import argparse
import datetime
import os
import signal
import sys
import tempfile
import time
from pathlib import Path

import grpc
from cryptography import x509
from cryptography.x509 import verification

from devtools import stack
from devtools.credentials import new_master_key, new_token, with_bearer_token, write_callers_file
from devtools.pebble import LocalPebble, port_is_free
from service.grpc_gen.certsvc.v1 import certsvc_pb2 as pb
from service.grpc_gen.certsvc.v1 import certsvc_pb2_grpc

# The contract's default ports, so that the README's grpcurl calls work against the demo.
API_PORT = 50051
API_ADDRESS = f"127.0.0.1:{API_PORT}"
ACME_PORT = 14000
PEBBLE_MANAGEMENT_PORT = 15000
RESPONDER_PORT = 5002
DNS_PORT = 8053
CHALLTESTSRV_MANAGEMENT_PORT = 8055
DATABASE_NAME = "certsvc_demo"
REDIS_PREFIX = "certsvc-demo"


def _stop_on_signal(signum: int, _frame: object) -> None:
    raise KeyboardInterrupt(signal.Signals(signum).name)


def main() -> int:
    # A demo started in the background inherits an ignored SIGINT, and SIGTERM would end
    # it without stopping its children: both run the clean-up below instead.
    signal.signal(signal.SIGINT, _stop_on_signal)
    signal.signal(signal.SIGTERM, _stop_on_signal)
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hostname", default="shop.example.com",
                        help="domain to issue a certificate for (default shop.example.com)")
    parser.add_argument("--keep-running", action="store_true",
                        help="leave everything running after the certificate is printed, "
                             "until Ctrl-C")
    arguments = parser.parse_args()

    busy = [port for port in (API_PORT, ACME_PORT, PEBBLE_MANAGEMENT_PORT, RESPONDER_PORT,
                              DNS_PORT, CHALLTESTSRV_MANAGEMENT_PORT) if not port_is_free(port)]
    if busy:
        print(f"demo: ports {busy} on 127.0.0.1 are in use; stop what listens there (an "
              "earlier demo?) and run it again", file=sys.stderr)
        return 1

    workdir = Path(tempfile.mkdtemp(prefix="certsvc-demo-"))
    step(f"logs go to {workdir}")
    pebble = LocalPebble(workdir / "pebble", acme_port=ACME_PORT,
                         management_port=PEBBLE_MANAGEMENT_PORT, http_port=RESPONDER_PORT,
                         dns_port=DNS_PORT, challtestsrv_management_port=CHALLTESTSRV_MANAGEMENT_PORT)
    processes: stack.Processes | None = None
    try:
        step("starting Pebble and pebble-challtestsrv on 127.0.0.1")
        pebble.start()
        step(f"creating a fresh database {DATABASE_NAME} and migrating it")
        database_url = stack.create_database(DATABASE_NAME)
        stack.delete_redis_namespace(stack.REDIS_URL, REDIS_PREFIX)
        token_file, credentials = write_credentials(workdir)
        environment = {
            "CERTSVC_DATABASE_URL": database_url,
            "CERTSVC_REDIS_URL": stack.REDIS_URL,
            "CERTSVC_REDIS_PREFIX": REDIS_PREFIX,
            "CERTSVC_GRPC_ADDRESS": API_ADDRESS,
            **pebble.certsvc_environment(),
            "CERTSVC_ALLOW_PRIVATE_TARGETS": "1",
            # Development mode admits calls without credentials; calls that carry the
            # operator token are authenticated as in production.
            "CERTSVC_DEV_INSECURE": "1",
            **credentials,
        }
        processes = stack.Processes(environment, workdir / "logs")
        migrate = processes.start("migrate", "migrate")
        if migrate.wait(timeout=60) != 0:
            raise RuntimeError("certsvc migrate failed:\n" + processes.log_text("migrate"))

        step("starting certsvc api, worker, responder and scheduler (development mode)")
        api = processes.start("api", "api")
        responder = processes.start("responder", "responder")
        processes.start("worker", "worker")
        processes.start("scheduler", "scheduler")
        stack.wait_for_port("127.0.0.1", API_PORT, process=api)
        stack.wait_for_port("127.0.0.1", RESPONDER_PORT, process=responder)

        with grpc.insecure_channel(API_ADDRESS) as channel:
            certsvc = certsvc_pb2_grpc.CertificateServiceStub(
                with_bearer_token(channel, token_file.read_text().strip()))
            step(f"AddDomain {arguments.hostname}")
            certsvc.AddDomain(pb.AddDomainRequest(hostname=arguments.hostname, app_id="demo-app"))
            step("RequestCertificate")
            started = time.monotonic()
            issuance = certsvc.RequestCertificate(
                pb.RequestCertificateRequest(hostname=arguments.hostname))
            issuance = wait(certsvc, issuance.id)
            elapsed = time.monotonic() - started
            if issuance.state != pb.Issuance.SUCCEEDED:
                print(f"demo: issuance failed: {issuance.error}", file=sys.stderr)
                return 1
            certificate = certsvc.GetCertificate(pb.GetCertificateRequest(hostname=arguments.hostname))

        verified = verify(certificate.chain_pem, pebble.root_certificates_pem(), arguments.hostname)
        print()
        print(f"  names        {', '.join(certificate.hostnames)}")
        print(f"  issuer       {certificate.issuer}")
        print(f"  not after    {certificate.not_after.ToDatetime():%Y-%m-%d %H:%M:%S} UTC")
        print(f"  key type     {certificate.key_type}")
        print(f"  SHA-256      {certificate.sha256_fingerprint}")
        print(f"  chain        {verified}")
        print(f"  issued in    {elapsed:.2f} s (RequestCertificate to SUCCEEDED)")
        print()
        if arguments.keep_running:
            step(f"running; the operator token is in {token_file}; try:\n"
                 f"  export CERTSVC_TOKEN=$(cat {token_file})\n"
                 f"  .venv/bin/grpcurl -plaintext -H \"authorization: Bearer $CERTSVC_TOKEN\" "
                 f"-d '{{}}' {API_ADDRESS} certsvc.v1.CertificateService/ListDomains\n"
                 "(Ctrl-C or SIGTERM stops)")
            while True:
                time.sleep(3600)
        return 0
    except KeyboardInterrupt:
        return 0
    finally:
        step("stopping what the demo started")
        if processes is not None:
            processes.stop_all()
        pebble.stop()
        print(f"demo: logs are in {workdir}", file=sys.stderr)


def write_credentials(workdir: Path) -> tuple[Path, dict[str, str]]:
    """Write a master key, an operator token and the callers file listing its hash.

    Returns the token's file and the CERTSVC_* variables that point at the others.
    """
    master_key_file = workdir / "master.key"
    master_key_file.write_text(new_master_key() + "\n")
    master_key_file.chmod(0o600)
    token = new_token()
    token_file = workdir / "operator-token"
    token_file.write_text(token + "\n")
    token_file.chmod(0o600)
    callers_file = write_callers_file(workdir / "callers.toml", [
        {"name": "demo-operator", "apps": "*", "read_private_keys": True, "tokens": [token]}])
    return token_file, {"CERTSVC_MASTER_KEY_FILE": str(master_key_file),
                        "CERTSVC_API_TOKENS_FILE": str(callers_file)}


def wait(certsvc: certsvc_pb2_grpc.CertificateServiceStub, issuance_id: str,
         timeout: float = 120.0) -> pb.Issuance:
    deadline = time.monotonic() + timeout
    state = None
    while True:
        issuance = certsvc.GetIssuance(pb.GetIssuanceRequest(id=issuance_id))
        if issuance.state != state:
            state = issuance.state
            step(f"issuance {issuance.id}: {pb.Issuance.State.Name(state)}")
        if state in (pb.Issuance.SUCCEEDED, pb.Issuance.FAILED) or time.monotonic() > deadline:
            return issuance
        time.sleep(0.05)


def verify(chain_pem: str, roots_pem: str, hostname: str) -> str:
    """Verify the chain up to Pebble's root as a TLS client would; describe the result."""
    chain = x509.load_pem_x509_certificates(chain_pem.encode())
    store = verification.Store(x509.load_pem_x509_certificates(roots_pem.encode()))
    verifier = (verification.PolicyBuilder().store(store)
                .time(datetime.datetime.now(datetime.timezone.utc))
                .build_server_verifier(x509.DNSName(hostname)))
    path = verifier.verify(chain[0], chain[1:])
    return " -> ".join(certificate.subject.rfc4514_string() for certificate in path) + " (verified)"


def step(text: str) -> None:
    print(f"demo: {text}", flush=True)


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())

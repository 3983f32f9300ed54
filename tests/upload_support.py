"""Helpers for upload tests: an api process that trusts the tests' own roots, and its calls."""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from pathlib import Path

import grpc
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from devtools import stack
from devtools.pebble import free_port
from pki_factory import Issued
from service.grpc_gen.certsvc.v1 import certsvc_pb2 as pb
from upload_cases import Upload


def write_trust_bundle(path: Path, roots: Iterable[Issued]) -> Path:
    path.write_text("".join(root.pem() for root in roots))
    return path


def start_api(processes: stack.Processes, name: str, trust_bundle: Path,
              **extra_env: str) -> str:
    """Start a `certsvc api` of the test run that trusts trust_bundle; return its address."""
    port = free_port()
    address = f"127.0.0.1:{port}"
    process = processes.start(name, "api", extra_env={
        "CERTSVC_GRPC_ADDRESS": address, "CERTSVC_TRUST_BUNDLE": str(trust_bundle),
        **extra_env})
    stack.wait_for_port("127.0.0.1", port, process=process)
    return address


def unique_zone() -> str:
    return f"z{uuid.uuid4().hex[:10]}.example.com"


def upload_request(upload: Upload) -> pb.UploadCertificateRequest:
    return pb.UploadCertificateRequest(hostname=upload.hostname,
                                       certificate_chain_pem=upload.chain_pem,
                                       private_key_pem=upload.key_pem,
                                       passphrase=upload.passphrase)


def bad_request(error: grpc.RpcError) -> error_details_pb2.BadRequest:
    status = rpc_status.from_call(error)
    assert status is not None, "no google.rpc.Status details"
    detail = error_details_pb2.BadRequest()
    assert status.details[0].Unpack(detail)
    return detail

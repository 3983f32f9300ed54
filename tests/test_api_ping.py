"""Ping: the call that does nothing but authenticate, over a real gRPC connection."""

from __future__ import annotations

from service.grpc_gen.certsvc.v1 import certsvc_pb2 as pb


def test_ping_returns_empty_response(stub) -> None:
    response = stub.Ping(pb.PingRequest(), timeout=5)

    assert response == pb.PingResponse()

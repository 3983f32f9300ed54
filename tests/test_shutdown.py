"""Graceful shutdown of the api on SIGTERM."""

from __future__ import annotations

import signal

import grpc

from devtools import stack
from devtools.pebble import free_port
from service.grpc_gen.certsvc.v1 import certsvc_pb2 as pb
from service.grpc_gen.certsvc.v1 import certsvc_pb2_grpc


def test_api_exits_cleanly_on_sigterm(processes: stack.Processes) -> None:
    port = free_port()
    process = processes.start("api-shutdown", "api",
                              extra_env={"CERTSVC_GRPC_ADDRESS": f"127.0.0.1:{port}"})
    stack.wait_for_port("127.0.0.1", port, process=process)
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        certsvc_pb2_grpc.CertificateServiceStub(channel).ListDomains(pb.ListDomainsRequest())

    returncode = processes.stop("api-shutdown", sig=signal.SIGTERM)

    assert returncode == 0
    log = processes.log_text("api-shutdown")
    assert "received SIGTERM; shutting down" in log
    assert "api stopped" in log


def test_api_reports_not_serving_before_closing(processes: stack.Processes) -> None:
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    port = free_port()
    process = processes.start("api-drain", "api",
                              extra_env={"CERTSVC_GRPC_ADDRESS": f"127.0.0.1:{port}"})
    stack.wait_for_port("127.0.0.1", port, process=process)
    seen = []
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        health = health_pb2_grpc.HealthStub(channel)
        seen.append(health.Check(health_pb2.HealthCheckRequest(), timeout=5).status)
        process.send_signal(signal.SIGTERM)
        while process.poll() is None:
            try:
                seen.append(health.Check(health_pb2.HealthCheckRequest(), timeout=1).status)
            except grpc.RpcError:
                break

    assert seen[0] == health_pb2.HealthCheckResponse.SERVING
    assert health_pb2.HealthCheckResponse.NOT_SERVING in seen
    assert processes.stop("api-drain") == 0


def test_busy_port_names_variable(processes: stack.Processes) -> None:
    import socket

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        address = f"127.0.0.1:{busy.getsockname()[1]}"
        process = processes.start("responder-busy", "responder",
                                  extra_env={"CERTSVC_RESPONDER_ADDRESS": address})
        returncode = process.wait(timeout=30)

    assert returncode == 2
    log = processes.log_text("responder-busy")
    assert "CERTSVC_RESPONDER_ADDRESS" in log
    assert "Traceback" not in log

"""The certsvc command: one console script for every process and maintenance task."""

from __future__ import annotations

import argparse
import logging
import sys

from service.config import ConfigError, Settings
from service.errors import Unavailable
from service.logging_setup import configure_logging

logger = logging.getLogger(__name__)

COMMANDS = {
    "api": "run the gRPC api",
    "worker": "run an RQ worker on the issuance queue (extra flags: --burst, --name)",
    "responder": "run the HTTP-01 challenge responder",
    "scheduler": "run the periodic jobs",
    "migrate": "create or upgrade the database schema",
}


def _run_migrate(settings: Settings, argv: list[str]) -> None:
    from service.store.migrate import migrate

    argparse.ArgumentParser(prog="certsvc migrate", description=COMMANDS["migrate"]).parse_args(argv)
    applied = migrate(settings.database_url)
    logger.info("database schema is up to date; applied %d migrations: %s", len(applied),
                ", ".join(applied) or "none")


def _run_api(settings: Settings, argv: list[str]) -> None:
    from service.api.server import serve

    argparse.ArgumentParser(prog="certsvc api", description=COMMANDS["api"]).parse_args(argv)
    serve(settings)


def _run_responder(settings: Settings, argv: list[str]) -> None:
    from service.responder.server import serve

    parser = argparse.ArgumentParser(prog="certsvc responder", description=COMMANDS["responder"])
    parser.add_argument("--processes", type=int, default=1,
                        help="number of processes sharing the port (default 1)")
    arguments = parser.parse_args(argv)
    serve(settings, processes=max(1, arguments.processes))


def _run_worker(settings: Settings, argv: list[str]) -> None:
    from worker.runner import run_worker

    run_worker(settings, argv)


def _run_scheduler(settings: Settings, argv: list[str]) -> None:
    from worker.runner import run_scheduler

    run_scheduler(settings, argv)


_HANDLERS = {
    "api": _run_api,
    "worker": _run_worker,
    "responder": _run_responder,
    "scheduler": _run_scheduler,
    "migrate": _run_migrate,
}


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = argparse.ArgumentParser(
        prog="certsvc",
        description="TLS certificates for custom domains. Configuration comes from CERTSVC_* "
                    "environment variables (see README.md).",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="commands:\n" + "\n".join(f"  {name:<10} {text}" for name, text in COMMANDS.items()),
    )
    parser.add_argument("command", choices=sorted(_HANDLERS), metavar="command")
    parser.add_argument("arguments", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)
    arguments = parser.parse_args(argv)

    try:
        settings = Settings.from_env()
    except ConfigError as error:
        print(f"certsvc: configuration error: {error}", file=sys.stderr)
        return 2
    configure_logging(settings.log_level)
    try:
        _HANDLERS[arguments.command](settings, arguments.arguments)
    except ConfigError as error:
        logger.error("configuration error: %s", error)
        return 2
    except Unavailable as error:
        logger.error("cannot start: %s", error)
        return 3
    return 0


if __name__ == "__main__":
    sys.exit(main())

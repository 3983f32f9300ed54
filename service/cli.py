"""The certsvc command: one console script for every process and maintenance task."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

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
    "rotate-master-key": "re-seal stored private keys under CERTSVC_MASTER_KEY",
    "platform-cert": "install the platform's wildcard certificate (--chain FILE --key FILE)",
}


def _run_migrate(settings: Settings, argv: list[str]) -> None:
    from service.store.migrate import migrate

    argparse.ArgumentParser(prog="certsvc migrate", description=COMMANDS["migrate"]).parse_args(argv)
    applied = migrate(settings.database_url)
    logger.info("database schema is up to date; applied %d migrations: %s", len(applied),
                ", ".join(applied) or "none")


def _run_rotate_master_key(settings: Settings, argv: list[str]) -> int:
    from service.encryption import Keyring
    from service.key_rotation import DEFAULT_BATCH_SIZE, count_by_key, rotate

    parser = argparse.ArgumentParser(
        prog="certsvc rotate-master-key",
        description="Re-seal every stored private key that another master key sealed under "
                    "CERTSVC_MASTER_KEY, opening it with a key from "
                    "CERTSVC_PREVIOUS_MASTER_KEYS. Safe to interrupt and to run again.")
    parser.add_argument("--batch-size", type=int, default=DEFAULT_BATCH_SIZE,
                        help=f"rows read per query (default {DEFAULT_BATCH_SIZE})")
    parser.add_argument("--dry-run", action="store_true",
                        help="only count the stored values per master key id")
    arguments = parser.parse_args(argv)
    if settings.master_key is None:
        raise ConfigError("no master key: rotate-master-key needs the new key in "
                          "CERTSVC_MASTER_KEY (or CERTSVC_MASTER_KEY_FILE) and the old ones in "
                          "CERTSVC_PREVIOUS_MASTER_KEYS")
    keyring = Keyring.from_settings(settings)
    logger.info("current master key id=%s previous key ids=%s", keyring.primary_key_id,
                ",".join(keyring.previous_key_ids) or "none")

    if arguments.dry_run:
        import psycopg

        with psycopg.connect(settings.database_url) as connection:
            counts = count_by_key(connection)
        for sealed_key_id, count in sorted(counts.items()):
            current = " (current)" if sealed_key_id == keyring.primary_key_id else ""
            logger.info("values sealed under key id=%s%s: %d", sealed_key_id, current, count)
        return 0

    report = rotate(settings.database_url, keyring, batch_size=max(1, arguments.batch_size))
    logger.info("re-sealed %d values under key id=%s", report.resealed, keyring.primary_key_id)
    if report.failed:
        logger.error("%d values could not be opened: %s. Add the master key that sealed them "
                     "to CERTSVC_PREVIOUS_MASTER_KEYS and run again", len(report.failed),
                     ", ".join(report.failed))
        return 1
    if report.remaining:
        logger.error("values under other keys remain: %s. A process still seals with an old "
                     "CERTSVC_MASTER_KEY; restart every process with the new key and run again",
                     ", ".join(f"key id {key} ({count})"
                               for key, count in sorted(report.remaining.items())))
        return 1
    logger.info("every stored value is sealed under key id=%s; the previous keys can be "
                "removed from CERTSVC_PREVIOUS_MASTER_KEYS", keyring.primary_key_id)
    return 0
def _run_platform_cert(settings: Settings, argv: list[str]) -> None:
    from service.backends import connect_redis
    from service.encryption import Keyring
    from service.force_https import rebuild_mirror_quietly
    from service.platform import PlatformCertificateError, install_platform_certificate
    from service.redis_keys import RedisKeys
    from service.store.database import Database
    from service.trust_bundle import load_trust_anchors

    parser = argparse.ArgumentParser(prog="certsvc platform-cert",
                                     description=COMMANDS["platform-cert"])
    parser.add_argument("--chain", required=True, type=Path,
                        help="PEM file: the wildcard certificate first, then intermediates")
    parser.add_argument("--key", required=True, type=Path, help="PEM file of its private key")
    parser.add_argument("--passphrase-file", type=Path,
                        help="file whose first line is the passphrase of an encrypted key")
    arguments = parser.parse_args(argv)
    if not settings.platform_domain:
        raise ConfigError("CERTSVC_PLATFORM_DOMAIN is not set; set it to the domain the "
                          "wildcard certificate covers (for *.meteorapp.com: meteorapp.com)")
    keyring = Keyring.from_settings(settings)
    anchors = load_trust_anchors(settings.trust_bundle)
    try:
        chain_pem, key_pem = arguments.chain.read_bytes(), arguments.key.read_bytes()
        passphrase = ""
        if arguments.passphrase_file is not None:
            lines = arguments.passphrase_file.read_text().splitlines()
            passphrase = lines[0] if lines else ""
    except OSError as error:
        raise ConfigError(f"cannot read {error.filename}: {error.strerror}") from None

    database = Database(settings.database_url, max_size=1)
    database.open()
    try:
        installed = install_platform_certificate(database, keyring, settings.platform_domain,
                                                 chain_pem, key_pem, anchors, passphrase)
    except PlatformCertificateError as error:
        raise ConfigError(f"the platform certificate was not installed: {error}") from None
    # Platform hostnames with Force HTTPS on redirect from now on.
    client = connect_redis(settings.redis_url)
    rebuild_mirror_quietly(database, client, RedisKeys(settings.redis_prefix))
    client.close()
    database.close()
    details = installed.details
    logger.info("platform certificate installed for *.%s: serial %s, valid until %s UTC, "
                "%d platform hostnames active", settings.platform_domain, details.serial_number,
                f"{details.not_after:%Y-%m-%d %H:%M}", installed.activated_domains)


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
    "rotate-master-key": _run_rotate_master_key,
    "platform-cert": _run_platform_cert,
}


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = argparse.ArgumentParser(
        prog="certsvc",
        description="TLS certificates for custom domains. Configuration comes from CERTSVC_* "
                    "environment variables (see README.md).",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="commands:\n" + "\n".join(f"  {name:<18} {text}"
                                          for name, text in COMMANDS.items()),
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
        returncode = _HANDLERS[arguments.command](settings, arguments.arguments)
    except ConfigError as error:
        logger.error("configuration error: %s", error)
        return 2
    except Unavailable as error:
        logger.error("cannot start: %s", error)
        return 3
    return returncode or 0


if __name__ == "__main__":
    sys.exit(main())

"""The ACME account session of a worker: certbot's acme library with retries and short polls."""

from __future__ import annotations

import datetime
import email.utils
import logging
import random
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import certifi
import josepy
import requests
from acme import client as acme_client
from acme import messages
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from service.backends import Backends
from service.config import Settings
from service.metrics import BAD_NONCE_RETRIES
from service.sealed_columns import account_key_associated_data
from service.store import accounts as account_rows
from service.store import locks

logger = logging.getLogger(__name__)

USER_AGENT = "certsvc/0.1 (+acme-python)"
NETWORK_TIMEOUT_SECONDS = 30
# certbot's acme library retries a badNonce only once, but a CA may reject several nonces
# in a row (Pebble rejects 5% by default). Each request gets this many tries in all.
BAD_NONCE_TRIES = 10
# Polling: the first poll comes soon, later ones back off up to the maximum.
FIRST_POLL_DELAY_SECONDS = 0.05
MAX_POLL_DELAY_SECONDS = 2.0
# Retry-After from the CA is honoured up to this many seconds between polls.
MAX_RETRY_AFTER_SECONDS = 30.0

Result = TypeVar("Result")


class AcmeNetwork(acme_client.ClientNetwork):
    """ClientNetwork that retries badNonce errors and keeps the Retry-After of CA errors.

    certbot's acme library raises a CA problem as messages.Error without the HTTP
    response, so the Retry-After of a rateLimited or 503 response would be lost. This
    class keeps it with the error it belongs to.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.last_response: requests.Response | None = None
        self._problem_retry_after: tuple[Exception, datetime.datetime | None] | None = None

    def _send_request(self, method: str, url: str, *args: Any, **kwargs: Any) -> requests.Response:
        response = super()._send_request(method, url, *args, **kwargs)
        self.last_response = response
        return response

    def post(self, *args: Any, **kwargs: Any) -> requests.Response:
        # A badNonce rejects the request before the CA acts on it, so sending it again
        # with a fresh nonce is safe for every request, new-order included.
        attempt = 1
        while True:
            try:
                return self._post_once(*args, **kwargs)
            except (messages.Error, acme_client.errors.ClientError) as error:
                if getattr(error, "code", None) != "badNonce" or attempt >= BAD_NONCE_TRIES:
                    self._remember_retry_after(error)
                    raise
            BAD_NONCE_RETRIES.inc()
            logger.debug("retrying request after badNonce attempt=%d", attempt)
            attempt += 1

    def retry_after_for(self, error: BaseException) -> datetime.datetime | None:
        """Return the Retry-After that came with a CA error raised by post(), if any."""
        if self._problem_retry_after is not None and self._problem_retry_after[0] is error:
            return self._problem_retry_after[1]
        response = error.args[0] if isinstance(error, acme_client.errors.ClientError) and \
            error.args and isinstance(error.args[0], requests.Response) else None
        if response is not None:
            return parse_retry_after(response.headers.get("Retry-After", ""))
        return None

    def _remember_retry_after(self, error: Exception) -> None:
        # A requests.Response is falsy for error statuses, hence the explicit None test.
        response = self.last_response
        header = response.headers.get("Retry-After", "") if response is not None else ""
        self._problem_retry_after = (error, parse_retry_after(header))


def parse_retry_after(header: str) -> datetime.datetime | None:
    """Parse a Retry-After value (seconds or an HTTP date) into an aware UTC time."""
    header = header.strip()
    now = datetime.datetime.now(datetime.timezone.utc)
    if header.isdigit():
        return now + datetime.timedelta(seconds=int(header))
    try:
        when = email.utils.parsedate_to_datetime(header)
    except (TypeError, ValueError):
        return None
    return when if when.tzinfo else when.replace(tzinfo=datetime.timezone.utc)


class AcmeSession:
    """An ACME client bound to one directory and its registered account."""

    def __init__(self, settings: Settings, backends: Backends, client: acme_client.ClientV2,
                 network: AcmeNetwork, account_id: uuid.UUID, account_key: josepy.JWK) -> None:
        self.settings = settings
        self.backends = backends
        self.client = client
        self.network = network
        self.account_id = account_id
        self.account_key = account_key

    @classmethod
    def open(cls, settings: Settings, backends: Backends) -> AcmeSession:
        """Fetch the directory and load the stored account, registering one if there is none."""
        network, client = _connect(settings, josepy.JWKEC(key=ec.generate_private_key(ec.SECP256R1())))
        account_id, account_key, account_url = _load_or_register(settings, backends, network, client)
        network.key = account_key
        network.account = messages.RegistrationResource(uri=account_url, body=messages.Registration())
        return cls(settings, backends, client, network, account_id, account_key)

    def replace_account(self) -> None:
        """Deactivate the stored account and register a new one, once across all workers."""
        with self.backends.database.transaction() as connection:
            locks.lock_account_transaction(connection, self.settings.acme_directory_url)
            current = account_rows.get_valid_account(connection, self.settings.acme_directory_url)
            if current is not None and current.id == self.account_id:
                account_rows.deactivate_account(connection, current.id)
                logger.warning("the CA no longer knows account account_id=%s; registering anew",
                               self.account_id)
        fresh = AcmeSession.open(self.settings, self.backends)
        self.client, self.network = fresh.client, fresh.network
        self.account_id, self.account_key = fresh.account_id, fresh.account_key

    def call(self, operation: Callable[[acme_client.ClientV2], Result]) -> Result:
        """Run one ACME operation, registering a new account once if the CA forgot ours."""
        try:
            return operation(self.client)
        except messages.Error as error:
            if error.code not in ("accountDoesNotExist", "unauthorized") or not _names_account(error):
                raise
        self.replace_account()
        return operation(self.client)

    def post_as_get(self, url: str) -> requests.Response:
        """Fetch an ACME resource with a signed POST-as-GET request (RFC 8555 section 6.3)."""
        return self.call(lambda client: self.network.post(url, None,
                                                          new_nonce_url=client.directory.newNonce))

    def poll_until(self, fetch: Callable[[], tuple[Any, requests.Response]],
                   done: Callable[[Any], bool], deadline: float, what: str) -> Any:
        """Poll fetch until done(result), backing off and honouring Retry-After, or time out."""
        delay = FIRST_POLL_DELAY_SECONDS
        while True:
            result, response = fetch()
            if done(result):
                return result
            now = time.monotonic()
            if now >= deadline:
                raise acme_client.errors.TimeoutError(f"timed out waiting for {what}")
            wait = delay * random.uniform(0.9, 1.1)
            retry_at = parse_retry_after(response.headers.get("Retry-After", ""))
            if retry_at is not None:
                requested = (retry_at - datetime.datetime.now(datetime.timezone.utc)).total_seconds()
                wait = max(wait, min(requested, MAX_RETRY_AFTER_SECONDS))
            time.sleep(min(wait, max(deadline - now, 0.0)))
            delay = min(delay * 2, MAX_POLL_DELAY_SECONDS)


def _names_account(error: messages.Error) -> bool:
    """Return whether a CA problem is about the account rather than the request."""
    if error.code == "accountDoesNotExist":
        return True
    detail = (error.detail or "").lower()
    return "account" in detail and ("not exist" in detail or "unknown" in detail
                                    or "not found" in detail)


def open_directory_client(settings: Settings) -> acme_client.ClientV2:
    """Return a client of the configured directory for unsigned requests (renewal information)."""
    network = AcmeNetwork(key=None, alg=josepy.ES256, verify_ssl=_verify_setting(settings),
                          user_agent=USER_AGENT, timeout=NETWORK_TIMEOUT_SECONDS)
    directory = acme_client.ClientV2.get_directory(settings.acme_directory_url, network)
    return acme_client.ClientV2(directory, network)


def _connect(settings: Settings, key: josepy.JWK) -> tuple[AcmeNetwork, acme_client.ClientV2]:
    network = AcmeNetwork(key=key, alg=josepy.ES256, verify_ssl=_verify_setting(settings),
                          user_agent=USER_AGENT, timeout=NETWORK_TIMEOUT_SECONDS)
    directory = acme_client.ClientV2.get_directory(settings.acme_directory_url, network)
    return network, acme_client.ClientV2(directory, network)


_combined_bundles: dict[Path, str] = {}


def _verify_setting(settings: Settings) -> bool | str:
    """Return requests' verify value: the default roots plus CERTSVC_ACME_CA_BUNDLE if set."""
    extra = settings.acme_ca_bundle
    if extra is None:
        return True
    if extra not in _combined_bundles:
        combined = tempfile.NamedTemporaryFile("w", prefix="certsvc-acme-ca-", suffix=".pem",
                                               delete=False)
        with combined:
            combined.write(Path(certifi.where()).read_text())
            combined.write("\n")
            combined.write(extra.read_text())
        _combined_bundles[extra] = combined.name
    # requests accepts a CA bundle path where the acme library passes verify_ssl.
    return _combined_bundles[extra]


def _load_or_register(settings: Settings, backends: Backends, network: AcmeNetwork,
                      client: acme_client.ClientV2) -> tuple[uuid.UUID, josepy.JWK, str]:
    directory_url = settings.acme_directory_url
    with backends.database.transaction() as connection:
        record = account_rows.get_valid_account(connection, directory_url)
    if record is None:
        # Workers starting together must register one account, not one each.
        with backends.database.transaction() as connection:
            locks.lock_account_transaction(connection, directory_url)
            record = account_rows.get_valid_account(connection, directory_url)
            if record is None:
                record = _register(settings, backends, network, client, connection)
    key_der = backends.keyring.unseal(record.private_key_sealed,
                                      account_key_associated_data(record.id))
    private_key = serialization.load_der_private_key(key_der, password=None)
    return record.id, josepy.JWKEC(key=private_key), record.account_url


def _register(settings: Settings, backends: Backends, network: AcmeNetwork,
              client: acme_client.ClientV2, connection: Any) -> Any:
    private_key = ec.generate_private_key(ec.SECP256R1())
    network.key = josepy.JWKEC(key=private_key)
    network.account = None
    registration = messages.NewRegistration.from_data(
        email=settings.acme_email or None, terms_of_service_agreed=True)
    account = client.new_account(registration)
    account_id = uuid.uuid4()
    key_der = private_key.private_bytes(serialization.Encoding.DER,
                                        serialization.PrivateFormat.PKCS8,
                                        serialization.NoEncryption())
    record = account_rows.insert_account(
        connection, account_id=account_id, directory_url=settings.acme_directory_url,
        account_url=account.uri,
        private_key_sealed=backends.keyring.seal(
            key_der, account_key_associated_data(account_id)),
        contact=settings.acme_email,
    )
    logger.info("registered ACME account account_id=%s directory=%s", account_id,
                settings.acme_directory_url)
    return record

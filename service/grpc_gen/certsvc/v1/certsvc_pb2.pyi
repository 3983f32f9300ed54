import datetime

from google.protobuf import empty_pb2 as _empty_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class CertificateSource(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    CERTIFICATE_SOURCE_UNSPECIFIED: _ClassVar[CertificateSource]
    NONE: _ClassVar[CertificateSource]
    LETS_ENCRYPT: _ClassVar[CertificateSource]
    CUSTOM: _ClassVar[CertificateSource]
    PLATFORM: _ClassVar[CertificateSource]
CERTIFICATE_SOURCE_UNSPECIFIED: CertificateSource
NONE: CertificateSource
LETS_ENCRYPT: CertificateSource
CUSTOM: CertificateSource
PLATFORM: CertificateSource

class Domain(_message.Message):
    __slots__ = ("hostname", "unicode_hostname", "app_id", "status", "force_https", "force_https_effective", "wildcard", "certificate_source", "certificate_not_after", "last_error", "warnings", "created_at", "updated_at")
    class Status(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        STATUS_UNSPECIFIED: _ClassVar[Domain.Status]
        PENDING: _ClassVar[Domain.Status]
        ISSUING: _ClassVar[Domain.Status]
        ACTIVE: _ClassVar[Domain.Status]
        FAILED: _ClassVar[Domain.Status]
    STATUS_UNSPECIFIED: Domain.Status
    PENDING: Domain.Status
    ISSUING: Domain.Status
    ACTIVE: Domain.Status
    FAILED: Domain.Status
    HOSTNAME_FIELD_NUMBER: _ClassVar[int]
    UNICODE_HOSTNAME_FIELD_NUMBER: _ClassVar[int]
    APP_ID_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    FORCE_HTTPS_FIELD_NUMBER: _ClassVar[int]
    FORCE_HTTPS_EFFECTIVE_FIELD_NUMBER: _ClassVar[int]
    WILDCARD_FIELD_NUMBER: _ClassVar[int]
    CERTIFICATE_SOURCE_FIELD_NUMBER: _ClassVar[int]
    CERTIFICATE_NOT_AFTER_FIELD_NUMBER: _ClassVar[int]
    LAST_ERROR_FIELD_NUMBER: _ClassVar[int]
    WARNINGS_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    UPDATED_AT_FIELD_NUMBER: _ClassVar[int]
    hostname: str
    unicode_hostname: str
    app_id: str
    status: Domain.Status
    force_https: bool
    force_https_effective: bool
    wildcard: bool
    certificate_source: CertificateSource
    certificate_not_after: _timestamp_pb2.Timestamp
    last_error: str
    warnings: _containers.RepeatedScalarFieldContainer[str]
    created_at: _timestamp_pb2.Timestamp
    updated_at: _timestamp_pb2.Timestamp
    def __init__(self, hostname: _Optional[str] = ..., unicode_hostname: _Optional[str] = ..., app_id: _Optional[str] = ..., status: _Optional[_Union[Domain.Status, str]] = ..., force_https: _Optional[bool] = ..., force_https_effective: _Optional[bool] = ..., wildcard: _Optional[bool] = ..., certificate_source: _Optional[_Union[CertificateSource, str]] = ..., certificate_not_after: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., last_error: _Optional[str] = ..., warnings: _Optional[_Iterable[str]] = ..., created_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., updated_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class Issuance(_message.Message):
    __slots__ = ("id", "hostname", "state", "attempt", "error", "next_attempt_at", "certificate_id", "created_at", "updated_at")
    class State(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        STATE_UNSPECIFIED: _ClassVar[Issuance.State]
        QUEUED: _ClassVar[Issuance.State]
        SELF_CHECK: _ClassVar[Issuance.State]
        ORDERING: _ClassVar[Issuance.State]
        VALIDATING: _ClassVar[Issuance.State]
        FINALIZING: _ClassVar[Issuance.State]
        SUCCEEDED: _ClassVar[Issuance.State]
        FAILED: _ClassVar[Issuance.State]
    STATE_UNSPECIFIED: Issuance.State
    QUEUED: Issuance.State
    SELF_CHECK: Issuance.State
    ORDERING: Issuance.State
    VALIDATING: Issuance.State
    FINALIZING: Issuance.State
    SUCCEEDED: Issuance.State
    FAILED: Issuance.State
    ID_FIELD_NUMBER: _ClassVar[int]
    HOSTNAME_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    ATTEMPT_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    NEXT_ATTEMPT_AT_FIELD_NUMBER: _ClassVar[int]
    CERTIFICATE_ID_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    UPDATED_AT_FIELD_NUMBER: _ClassVar[int]
    id: str
    hostname: str
    state: Issuance.State
    attempt: int
    error: str
    next_attempt_at: _timestamp_pb2.Timestamp
    certificate_id: str
    created_at: _timestamp_pb2.Timestamp
    updated_at: _timestamp_pb2.Timestamp
    def __init__(self, id: _Optional[str] = ..., hostname: _Optional[str] = ..., state: _Optional[_Union[Issuance.State, str]] = ..., attempt: _Optional[int] = ..., error: _Optional[str] = ..., next_attempt_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., certificate_id: _Optional[str] = ..., created_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., updated_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class Certificate(_message.Message):
    __slots__ = ("id", "hostnames", "source", "chain_pem", "private_key_pem", "not_before", "not_after", "issuer", "serial_number", "sha256_fingerprint", "key_type", "warnings", "created_at")
    ID_FIELD_NUMBER: _ClassVar[int]
    HOSTNAMES_FIELD_NUMBER: _ClassVar[int]
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    CHAIN_PEM_FIELD_NUMBER: _ClassVar[int]
    PRIVATE_KEY_PEM_FIELD_NUMBER: _ClassVar[int]
    NOT_BEFORE_FIELD_NUMBER: _ClassVar[int]
    NOT_AFTER_FIELD_NUMBER: _ClassVar[int]
    ISSUER_FIELD_NUMBER: _ClassVar[int]
    SERIAL_NUMBER_FIELD_NUMBER: _ClassVar[int]
    SHA256_FINGERPRINT_FIELD_NUMBER: _ClassVar[int]
    KEY_TYPE_FIELD_NUMBER: _ClassVar[int]
    WARNINGS_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    id: str
    hostnames: _containers.RepeatedScalarFieldContainer[str]
    source: CertificateSource
    chain_pem: str
    private_key_pem: str
    not_before: _timestamp_pb2.Timestamp
    not_after: _timestamp_pb2.Timestamp
    issuer: str
    serial_number: str
    sha256_fingerprint: str
    key_type: str
    warnings: _containers.RepeatedScalarFieldContainer[str]
    created_at: _timestamp_pb2.Timestamp
    def __init__(self, id: _Optional[str] = ..., hostnames: _Optional[_Iterable[str]] = ..., source: _Optional[_Union[CertificateSource, str]] = ..., chain_pem: _Optional[str] = ..., private_key_pem: _Optional[str] = ..., not_before: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., not_after: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., issuer: _Optional[str] = ..., serial_number: _Optional[str] = ..., sha256_fingerprint: _Optional[str] = ..., key_type: _Optional[str] = ..., warnings: _Optional[_Iterable[str]] = ..., created_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class HttpHop(_message.Message):
    __slots__ = ("url", "status", "address", "error")
    URL_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    ADDRESS_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    url: str
    status: int
    address: str
    error: str
    def __init__(self, url: _Optional[str] = ..., status: _Optional[int] = ..., address: _Optional[str] = ..., error: _Optional[str] = ...) -> None: ...

class DomainCheck(_message.Message):
    __slots__ = ("ok", "url", "hops", "message", "warnings", "checked_at", "final_url")
    OK_FIELD_NUMBER: _ClassVar[int]
    URL_FIELD_NUMBER: _ClassVar[int]
    HOPS_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    WARNINGS_FIELD_NUMBER: _ClassVar[int]
    CHECKED_AT_FIELD_NUMBER: _ClassVar[int]
    FINAL_URL_FIELD_NUMBER: _ClassVar[int]
    ok: bool
    url: str
    hops: _containers.RepeatedCompositeFieldContainer[HttpHop]
    message: str
    warnings: _containers.RepeatedScalarFieldContainer[str]
    checked_at: _timestamp_pb2.Timestamp
    final_url: str
    def __init__(self, ok: _Optional[bool] = ..., url: _Optional[str] = ..., hops: _Optional[_Iterable[_Union[HttpHop, _Mapping]]] = ..., message: _Optional[str] = ..., warnings: _Optional[_Iterable[str]] = ..., checked_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., final_url: _Optional[str] = ...) -> None: ...

class DomainEvent(_message.Message):
    __slots__ = ("time", "type", "message", "issuance_id")
    TIME_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    ISSUANCE_ID_FIELD_NUMBER: _ClassVar[int]
    time: _timestamp_pb2.Timestamp
    type: str
    message: str
    issuance_id: str
    def __init__(self, time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., type: _Optional[str] = ..., message: _Optional[str] = ..., issuance_id: _Optional[str] = ...) -> None: ...

class AddDomainRequest(_message.Message):
    __slots__ = ("hostname", "app_id")
    HOSTNAME_FIELD_NUMBER: _ClassVar[int]
    APP_ID_FIELD_NUMBER: _ClassVar[int]
    hostname: str
    app_id: str
    def __init__(self, hostname: _Optional[str] = ..., app_id: _Optional[str] = ...) -> None: ...

class GetDomainRequest(_message.Message):
    __slots__ = ("hostname",)
    HOSTNAME_FIELD_NUMBER: _ClassVar[int]
    hostname: str
    def __init__(self, hostname: _Optional[str] = ...) -> None: ...

class ListDomainsRequest(_message.Message):
    __slots__ = ("app_id", "page_size", "page_token")
    APP_ID_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    app_id: str
    page_size: int
    page_token: str
    def __init__(self, app_id: _Optional[str] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListDomainsResponse(_message.Message):
    __slots__ = ("domains", "next_page_token")
    DOMAINS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    domains: _containers.RepeatedCompositeFieldContainer[Domain]
    next_page_token: str
    def __init__(self, domains: _Optional[_Iterable[_Union[Domain, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class RemoveDomainRequest(_message.Message):
    __slots__ = ("hostname",)
    HOSTNAME_FIELD_NUMBER: _ClassVar[int]
    hostname: str
    def __init__(self, hostname: _Optional[str] = ...) -> None: ...

class SetForceHttpsRequest(_message.Message):
    __slots__ = ("hostname", "force_https")
    HOSTNAME_FIELD_NUMBER: _ClassVar[int]
    FORCE_HTTPS_FIELD_NUMBER: _ClassVar[int]
    hostname: str
    force_https: bool
    def __init__(self, hostname: _Optional[str] = ..., force_https: _Optional[bool] = ...) -> None: ...

class CheckDomainRequest(_message.Message):
    __slots__ = ("hostname",)
    HOSTNAME_FIELD_NUMBER: _ClassVar[int]
    hostname: str
    def __init__(self, hostname: _Optional[str] = ...) -> None: ...

class RequestCertificateRequest(_message.Message):
    __slots__ = ("hostname",)
    HOSTNAME_FIELD_NUMBER: _ClassVar[int]
    hostname: str
    def __init__(self, hostname: _Optional[str] = ...) -> None: ...

class GetIssuanceRequest(_message.Message):
    __slots__ = ("id",)
    ID_FIELD_NUMBER: _ClassVar[int]
    id: str
    def __init__(self, id: _Optional[str] = ...) -> None: ...

class UploadCertificateRequest(_message.Message):
    __slots__ = ("hostname", "certificate_chain_pem", "private_key_pem", "passphrase")
    HOSTNAME_FIELD_NUMBER: _ClassVar[int]
    CERTIFICATE_CHAIN_PEM_FIELD_NUMBER: _ClassVar[int]
    PRIVATE_KEY_PEM_FIELD_NUMBER: _ClassVar[int]
    PASSPHRASE_FIELD_NUMBER: _ClassVar[int]
    hostname: str
    certificate_chain_pem: str
    private_key_pem: str
    passphrase: str
    def __init__(self, hostname: _Optional[str] = ..., certificate_chain_pem: _Optional[str] = ..., private_key_pem: _Optional[str] = ..., passphrase: _Optional[str] = ...) -> None: ...

class GetCertificateRequest(_message.Message):
    __slots__ = ("hostname", "include_private_key")
    HOSTNAME_FIELD_NUMBER: _ClassVar[int]
    INCLUDE_PRIVATE_KEY_FIELD_NUMBER: _ClassVar[int]
    hostname: str
    include_private_key: bool
    def __init__(self, hostname: _Optional[str] = ..., include_private_key: _Optional[bool] = ...) -> None: ...

class ListDomainEventsRequest(_message.Message):
    __slots__ = ("hostname", "page_size", "page_token")
    HOSTNAME_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    hostname: str
    page_size: int
    page_token: str
    def __init__(self, hostname: _Optional[str] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListDomainEventsResponse(_message.Message):
    __slots__ = ("events", "next_page_token")
    EVENTS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    events: _containers.RepeatedCompositeFieldContainer[DomainEvent]
    next_page_token: str
    def __init__(self, events: _Optional[_Iterable[_Union[DomainEvent, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

-- Domains, certificates, issuances, ACME accounts and the event timeline.

CREATE TABLE domains (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    -- Normal form: lowercase A-labels, no trailing dot; "*." first for a wildcard.
    hostname text NOT NULL UNIQUE,
    unicode_hostname text NOT NULL,
    app_id text NOT NULL,
    wildcard boolean NOT NULL DEFAULT false,
    status text NOT NULL DEFAULT 'PENDING'
        CHECK (status IN ('PENDING', 'ISSUING', 'ACTIVE', 'FAILED')),
    force_https boolean NOT NULL DEFAULT false,
    last_error text NOT NULL DEFAULT '',
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX domains_app_id_hostname ON domains (app_id, hostname);

CREATE TABLE certificates (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    domain_id uuid NOT NULL REFERENCES domains (id) ON DELETE CASCADE,
    source text NOT NULL CHECK (source IN ('LETS_ENCRYPT', 'CUSTOM', 'PLATFORM')),
    hostnames text[] NOT NULL,
    -- Leaf first, then intermediates in signing order, no root.
    chain_pem text NOT NULL,
    -- AES-256-GCM envelope of the PKCS#8 DER key; see service/encryption.py.
    private_key_sealed bytea NOT NULL,
    key_type text NOT NULL,
    not_before timestamptz NOT NULL,
    not_after timestamptz NOT NULL,
    issuer text NOT NULL,
    serial_number text NOT NULL,
    sha256_fingerprint text NOT NULL,
    warnings text[] NOT NULL DEFAULT '{}',
    issuance_id uuid,
    created_at timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX certificates_domain_id ON certificates (domain_id);

-- The certificate that serves the domain now; NULL until one is stored.
ALTER TABLE domains
    ADD COLUMN certificate_id uuid REFERENCES certificates (id) ON DELETE SET NULL;

CREATE TABLE issuances (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    domain_id uuid NOT NULL REFERENCES domains (id) ON DELETE CASCADE,
    hostname text NOT NULL,
    state text NOT NULL DEFAULT 'QUEUED'
        CHECK (state IN ('QUEUED', 'SELF_CHECK', 'ORDERING', 'VALIDATING', 'FINALIZING',
                         'SUCCEEDED', 'FAILED')),
    attempt integer NOT NULL DEFAULT 0,
    error text NOT NULL DEFAULT '',
    next_attempt_at timestamptz,
    order_url text,
    job_id text,
    certificate_id uuid REFERENCES certificates (id) ON DELETE SET NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);

-- At most one issuance in flight per domain: concurrent RequestCertificate calls
-- meet here and all return the same issuance.
CREATE UNIQUE INDEX issuances_one_in_flight ON issuances (domain_id)
    WHERE state NOT IN ('SUCCEEDED', 'FAILED');

CREATE INDEX issuances_domain_id_created_at ON issuances (domain_id, created_at DESC);

CREATE TABLE acme_accounts (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    directory_url text NOT NULL,
    account_url text NOT NULL,
    -- AES-256-GCM envelope of the account's PKCS#8 DER key.
    private_key_sealed bytea NOT NULL,
    contact text NOT NULL DEFAULT '',
    status text NOT NULL DEFAULT 'valid' CHECK (status IN ('valid', 'deactivated')),
    created_at timestamptz NOT NULL DEFAULT now()
);

-- One account in use per ACME directory.
CREATE UNIQUE INDEX acme_accounts_one_valid ON acme_accounts (directory_url)
    WHERE status = 'valid';

CREATE TABLE events (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    domain_id uuid NOT NULL REFERENCES domains (id) ON DELETE CASCADE,
    issuance_id uuid,
    type text NOT NULL,
    message text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX events_domain_id_id ON events (domain_id, id DESC);

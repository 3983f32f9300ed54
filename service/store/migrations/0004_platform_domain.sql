-- Platform hostnames (one label under CERTSVC_PLATFORM_DOMAIN) and the platform's
-- wildcard certificate that serves them all.

ALTER TABLE domains ADD COLUMN platform boolean NOT NULL DEFAULT false;

CREATE TABLE platform_certificates (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    -- The platform domain it was installed for, e.g. meteorapp.com; the newest row
    -- of a platform domain serves its hostnames.
    platform_domain text NOT NULL,
    hostnames text[] NOT NULL,
    -- Leaf first, then intermediates in signing order, no root.
    chain_pem text NOT NULL,
    -- AES-256-GCM envelope of the PKCS#8 DER key; associated data names this row.
    private_key_sealed bytea NOT NULL,
    key_type text NOT NULL,
    not_before timestamptz NOT NULL,
    not_after timestamptz NOT NULL,
    issuer text NOT NULL,
    serial_number text NOT NULL,
    sha256_fingerprint text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX platform_certificates_newest
    ON platform_certificates (platform_domain, created_at DESC);

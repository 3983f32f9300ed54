-- Expiry warnings already sent for platform certificates, one row per threshold, so
-- that each threshold is announced once.

CREATE TABLE platform_certificate_expiry_warnings (
    platform_certificate_id uuid NOT NULL REFERENCES platform_certificates (id) ON DELETE CASCADE,
    days integer NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (platform_certificate_id, days)
);

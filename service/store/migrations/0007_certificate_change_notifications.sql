-- Tell every api process when the certificate that serves a hostname may have changed,
-- so that their caches of hot hostnames drop it. Triggers catch every writer (issuance,
-- upload, removal, key rotation, an operator's psql), not only the code paths that
-- remember to. The payload is the hostname; NOTIFY is delivered at commit and
-- identical payloads of one transaction are delivered once.

CREATE FUNCTION certsvc_notify_domain_certificate_changed() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('certsvc_certificate_changed', OLD.hostname);
    IF TG_OP = 'UPDATE' AND NEW.hostname <> OLD.hostname THEN
        PERFORM pg_notify('certsvc_certificate_changed', NEW.hostname);
    END IF;
    RETURN NULL;
END;
$$;

-- Status and error updates, the most frequent writes, do not fire it.
CREATE TRIGGER domains_certificate_changed
    AFTER UPDATE ON domains
    FOR EACH ROW
    WHEN (OLD.certificate_id IS DISTINCT FROM NEW.certificate_id
          OR OLD.app_id IS DISTINCT FROM NEW.app_id
          OR OLD.hostname IS DISTINCT FROM NEW.hostname
          OR OLD.platform IS DISTINCT FROM NEW.platform)
    EXECUTE FUNCTION certsvc_notify_domain_certificate_changed();

CREATE TRIGGER domains_removed
    AFTER DELETE ON domains
    FOR EACH ROW
    EXECUTE FUNCTION certsvc_notify_domain_certificate_changed();

-- A certificate row changed in place, for example its key sealed again under a new
-- master key. Deleting the active certificate sets domains.certificate_id to NULL,
-- which the domains trigger reports.
CREATE FUNCTION certsvc_notify_certificate_row_changed() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('certsvc_certificate_changed', d.hostname)
    FROM domains d WHERE d.id = NEW.domain_id;
    RETURN NULL;
END;
$$;

CREATE TRIGGER certificates_changed
    AFTER UPDATE ON certificates
    FOR EACH ROW
    EXECUTE FUNCTION certsvc_notify_certificate_row_changed();

-- Return paths (issue 18): each sending domain has its own envelope-sender domain, by
-- default `bounces.<domain>`, so SPF is checked on a name under the From domain and aligns
-- with it for DMARC. The inbound server accepts `bounces+TOKEN@` every registered one.
ALTER TABLE sending_domains ADD COLUMN return_path TEXT NOT NULL DEFAULT '';
UPDATE sending_domains SET return_path = 'bounces.' || domain;
CREATE INDEX sending_domains_by_return_path ON sending_domains (return_path);
-- Set with verified_at_ms by a check that found the return path's SPF and MX records too.
-- Domains verified before return paths existed have it NULL: their mail keeps the
-- installation's bounce domain (where their bounces arrive today) until a check finds the
-- new records in place.
ALTER TABLE sending_domains ADD COLUMN return_path_verified_at_ms BIGINT;

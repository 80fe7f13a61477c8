-- DKIM key rotation (issue 18): a rotation makes a new key at a new selector, kept here as
-- the domain's next key (sealed like private_key, as sending_domains.next_private_key) and
-- published beside the current one. Once a check finds it in DNS it becomes the current key,
-- and the keys it replaced are listed in retired_keys (JSON: selector, k=, p= and until when
-- to keep each published), so mail signed just before the switch still verifies.
ALTER TABLE sending_domains ADD COLUMN next_selector TEXT;
ALTER TABLE sending_domains ADD COLUMN next_private_key TEXT;
ALTER TABLE sending_domains ADD COLUMN next_public_key_b64 TEXT;
ALTER TABLE sending_domains ADD COLUMN retired_keys TEXT;

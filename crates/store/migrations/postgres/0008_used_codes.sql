-- Payment codes a batch used, until they expire: loaded back into the writer's memory, so
-- that after a reload a code read as valid just before the batch that used it is still
-- refused. (The code's own row in payment_codes is deleted by that batch.)

CREATE TABLE payment_codes_used (
    code text PRIMARY KEY,
    expires_at bigint NOT NULL
);
CREATE INDEX payment_codes_used_expiry ON payment_codes_used (expires_at);

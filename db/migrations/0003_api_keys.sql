-- Keys of the read API. Only a SHA-256 of the secret is kept: keys are 256
-- random bits, so a fast hash is enough and a stolen table reveals none.
CREATE TABLE api_keys (
    key_id       text PRIMARY KEY CHECK (key_id ~ '^[0-9a-f]{12}$'),
    name         text NOT NULL CHECK (length(name) BETWEEN 1 AND 128),
    scopes       text[] NOT NULL CHECK (scopes <@ ARRAY['read', 'write'] AND cardinality(scopes) > 0),
    secret_hash  bytea NOT NULL CHECK (octet_length(secret_hash) = 32),
    created_at   timestamptz NOT NULL DEFAULT now(),
    revoked_at   timestamptz
);

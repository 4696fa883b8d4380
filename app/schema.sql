-- app/schema.sql: what pg-vault-app needs in its database, as the
-- reference design has it.  Applied by `make demo` and the tests after
-- CREATE EXTENSION pg_vault, as a superuser; idempotent.  The app itself
-- never changes the schema.
--
-- users.ssn and users.payment_token hold only Vault ciphertexts (keys
-- user-data and payment-data); ssn_hmac is vault_hmac(ssn, 'user-data'), a
-- blind index that finds a row by SSN without decrypting the table.

CREATE TABLE IF NOT EXISTS users (
	id            bigserial PRIMARY KEY,
	email         text NOT NULL,
	name          text NOT NULL,
	ssn           text,
	ssn_hmac      text,
	payment_token text,
	created_at    timestamptz DEFAULT now()
);

CREATE INDEX IF NOT EXISTS users_ssn_hmac_idx ON users (ssn_hmac);

-- vault_app: the privileges the app's database user needs, and no more.
-- Grant it to a static login role, or to Vault's dynamic users (the
-- database role's creation statements: GRANT vault_app TO "{{name}}").
DO $$
BEGIN
	IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = 'vault_app') THEN
		CREATE ROLE vault_app NOLOGIN;
	END IF;
END
$$;

GRANT vault_encryptor, vault_decryptor, vault_hasher, vault_kv_reader TO vault_app;
GRANT SELECT, INSERT ON users TO vault_app;
GRANT USAGE ON SEQUENCE users_id_seq TO vault_app;

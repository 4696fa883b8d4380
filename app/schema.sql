-- app/schema.sql: what pg-vault-app needs in its database, as the
-- reference design has it.  Applied by `make demo` and the tests after
-- CREATE EXTENSION pg_vault, as a superuser; idempotent.  The app itself
-- never changes the schema.
--
-- users.ssn and users.payment_token hold only Vault ciphertexts (keys
-- user-data and payment-data); ssn_hmac is vault_hmac(ssn, 'user-data'), a
-- blind index that finds a row by SSN without decrypting the table:
--   SELECT id FROM users WHERE ssn_hmac = (SELECT vault_hmac($1, 'user-data'))
--
-- The trigger encrypts plaintexts written into ssn and payment_token and
-- fills ssn_hmac; ciphertexts written by the app itself (vault_encrypt in
-- its INSERT) are kept as they are, at no extra Vault request.  The columns
-- are text checked against the vault_ciphertext domain by a table
-- constraint, which PostgreSQL evaluates after the trigger (a column of the
-- domain type would refuse the plaintext before the trigger could encrypt
-- it) and which refuses a plaintext even when the trigger does not fire.

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

DO $$
BEGIN
	IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_constraint
				   WHERE conrelid = 'users'::regclass AND conname = 'users_ssn_encrypted') THEN
		ALTER TABLE users ADD CONSTRAINT users_ssn_encrypted
			CHECK (ssn::vault_ciphertext IS NOT NULL OR ssn IS NULL);
	END IF;
	IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_constraint
				   WHERE conrelid = 'users'::regclass AND conname = 'users_payment_token_encrypted') THEN
		ALTER TABLE users ADD CONSTRAINT users_payment_token_encrypted
			CHECK (payment_token::vault_ciphertext IS NOT NULL OR payment_token IS NULL);
	END IF;
END
$$;

DO $$
BEGIN
	IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_trigger
				   WHERE tgrelid = 'users'::regclass AND tgname = 'users_vault_encrypt') THEN
		CREATE TRIGGER users_vault_encrypt
			BEFORE INSERT OR UPDATE ON users FOR EACH ROW
			EXECUTE FUNCTION vault_encrypt_columns('user-data', 'ssn:ssn_hmac', 'payment_token@payment-data');
	END IF;
END
$$;

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

-- Run once by the official image's entrypoint, when it initialises the data
-- directory, in POSTGRES_DB.  Creating the extension does not contact
-- Vault; the first pg_vault call does.
CREATE EXTENSION IF NOT EXISTS pg_vault;

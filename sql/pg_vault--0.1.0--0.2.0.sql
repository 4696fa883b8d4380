/* pg_vault 0.1.0 -> 0.2.0: ALTER EXTENSION pg_vault UPDATE TO '0.2.0' */
\echo Use "ALTER EXTENSION pg_vault UPDATE TO '0.2.0'" to load this file. \quit

-- Every object that 0.2.0 adds or changes compared with 0.1.0 (the install
-- script as of commit f69c331) is created here too, in the same words as in
-- pg_vault--0.2.0.sql; test/upgrade.sh checks that an updated 0.1.0 and a
-- fresh 0.2.0 have the same catalog.

-- ==== statistics (src/stat.c) =======================================
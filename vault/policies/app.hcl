# app: the companion app's policy, attached to the AppRole pg-vault-app
# (and to the token pg_vault uses for the app's database).  Least
# privilege: read and list on its own secrets (app/, with its credentials
# under app/clients/, and the development environment's development/database,
# /api and /features: a staging or production deployment attaches a copy
# of this policy naming its own environment instead), its two transit keys
# (no key management, no auto-creation: "create" is not granted on
# encrypt), its database role.

path "secret/data/app/*" {
  capabilities = ["read", "list"]
}

path "secret/metadata/app/*" {
  capabilities = ["read", "list"]
}

path "secret/data/development/*" {
  capabilities = ["read", "list"]
}

path "secret/metadata/development/*" {
  capabilities = ["read", "list"]
}

path "transit/encrypt/user-data" {
  capabilities = ["update"]
}

path "transit/decrypt/user-data" {
  capabilities = ["update"]
}

path "transit/rewrap/user-data" {
  capabilities = ["update"]
}

path "transit/hmac/user-data" {
  capabilities = ["update"]
}

# hmac/<key>/<algorithm>
path "transit/hmac/user-data/*" {
  capabilities = ["update"]
}

path "transit/encrypt/payment-data" {
  capabilities = ["update"]
}

path "transit/decrypt/payment-data" {
  capabilities = ["update"]
}

path "transit/rewrap/payment-data" {
  capabilities = ["update"]
}

path "transit/hmac/payment-data" {
  capabilities = ["update"]
}

path "transit/hmac/payment-data/*" {
  capabilities = ["update"]
}

path "database/creds/app-role" {
  capabilities = ["read"]
}

path "auth/token/renew-self" {
  capabilities = ["update"]
}

path "auth/token/lookup-self" {
  capabilities = ["read"]
}

# revoke a database lease the app replaced before it expired; the lease id
# goes in the request body, as Vault's API has it, so the path cannot be
# narrowed to the role's leases (lease ids are unguessable: the app can
# revoke only those it was given)
path "sys/leases/revoke" {
  capabilities = ["update"]
}

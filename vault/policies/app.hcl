# app: the companion app's policy, attached to the AppRole pg-vault-app.
# Least privilege: its own secrets, its two transit keys (no key management,
# no auto-creation: "create" is not granted on encrypt), its database role.

path "secret/data/app/*" {
  capabilities = ["read"]
}

path "secret/metadata/app/*" {
  capabilities = ["read"]
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

# revoke a database lease the app replaced before it expired
path "sys/leases/revoke/database/creds/app-role/*" {
  capabilities = ["update"]
}

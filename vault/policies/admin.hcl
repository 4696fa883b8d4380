# admin: day-to-day administration of this Vault for pg_vault: secrets
# engines, auth methods, policies, transit keys, KV secrets and the
# database engine.  Data-plane transit operations (encrypt, decrypt) are
# deliberately not granted: an administrator manages keys, not data.

# Secrets engines
path "sys/mounts" {
  capabilities = ["read"]
}

path "sys/mounts/*" {
  capabilities = ["create", "read", "update", "delete", "sudo"]
}

# Auth methods, and their configuration (AppRole roles, role-ids, secret-ids)
path "sys/auth" {
  capabilities = ["read"]
}

path "sys/auth/*" {
  capabilities = ["create", "read", "update", "delete", "sudo"]
}

path "auth/*" {
  capabilities = ["create", "read", "update", "delete", "list", "sudo"]
}

# ACL policies
path "sys/policies/acl" {
  capabilities = ["list"]
}

path "sys/policies/acl/*" {
  capabilities = ["create", "read", "update", "delete", "list", "sudo"]
}

# Transit keys: create, read, rotate, configure, delete
path "transit/keys" {
  capabilities = ["list"]
}

path "transit/keys/*" {
  capabilities = ["create", "read", "update", "delete", "list"]
}

path "transit/config/*" {
  capabilities = ["create", "read", "update"]
}

# KV v2 secrets, every version operation
path "secret/*" {
  capabilities = ["create", "read", "update", "patch", "delete", "list"]
}

# Database engine: connections and roles (not credentials: an administrator
# configures who may get them)
path "database/config/*" {
  capabilities = ["create", "read", "update", "delete", "list"]
}

path "database/roles/*" {
  capabilities = ["create", "read", "update", "delete", "list"]
}

path "database/rotate-root/*" {
  capabilities = ["update"]
}

path "sys/leases/*" {
  capabilities = ["create", "read", "update", "delete", "list", "sudo"]
}

path "sys/health" {
  capabilities = ["read", "sudo"]
}

path "sys/capabilities" {
  capabilities = ["update"]
}

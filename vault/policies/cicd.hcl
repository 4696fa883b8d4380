# cicd: the deployment pipeline's policy, attached to the AppRole
# cicd-role (vault/bootstrap).  It reads the staging and production
# secrets it deploys with, and can keep its own token alive; it cannot
# read the development or app/ secrets, write anything, or use transit.

path "secret/data/staging/*" {
  capabilities = ["read"]
}

path "secret/metadata/staging/*" {
  capabilities = ["list"]
}

path "secret/data/production/*" {
  capabilities = ["read"]
}

path "secret/metadata/production/*" {
  capabilities = ["list"]
}

path "auth/token/renew-self" {
  capabilities = ["update"]
}

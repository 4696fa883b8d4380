# cicd: the deployment pipeline's policy.  It reads the staging and
# production secrets it deploys with, and can keep its own token alive;
# it cannot read the application's development secrets or use transit.

path "secret/data/staging/*" {
  capabilities = ["read"]
}

path "secret/data/production/*" {
  capabilities = ["read"]
}

path "auth/token/renew-self" {
  capabilities = ["update"]
}

/*
 * config.c
 *    pg-vault-app's configuration, read once from the environment at start
 *    (Vault's own variable names for Vault, APP_* for the rest) and
 *    read-only afterwards.  Every setting is checked here so that a typo
 *    stops the program at start rather than surprising it later.
 */
#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "app.h"

AppConfig	app_config;

static const char *
env_or(const char *name, const char *dflt)
{
	const char *v = getenv(name);

	return (v != NULL && v[0] != '\0') ? v : dflt;
}

static bool
env_int(const char *name, int dflt, int min, int max, int *out,
		char *err, size_t errlen)
{
	const char *v = getenv(name);
	char	   *end;
	long		n;

	if (v == NULL || v[0] == '\0')
	{
		*out = dflt;
		return true;
	}
	errno = 0;
	n = strtol(v, &end, 10);
	if (errno != 0 || *end != '\0' || n < min || n > max)
	{
		snprintf(err, errlen, "%s must be an integer from %d to %d", name, min, max);
		return false;
	}
	*out = (int) n;
	return true;
}

static bool
env_bool(const char *name, bool dflt, bool *out, char *err, size_t errlen)
{
	const char *v = getenv(name);

	if (v == NULL || v[0] == '\0')
		*out = dflt;
	else if (strcmp(v, "1") == 0 || strcasecmp(v, "true") == 0 ||
			 strcasecmp(v, "yes") == 0 || strcasecmp(v, "on") == 0)
		*out = true;
	else if (strcmp(v, "0") == 0 || strcasecmp(v, "false") == 0 ||
			 strcasecmp(v, "no") == 0 || strcasecmp(v, "off") == 0)
		*out = false;
	else
	{
		snprintf(err, errlen, "%s must be true or false", name);
		return false;
	}
	return true;
}

/* HOST:PORT, [V6]:PORT or a bare PORT. */
static bool
parse_listen(const char *s, char *err, size_t errlen)
{
	const char *colon;
	const char *host;
	size_t		hostlen;
	char	   *end;
	long		port;

	snprintf(app_config.listen, sizeof(app_config.listen), "%s", s);
	if (s[0] == '[')
	{
		const char *close = strchr(s, ']');

		if (close == NULL || close[1] != ':')
			goto bad;
		host = s + 1;
		hostlen = close - host;
		colon = close + 1;
	}
	else if ((colon = strrchr(s, ':')) != NULL)
	{
		host = s;
		hostlen = colon - s;
	}
	else
	{
		host = "127.0.0.1";
		hostlen = strlen(host);
		colon = s - 1;
	}
	if (hostlen == 0 || hostlen >= sizeof(app_config.listen_host))
		goto bad;
	memcpy(app_config.listen_host, host, hostlen);
	app_config.listen_host[hostlen] = '\0';
	errno = 0;
	port = strtol(colon + 1, &end, 10);
	if (errno != 0 || *end != '\0' || end == colon + 1 || port < 0 || port > 65535)
		goto bad;
	app_config.listen_port = (uint16_t) port;
	return true;
bad:
	snprintf(err, errlen, "APP_LISTEN must be HOST:PORT, [IPV6]:PORT or PORT");
	return false;
}

/* A role or key name as Vault takes it: [A-Za-z0-9_.-], not "." or "..". */
static bool
vault_name_ok(const char *s)
{
	const char *c;

	if (*s == '\0' || strcmp(s, ".") == 0 || strcmp(s, "..") == 0)
		return false;
	for (c = s; *c; c++)
		if (!isalnum((unsigned char) *c) && *c != '-' && *c != '_' && *c != '.')
			return false;
	return true;
}

/* the storage transit_keys' entries point into, kept for the process */
static char *transit_keys_buf;

static bool
parse_keys(const char *list, char *err, size_t errlen)
{
	char	   *copy = strdup(list);
	char	   *save = NULL;
	char	   *tok;
	int			n = 0;

	if (copy == NULL)
	{
		snprintf(err, errlen, "out of memory");
		return false;
	}
	app_config.transit_keys = calloc(strlen(list) / 2 + 2, sizeof(char *));
	if (app_config.transit_keys == NULL)
	{
		free(copy);
		snprintf(err, errlen, "out of memory");
		return false;
	}
	for (tok = strtok_r(copy, ", ", &save); tok; tok = strtok_r(NULL, ", ", &save))
	{
		if (!vault_name_ok(tok))
		{
			snprintf(err, errlen, "APP_TRANSIT_KEYS: \"%s\" is not a key name", tok);
			free(app_config.transit_keys);
			app_config.transit_keys = NULL;
			free(copy);
			return false;
		}
		app_config.transit_keys[n++] = tok;
	}
	if (n == 0)
	{
		snprintf(err, errlen, "APP_TRANSIT_KEYS names no key");
		free(app_config.transit_keys);
		app_config.transit_keys = NULL;
		free(copy);
		return false;
	}
	app_config.n_transit_keys = n;
	free(transit_keys_buf);
	transit_keys_buf = copy;
	return true;
}

bool
config_load(char *err, size_t errlen)
{
	AppConfig  *c = &app_config;
	long		ncpu = sysconf(_SC_NPROCESSORS_ONLN);
	const char *env;

	memset(c, 0, sizeof(*c));
	if (!parse_listen(env_or("APP_LISTEN", "127.0.0.1:5000"), err, errlen))
		return false;

	env = env_or("APP_ENV", NULL);
	if (env != NULL && strcmp(env, "development") != 0 &&
		strcmp(env, "staging") != 0 && strcmp(env, "production") != 0)
	{
		snprintf(err, errlen, "APP_ENV must be development, staging or production");
		return false;
	}
	c->env = env;

	c->database_url = env_or("APP_DATABASE_URL", "");
	c->db_role = env_or("APP_DB_ROLE", NULL);
	c->db_mount = env_or("APP_DB_MOUNT", "database");
	if (c->db_role != NULL && !vault_name_ok(c->db_role))
	{
		snprintf(err, errlen, "APP_DB_ROLE must be a Vault role name (letters, digits, \"_\", \"-\", \".\")");
		return false;
	}
	c->kv_mount = env_or("APP_KV_MOUNT", "secret");
	c->trusted_proxies = env_or("APP_TRUSTED_PROXIES", "");
	if (ncpu < 1)
		ncpu = 1;
	if (!env_int("APP_DB_POOL_SIZE", (int) ncpu, 1, 32, &c->pool_size, err, errlen) ||
		!env_int("APP_DB_POOL_WAIT_MS", 5000, 1, 600000, &c->pool_wait_ms, err, errlen) ||
		!env_int("APP_STATEMENT_TIMEOUT_MS", 30000, 0, INT_MAX, &c->statement_timeout_ms, err, errlen) ||
		!env_int("APP_AUTH_REFRESH", 30, 1, 86400, &c->auth_refresh, err, errlen) ||
		!env_int("APP_AUTH_FAIL_BURST", 20, 0, 1000000, &c->auth_fail_burst, err, errlen) ||
		!env_int("APP_AUTH_FAIL_PER_MINUTE", 60, 1, 6000000, &c->auth_fail_per_minute, err, errlen) ||
		!env_int("APP_AUTH_LIMITED_DELAY_MS", 1000, 0, 60000, &c->auth_limited_delay_ms, err, errlen) ||
		!env_int("APP_MAX_UNAUTHENTICATED", 64, 1, 100000, &c->max_unauthenticated, err, errlen) ||
		!env_int("APP_HEALTH_INTERVAL", 5, 1, 3600, &c->health_interval, err, errlen) ||
		!env_int("APP_READY_INTERVAL_MS", 1000, 0, 3600000, &c->ready_interval_ms, err, errlen) ||
		!env_int("APP_SHUTDOWN_TIMEOUT", 10, 0, 3600, &c->shutdown_timeout, err, errlen) ||
		!env_int("APP_STARTUP_TIMEOUT", 30, 0, 3600, &c->startup_timeout, err, errlen) ||
		!env_int("APP_MAX_CONNECTIONS", 512, 1, 10000, &c->max_connections, err, errlen) ||
		!env_int("VAULT_CLIENT_TIMEOUT_MS", 10000, 100, 600000, &c->vault_timeout_ms, err, errlen) ||
		!env_int("VAULT_MAX_RETRIES", 2, 0, 10, &c->vault_max_retries, err, errlen) ||
		!env_bool("APP_LOG_REQUESTS", true, &c->log_requests, err, errlen) ||
		!env_bool("VAULT_SKIP_VERIFY", false, &c->vault_skip_verify, err, errlen))
		return false;
	if (!parse_keys(env_or("APP_TRANSIT_KEYS", "user-data,payment-data"), err, errlen))
		return false;

	c->vault_addr = env_or("VAULT_ADDR", "https://127.0.0.1:8200");
	c->vault_token = env_or("VAULT_TOKEN", NULL);
	c->vault_role_id = env_or("VAULT_ROLE_ID", NULL);
	c->vault_secret_id_file = env_or("VAULT_SECRET_ID_FILE", NULL);
	c->vault_namespace = env_or("VAULT_NAMESPACE", NULL);
	c->vault_cacert = env_or("VAULT_CACERT", NULL);
	c->approle_mount = env_or("VAULT_APPROLE_MOUNT", "approle");
	if ((c->vault_role_id == NULL) != (c->vault_secret_id_file == NULL))
	{
		snprintf(err, errlen, "AppRole login needs both VAULT_ROLE_ID and VAULT_SECRET_ID_FILE");
		return false;
	}
	if (c->db_role != NULL && c->vault_token == NULL && c->vault_role_id == NULL)
	{
		snprintf(err, errlen, "APP_DB_ROLE needs a Vault token: VAULT_TOKEN, or VAULT_ROLE_ID and VAULT_SECRET_ID_FILE");
		return false;
	}
	return true;
}

bool
config_transit_key_allowed(const char *name)
{
	int			i;

	for (i = 0; i < app_config.n_transit_keys; i++)
		if (strcmp(app_config.transit_keys[i], name) == 0)
			return true;
	return false;
}

void
config_kv_path(char *dst, size_t len, const char *rest, bool with_env)
{
	if (with_env && app_config.env != NULL)
		snprintf(dst, len, "%s/%s", app_config.env, rest);
	else
		snprintf(dst, len, "app/%s", rest);
}

void
config_clients_path(char *dst, size_t len, bool with_env)
{
	if (with_env && app_config.env != NULL)
		snprintf(dst, len, "app/%s/clients/", app_config.env);
	else
		snprintf(dst, len, "app/clients/");
}

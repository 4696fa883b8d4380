/*
 * main.c
 *    pg-vault-app: the companion HTTP service of pg_vault.  Reads its
 *    configuration, gets its database credentials (from Vault when so
 *    configured), opens the pool, serves HTTP, and waits for a signal.
 *    SIGTERM or SIGINT: stop accepting connections, let the requests in
 *    flight finish (APP_SHUTDOWN_TIMEOUT), close the pool, revoke the
 *    lease and the app's own token, exit 0.  SIGHUP: load the bearer
 *    credentials from Vault now.
 *
 *    Signals are blocked in every thread and taken by sigwait() here, so
 *    that no handler runs inside libpq, libcurl or libmicrohttpd.
 */
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <curl/curl.h>

#include "app.h"

#define APP_VERSION "0.2.0"

static int
help(void)
{
	printf("pg-vault-app %s: the companion HTTP service of pg_vault\n\n"
		   "usage: pg-vault-app                 serve (configuration from the environment)\n"
		   "       pg-vault-app --issue-credential NAME --scopes read,encrypt,decrypt [--env ENV]\n"
		   "       pg-vault-app --revoke-credential [--env ENV]   (token on stdin)\n"
		   "       pg-vault-app --version | --help\n\n"
		   "See app/README.md for the environment variables.\n", APP_VERSION);
	return 0;
}

/* Wait for the requests in flight, at most APP_SHUTDOWN_TIMEOUT seconds. */
static void
drain(void)
{
	uint64_t	deadline = now_us() + (uint64_t) app_config.shutdown_timeout * 1000000u;

	server_quiesce();
	while (server_inflight() > 0 && now_us() < deadline)
		usleep(20 * 1000);
	if (server_inflight() > 0)
		log_event("warning", "shutdown",
				  json_pack("{s:s, s:i}", "message", "requests still running at the shutdown timeout",
							"in_flight", server_inflight()));
}

int
main(int argc, char **argv)
{
	char		err[512] = "";
	sigset_t	sigs;
	int			sig = 0;

	json_wipe_init();
	json_object_seed(0);
	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
	{
		fprintf(stderr, "pg-vault-app: could not initialise libcurl\n");
		return 1;
	}
	if (argc > 1)
	{
		if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0)
			return help();
		if (strcmp(argv[1], "--version") == 0)
		{
			printf("pg-vault-app %s\n", APP_VERSION);
			return 0;
		}
		return issue_credential_main(argc, argv);
	}

	if (!config_load(err, sizeof(err)) ||
		!ratelimit_trust(app_config.trusted_proxies, err, sizeof(err)))
	{
		log_msg("error", "config", err);
		return 2;
	}

	/* Before any thread exists, so that every thread inherits the mask. */
	sigemptyset(&sigs);
	sigaddset(&sigs, SIGTERM);
	sigaddset(&sigs, SIGINT);
	sigaddset(&sigs, SIGHUP);
	pthread_sigmask(SIG_BLOCK, &sigs, NULL);
	signal(SIGPIPE, SIG_IGN);

	if (!vault_client_init(err, sizeof(err)) ||
		!pool_init(app_config.pool_size, app_config.database_url))
	{
		log_msg("error", "startup", err[0] ? err : "out of memory");
		return 1;
	}
	if (!vault_startup())
	{
		vault_shutdown();
		return 1;
	}
	if (!monitor_start())
	{
		log_msg("error", "startup", "could not start the monitor thread");
		pool_shutdown();
		vault_shutdown();
		return 1;
	}
	if (!server_start(err, sizeof(err)))
	{
		log_msg("error", "startup", err);
		monitor_stop();
		pool_shutdown();
		vault_shutdown();
		return 1;
	}
	log_event("info", "started",
			  json_pack("{s:s, s:s?, s:i, s:s}", "version", APP_VERSION,
						"env", app_config.env, "pool_size", app_config.pool_size,
						"database_credentials", app_config.db_role ? "vault" : "connection string"));

	for (;;)
	{
		if (sigwait(&sigs, &sig) != 0)
			continue;
		if (sig == SIGTERM || sig == SIGINT)
			break;
		log_msg("info", "signal", "SIGHUP: reloading the credentials (the configuration is read at start only)");
		monitor_wake();
	}

	log_event("info", "stopping", json_pack("{s:s}", "signal", sig == SIGTERM ? "SIGTERM" : "SIGINT"));
	drain();
	server_stop();
	monitor_stop();
	pool_shutdown();
	vault_shutdown();
	curl_global_cleanup();
	log_msg("info", "stopped", "clean shutdown");
	return 0;
}

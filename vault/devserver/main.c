/*
 * main.c
 *    vault-dev: the pg_vault development Vault server.  Parses options,
 *    builds or reloads the state, starts the listener, and runs the lease
 *    timer until SIGINT/SIGTERM.
 *
 *    FOR DEVELOPMENT AND TESTS ONLY.  It speaks Vault's HTTP API so that
 *    pg_vault and its app can be tested where HashiCorp Vault cannot be
 *    installed; production uses HashiCorp Vault or OpenBao.
 */
#include "devserver.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <microhttpd.h>

#include "http.h"

static volatile sig_atomic_t stop_requested;

static void
on_signal(int sig)
{
	stop_requested = 1;
}

static void
usage(FILE *out)
{
	fprintf(out,
			"vault-dev: the pg_vault development Vault server\n"
			"\n"
			"FOR DEVELOPMENT AND TESTS ONLY. It answers HashiCorp Vault's HTTP API\n"
			"(sys, token, AppRole, KV v2, Transit) so that pg_vault can be tested\n"
			"where Vault cannot be installed. Production uses HashiCorp Vault or\n"
			"OpenBao. The /_dev/faults endpoint (root token only) injects latency,\n"
			"failures, cut connections and malformed bodies for tests.\n"
			"\n"
			"Usage: vault-dev [options]\n"
			"  --addr HOST:PORT         listen address (default 127.0.0.1:8200;\n"
			"                           port 0 picks a free port)\n"
			"  --port-file FILE         write the bound port to FILE once listening\n"
			"  --root-token ID          the root token (default: random, printed)\n"
			"  --root-token-file FILE   read the root token from FILE when it exists,\n"
			"                           else write a random one there (mode 0600)\n"
			"  --unseal-key-file FILE   write the unseal key to FILE (mode 0600)\n"
			"  --state FILE             persist state to FILE (mode 0600) and reload\n"
			"                           it at start; default: memory only\n"
			"  --tls-cert FILE          serve HTTPS with this certificate (PEM)...\n"
			"  --tls-key FILE           ...and this key (PEM)\n"
			"  --audit-file FILE        file audit device: JSON lines, strings\n"
			"                           HMAC-SHA256'd with a per-server salt\n"
			"  --no-dev-mounts          do not mount secret/ (kv v2) and transit/\n"
			"  --help, --version\n");
}

static char *
read_file(const char *path)
{
	FILE	   *f = fopen(path, "rb");
	char	   *buf;
	long		n;

	if (f == NULL)
		return NULL;
	fseek(f, 0, SEEK_END);
	n = ftell(f);
	fseek(f, 0, SEEK_SET);
	buf = malloc((size_t) n + 1);
	if (fread(buf, 1, (size_t) n, f) != (size_t) n)
	{
		free(buf);
		fclose(f);
		return NULL;
	}
	buf[n] = '\0';
	fclose(f);
	return buf;
}

static void
write_secret_file(const char *path, const char *content)
{
	int			fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);

	if (fd < 0 || fchmod(fd, 0600) != 0 ||
		write(fd, content, strlen(content)) != (ssize_t) strlen(content))
	{
		fprintf(stderr, "vault-dev: cannot write %s\n", path);
		exit(1);
	}
	close(fd);
}

static bool
parse_addr(const char *s, struct sockaddr_in *addr)
{
	char		host[256];
	const char *colon = strrchr(s, ':');
	char	   *end;
	long		port;

	if (colon == NULL || (size_t) (colon - s) >= sizeof(host))
		return false;
	memcpy(host, s, (size_t) (colon - s));
	host[colon - s] = '\0';
	port = strtol(colon + 1, &end, 10);
	if (*end != '\0' || port < 0 || port > 65535)
		return false;
	memset(addr, 0, sizeof(*addr));
	addr->sin_family = AF_INET;
	addr->sin_port = htons((uint16_t) port);
	if (strcmp(host, "localhost") == 0 || host[0] == '\0')
		strcpy(host, "127.0.0.1");
	return inet_pton(AF_INET, host, &addr->sin_addr) == 1;
}

static void
mount_or_die(const char *path, const char *type, json_t *options)
{
	char		err[256];

	if (mount_find(path) != NULL && strcmp(mount_find(path)->path, path) == 0)
		return;
	if (mount_add(path, type, options, NULL, err, sizeof(err)) == NULL)
	{
		fprintf(stderr, "vault-dev: cannot mount %s: %s\n", path, err);
		exit(1);
	}
}

int
main(int argc, char **argv)
{
	static const struct option opts[] = {
		{"addr", required_argument, NULL, 'a'},
		{"port-file", required_argument, NULL, 'p'},
		{"root-token", required_argument, NULL, 'r'},
		{"root-token-file", required_argument, NULL, 'R'},
		{"unseal-key-file", required_argument, NULL, 'u'},
		{"state", required_argument, NULL, 's'},
		{"tls-cert", required_argument, NULL, 'c'},
		{"tls-key", required_argument, NULL, 'k'},
		{"audit-file", required_argument, NULL, 'A'},
		{"no-dev-mounts", no_argument, NULL, 'n'},
		{"help", no_argument, NULL, 'h'},
		{"version", no_argument, NULL, 'V'},
		{NULL, 0, NULL, 0}
	};
	const char *addr_s = "127.0.0.1:8200";
	const char *port_file = NULL,
			   *root_id = NULL,
			   *root_file = NULL,
			   *unseal_file = NULL,
			   *cert_file = NULL,
			   *key_file = NULL;
	char	   *cert = NULL,
			   *key = NULL,
			   *file_token = NULL;
	bool		dev_mounts = true;
	bool		loaded;
	struct sockaddr_in addr;
	struct MHD_Daemon *d;
	vtoken	   *root;
	int			port;
	int			o;

	while ((o = getopt_long(argc, argv, "h", opts, NULL)) != -1)
	{
		switch (o)
		{
			case 'a': addr_s = optarg; break;
			case 'p': port_file = optarg; break;
			case 'r': root_id = optarg; break;
			case 'R': root_file = optarg; break;
			case 'u': unseal_file = optarg; break;
			case 's': g_server.state_file = strdup(optarg); break;
			case 'c': cert_file = optarg; break;
			case 'k': key_file = optarg; break;
			case 'A': g_server.audit_file = strdup(optarg); break;
			case 'n': dev_mounts = false; break;
			case 'h': usage(stdout); return 0;
			case 'V': printf("vault-dev %s\n", DEVSERVER_VERSION); return 0;
			default: usage(stderr); return 2;
		}
	}
	if (optind < argc || !parse_addr(addr_s, &addr))
	{
		usage(stderr);
		return 2;
	}
	if ((cert_file == NULL) != (key_file == NULL))
	{
		fprintf(stderr, "vault-dev: --tls-cert and --tls-key go together\n");
		return 2;
	}
	if (cert_file && ((cert = read_file(cert_file)) == NULL || (key = read_file(key_file)) == NULL))
	{
		fprintf(stderr, "vault-dev: cannot read the TLS certificate or key\n");
		return 1;
	}
	g_server.tls = cert != NULL;
	umask(077);
	signal(SIGPIPE, SIG_IGN);

	/* fresh identity; a state file, when there is one, replaces it */
	{
		unsigned char k[32];

		rand_bytes(k, sizeof(k));
		vc_b64_encode(k, sizeof(k), g_server.unseal_key);
		explicit_bzero(k, sizeof(k));
	}
	rand_uuid(g_server.cluster_id);
	rand_uuid(g_server.audit_salt);
	snprintf(g_server.cluster_name, sizeof(g_server.cluster_name), "vault-cluster-%.8s",
			 g_server.cluster_id);
	g_server.start_time = time(NULL);

	pthread_mutex_lock(&g_state_mu);
	policies_init_builtin();
	mount_or_die("sys/", "system", NULL);
	mount_or_die("auth/token/", "token", NULL);
	loaded = store_load();
	if (!loaded && dev_mounts)
	{
		json_t	   *v2 = json_pack("{s:s}", "version", "2");

		mount_or_die("secret/", "kv", v2);
		mount_or_die("transit/", "transit", NULL);
		json_decref(v2);
	}
	/* an existing --root-token-file names the root token: no id in argv */
	if (root_id == NULL && root_file && (file_token = read_file(root_file)) != NULL)
	{
		file_token[strcspn(file_token, "\r\n")] = '\0';
		if (file_token[0] != '\0')
			root_id = file_token;
	}
	root = root_id ? token_lookup(root_id) : NULL;
	if (root == NULL)
	{
		json_t	   *pol = json_pack("[s]", "root");

		root = token_create(root_id, pol, NULL, "root", "auth/token/root", "",
							0, 0, 0, 0, false, true);
		json_decref(pol);
	}
	if (root_file && file_token == NULL)
		write_secret_file(root_file, root->id);
	if (unseal_file)
		write_secret_file(unseal_file, g_server.unseal_key);
	if (!audit_open())
	{
		fprintf(stderr, "vault-dev: cannot open audit file %s\n", g_server.audit_file);
		return 1;
	}
	store_save();
	pthread_mutex_unlock(&g_state_mu);

	d = http_start(&addr, cert, key, &port);
	if (d == NULL)
	{
		fprintf(stderr, "vault-dev: cannot listen on %s\n", addr_s);
		return 1;
	}
	if (port_file)
	{
		char		buf[16];

		snprintf(buf, sizeof(buf), "%d\n", port);
		write_secret_file(port_file, buf);
	}

	{
		char		ip[INET_ADDRSTRLEN];

		inet_ntop(AF_INET, &addr.sin_addr, ip, sizeof(ip));
		printf("==> vault-dev %s: pg_vault's development Vault server\n"
			   "    FOR DEVELOPMENT AND TESTS ONLY; production uses HashiCorp Vault or OpenBao.\n"
			   "    Api Address: %s://%s:%d\n"
			   "    Storage: %s\n",
			   DEVSERVER_VERSION, g_server.tls ? "https" : "http", ip, port,
			   g_server.state_file ? g_server.state_file : "in memory");
		if (root_id == NULL && root_file == NULL)
			printf("    Root Token: %s\n", root->id);
		if (unseal_file == NULL)
			printf("    Unseal Key: %s\n", g_server.unseal_key);
		fflush(stdout);
	}

	signal(SIGINT, on_signal);
	signal(SIGTERM, on_signal);
	while (!stop_requested)
	{
		sleep(1);
		pthread_mutex_lock(&g_state_mu);
		if (leases_expire_due())
			store_save();
		pthread_mutex_unlock(&g_state_mu);
	}

	MHD_stop_daemon(d);
	pthread_mutex_lock(&g_state_mu);
	store_save();
	pthread_mutex_unlock(&g_state_mu);
	if (key)
		explicit_bzero(key, strlen(key));
	free(cert);
	free(key);
	if (file_token)
		explicit_bzero(file_token, strlen(file_token));
	free(file_token);
	printf("==> vault-dev stopped\n");
	return 0;
}

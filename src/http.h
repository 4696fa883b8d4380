/*
 * http.h
 *    What the HTTP client's files share, and only they include:
 *    http_conn.c (the settings, and the connections: curl handles, header
 *    lists, addresses, TLS and time-limit settings), http.c (one exchange:
 *    the transfer, its outcome, retries, backoff, failover) and
 *    http_many.c (a parallel round).  Calls go one way: http_many.c ->
 *    http.c -> http_conn.c.  Everyone else uses pg_vault.h's
 *    vault_http_perform and vault_http_perform_many.
 */
#ifndef PG_VAULT_HTTP_H
#define PG_VAULT_HTTP_H

#include <curl/curl.h>

#include "utils/timestamp.h"

/*
 * The response body, on malloc (curl callbacks must not palloc), grown and
 * shrunk by copying and wiping, never realloc: it holds plaintexts, tokens
 * and KV values.
 */
typedef struct ResponseBuffer
{
	char	   *data;
	size_t		len;
	size_t		cap;
	size_t		limit;
	bool		too_large;
	bool		no_memory;
} ResponseBuffer;

/*
 * A handle, its response buffer and the TLS and timeout settings applied to
 * it.  vault_http_conns[0] carries one request at a time; [1..] the
 * requests of a parallel round, each on its own connection, kept in the
 * multi handle's connection cache between rounds.
 */
typedef struct HttpConn
{
	CURL	   *h;
	ResponseBuffer rb;
	char	   *applied_ca_file;
	int			applied_skip_verify;
	int			applied_connect_timeout;
	int			applied_timeout;
} HttpConn;

/* The wait event of a request, a login or a backoff. */
typedef enum HttpWaitKind
{
	HTTP_WAIT_REQUEST,
	HTTP_WAIT_LOGIN,
	HTTP_WAIT_BACKOFF
} HttpWaitKind;

/* ---- http_conn.c ---- */
extern int	vault_max_retries;
extern int	vault_max_response_kb;
extern int	vault_breaker_failures;
extern int	vault_breaker_cooldown_ms;
extern HttpConn vault_http_conns[1 + VAULT_MAX_PARALLEL];

extern HttpConn *vault_http_ready_conn(int i);
extern void vault_http_quick_timeouts(HttpConn *c);
extern struct curl_slist *vault_http_headers(const char *token);
extern int	vault_http_addr_count(void);
extern uint32 vault_http_addr_key(int i);
extern const char *vault_http_url(int i, const char *path, VaultMethod method);

/* ---- http.c ---- */
extern uint32 vault_http_wait_event(HttpWaitKind k);
extern void vault_http_setup_transfer(HttpConn *c, VaultResult *res,
									  VaultMethod method, const char *url,
									  const char *body, size_t bodylen,
									  struct curl_slist *headers);
extern void vault_http_finish_transfer(HttpConn *c, VaultResult *res,
									   CURLcode rc);
extern bool vault_http_should_retry(const VaultResult *res, int flags);
extern bool vault_http_transport_failure(const VaultResult *res);
extern void vault_http_shrink_response(HttpConn *c, VaultResult *res);
extern void vault_http_exchange(HttpConn *c, VaultResult *res,
								VaultMethod method, const char *path,
								const char *body, size_t bodylen,
								struct curl_slist *headers, int flags,
								int attempt, int sent, TimestampTz start);

#endif							/* PG_VAULT_HTTP_H */

/*
 * vault_client.h
 *    The transport-neutral rules of a Vault client, shared by every program
 *    of pg_vault so that they behave alike: how a request path is escaped,
 *    which failures are retried and after how long, when a token or a
 *    lease is renewed or replaced, and how a secret file is read.  Plain C:
 *    no PostgreSQL, curl, jansson or libmicrohttpd; each program brings its
 *    own transport and clock (monotonic microseconds) and calls these.
 */
#ifndef VAULT_CLIENT_H
#define VAULT_CLIENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/stat.h>

/* ---- request paths ---- */

/*
 * Percent-encode a Vault path segment by segment: RFC 3986's unreserved
 * characters stay, every other byte becomes %XX, and the "/" between
 * segments stays.  Slashes at either end are dropped.  Returns the length
 * written (dst NUL-terminated), or -1 when the path is empty (unless
 * allow_empty), has an empty, "." or ".." segment, or does not fit.
 */
long		vc_path_escape(const char *path, bool allow_empty, char *dst, size_t dstlen);

/* "<addr>/v1/<escaped path>" (addr without its trailing slashes); -1 as above. */
long		vc_build_url(const char *addr, const char *path, char *dst, size_t dstlen);

/* ---- retries ---- */

typedef enum VcTransport
{
	VC_TRANSPORT_OK,			/* an HTTP answer came back */
	VC_TRANSPORT_CONNECT,		/* no connection: Vault saw nothing */
	VC_TRANSPORT_TIMEOUT,		/* sent, no answer in time */
	VC_TRANSPORT_LOST,			/* the connection broke mid-request */
	VC_TRANSPORT_OTHER			/* TLS, protocol, out of memory, ... */
} VcTransport;

/* Backoff: 100 ms doubling up to 2 s, jittered down to half; Retry-After
 * is honoured up to 30 s. */
#define VC_BACKOFF_BASE_MS		100
#define VC_BACKOFF_CAP_MS		2000
#define VC_RETRY_AFTER_CAP_MS	30000

/*
 * Is a failed attempt worth another?  As Vault's Go client: connection
 * errors, 412, 429 and 5xx except 501.  A request whose repeat would
 * repeat its effect (not idempotent: a login consuming a secret_id use,
 * new database credentials, a KV write) is repeated only where Vault
 * cannot have acted on it: refused connections, 412, 429, 503, and a 500
 * from a node that is not active (node_not_active: its errors say "local
 * node not active").
 */
bool		vc_should_retry(VcTransport transport, long status, bool node_not_active,
							bool idempotent);

/*
 * Milliseconds to wait before attempt number attempt + 1 (attempt counts
 * from 0): the capped exponential backoff, jittered down to half by unit
 * (a random number in [0, 1)), or retry_after_ms when that is longer.
 */
long		vc_backoff_ms(int attempt, long retry_after_ms, double unit);

/* A Retry-After header's delta-seconds in milliseconds, capped at
 * VC_RETRY_AFTER_CAP_MS; -1 when absent (NULL) or not a number. */
long		vc_retry_after_ms(const char *value);

/* ---- token and lease renewal schedule ---- */

/*
 * What to do next about a token or a lease, and when.  After a login, new
 * credentials or a renewal granting granted_s seconds (asked_s: what the
 * renewal asked for, 0 for none): renew at two thirds of the TTL; replace
 * it instead (log in again, take new credentials) when it cannot be
 * renewed or a renewal came back shorter than asked, which means the max
 * TTL is near: at once, while it can still be revoked cleanly.  A TTL of
 * 0 means no expiry: nothing to do.
 */
typedef struct VcSchedule
{
	long		ttl_s;			/* seconds granted last */
	uint64_t	expires_us;		/* 0: never */
	uint64_t	next_us;		/* 0: nothing to do */
	bool		replace;		/* the next action replaces rather than renews */
} VcSchedule;

void		vc_schedule_granted(VcSchedule *s, uint64_t now_us, long granted_s,
								long asked_s, bool renewable);

/* When to try a failed renewal or replacement again: retry_us from now,
 * but never after what it protects ends (half the time left, then). */
uint64_t	vc_schedule_retry(uint64_t now_us, uint64_t expires_us, uint64_t retry_us);

/* ---- secret files ---- */

typedef enum VcFileStatus
{
	VC_FILE_OK,
	VC_FILE_OPEN,				/* cannot be opened or read (errno set) */
	VC_FILE_TOO_LARGE,			/* larger than dstlen - 1 bytes */
	VC_FILE_NOT_A_WORD			/* empty, or not one word of printable ASCII */
} VcFileStatus;

/*
 * Read a token or secret_id file: trimmed of surrounding white space, it
 * must be one word of printable ASCII (it goes into an HTTP header or a
 * JSON string).  st, when not NULL, receives the file's fstat (to notice a
 * replaced file).  dst is wiped on failure; the read buffer always is.
 */
VcFileStatus vc_read_secret_file(const char *path, char *dst, size_t dstlen,
								 struct stat *st);

/* A message for a VcFileStatus, naming the setting (never the content). */
const char *vc_file_status_message(VcFileStatus status);

#endif							/* VAULT_CLIENT_H */

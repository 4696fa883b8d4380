/*
 * vault_client_test.c
 *    src/common/vault_client.c's rules, checked one by one (test/common.sh
 *    builds and runs this).  Prints "ok - ..." / "not ok - ..." lines.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "vault_client.h"

static int	failed;

static void
check(int cond, const char *what)
{
	printf("%s - %s\n", cond ? "ok" : "not ok", what);
	if (!cond)
		failed++;
}

static int
escapes_to(const char *path, const char *want)
{
	char		buf[256];
	long		n = vc_path_escape(path, false, buf, sizeof(buf));

	return want == NULL ? n < 0 : (n >= 0 && strcmp(buf, want) == 0 && n == (long) strlen(want));
}

int
main(void)
{
	char		url[128];
	char		small[8];
	char		word[64];
	char		path[] = "/tmp/vc-test-XXXXXX";
	int			fd;
	VcSchedule	s = {0};

	check(escapes_to("secret/data/app/clients/ab12", "secret/data/app/clients/ab12"), "a plain path is unchanged");
	check(escapes_to("/database/creds/app role/", "database/creds/app%20role"), "spaces escaped, outer slashes dropped");
	check(escapes_to("kv/a?b#c%d", "kv/a%3Fb%23c%25d"), "? # % escaped: no query or fragment can be smuggled in");
	check(escapes_to("kv/caf\xc3\xa9", "kv/caf%C3%A9"), "UTF-8 bytes escaped");
	check(escapes_to("kv/../sys", NULL) && escapes_to("kv//x", NULL) && escapes_to("./x", NULL),
		  "empty, . and .. segments refused");
	check(escapes_to("", NULL) && vc_path_escape("", true, word, sizeof(word)) == 0, "empty only when allowed");
	check(vc_path_escape("abcdefghij", false, small, sizeof(small)) < 0, "too long for the buffer: refused");
	check(vc_build_url("http://127.0.0.1:8200/", "sys/leases/renew", url, sizeof(url)) > 0 &&
		  strcmp(url, "http://127.0.0.1:8200/v1/sys/leases/renew") == 0, "URL: address, /v1/, escaped path");

	check(vc_should_retry(VC_TRANSPORT_CONNECT, 0, false, false), "a refused connection is retried, even when not idempotent");
	check(vc_should_retry(VC_TRANSPORT_TIMEOUT, 0, false, true) && !vc_should_retry(VC_TRANSPORT_TIMEOUT, 0, false, false),
		  "a timeout is retried only when idempotent");
	check(vc_should_retry(VC_TRANSPORT_OK, 429, false, false) && vc_should_retry(VC_TRANSPORT_OK, 503, false, false) &&
		  vc_should_retry(VC_TRANSPORT_OK, 412, false, false), "412, 429 and 503 are retried (Vault did not act)");
	check(vc_should_retry(VC_TRANSPORT_OK, 500, true, false) && !vc_should_retry(VC_TRANSPORT_OK, 500, false, false) &&
		  vc_should_retry(VC_TRANSPORT_OK, 502, false, true), "other 5xx only when idempotent, or from a node not active");
	check(!vc_should_retry(VC_TRANSPORT_OK, 501, false, true) && !vc_should_retry(VC_TRANSPORT_OK, 400, false, true) &&
		  !vc_should_retry(VC_TRANSPORT_OK, 403, false, true), "501 and 4xx are not retried");
	check(vc_backoff_ms(0, -1, 0.0) == 50 && vc_backoff_ms(0, -1, 0.999) <= 100 && vc_backoff_ms(3, -1, 0.0) == 400 &&
		  vc_backoff_ms(10, -1, 0.999) <= VC_BACKOFF_CAP_MS && vc_backoff_ms(10, -1, 0.0) == VC_BACKOFF_CAP_MS / 2,
		  "backoff doubles from 100 ms to 2 s, jittered down to half");
	check(vc_backoff_ms(0, 3000, 0.5) == 3000 && vc_backoff_ms(0, 600000, 0.5) == VC_RETRY_AFTER_CAP_MS,
		  "Retry-After wins when longer, capped at 30 s");
	check(vc_retry_after_ms("2") == 2000 && vc_retry_after_ms(" 1\r\n") == 1000 && vc_retry_after_ms(NULL) == -1 &&
		  vc_retry_after_ms("soon") == -1 && vc_retry_after_ms("-1") == -1 && vc_retry_after_ms("999") == 30000,
		  "Retry-After: delta-seconds, anything else ignored");

	vc_schedule_granted(&s, 1000000, 3600, 0, true);
	check(s.next_us == 1000000 + 2400000000ull && s.expires_us == 1000000 + 3600000000ull && !s.replace,
		  "renewal at two thirds of the TTL");
	vc_schedule_granted(&s, 1000000, 3600, 0, false);
	check(s.replace, "not renewable: replaced instead");
	vc_schedule_granted(&s, 1000000, 100, 3600, true);
	check(s.replace && s.next_us == 1000000, "granted less than asked (max TTL near): replaced at once");
	vc_schedule_granted(&s, 1000000, 0, 0, true);
	check(s.next_us == 0 && s.expires_us == 0, "no TTL: nothing to do");
	check(vc_schedule_retry(0, 100000000, 5000000) == 5000000 && vc_schedule_retry(0, 6000000, 5000000) == 3000000,
		  "a failed step is retried soon, never after the expiry");

	fd = mkstemp(path);
	check(fd >= 0 && write(fd, "  s.id-123\n", 11) == 11, "a secret file written");
	check(vc_read_secret_file(path, word, sizeof(word), NULL) == VC_FILE_OK && strcmp(word, "s.id-123") == 0,
		  "a secret file: trimmed");
	check(vc_read_secret_file(path, small, 4, NULL) == VC_FILE_TOO_LARGE && small[0] == '\0',
		  "a secret file longer than the buffer: refused, buffer wiped");
	check(ftruncate(fd, 0) == 0 && write(fd, "two words", 9) == 9 &&
		  vc_read_secret_file(path, word, sizeof(word), NULL) == VC_FILE_NOT_A_WORD, "two words: refused");
	close(fd);
	unlink(path);
	check(vc_read_secret_file(path, word, sizeof(word), NULL) == VC_FILE_OPEN, "a missing file: refused");

	printf("%d failed\n", failed);
	return failed != 0;
}

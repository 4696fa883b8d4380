/*
 * log.c
 *    JSON-lines logging on stderr: one object per line with a timestamp,
 *    a level and an event name, then the caller's fields.  Callers pass
 *    only what may be kept: request ids, routes, statuses, latencies,
 *    SQLSTATEs, credential names.  Never a token, secret_id, password,
 *    SSN or plaintext: nothing here could tell them apart, so they must
 *    not get this far.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "app.h"

static void
write_all(const char *buf, size_t len)
{
	while (len > 0)
	{
		ssize_t		n = write(STDERR_FILENO, buf, len);

		if (n <= 0)
			return;
		buf += n;
		len -= n;
	}
}

/* fields is stolen (may be NULL). */
void
log_event(const char *level, const char *event, json_t *fields)
{
	json_t	   *line;
	struct timespec ts;
	struct tm	tm;
	char		when[40];
	char	   *text;
	size_t		len;

	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	len = strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%S", &tm);
	snprintf(when + len, sizeof(when) - len, ".%03ldZ", ts.tv_nsec / 1000000);

	line = json_pack("{s:s, s:s, s:s}", "ts", when, "level", level, "event", event);
	if (line == NULL)
	{
		json_decref(fields);
		return;
	}
	if (fields != NULL)
	{
		json_object_update(line, fields);
		json_decref(fields);
	}
	text = json_dumps(line, JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(6));
	json_decref(line);
	if (text == NULL)
		return;
	len = strlen(text);
	/* One write per line, so that lines from threads never interleave. */
	text[len] = '\n';
	write_all(text, len + 1);
	json_wipe_free(text);
}

void
log_msg(const char *level, const char *event, const char *message)
{
	log_event(level, event, json_pack("{s:s}", "message", message));
}

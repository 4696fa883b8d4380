/*
 * vault_client.c
 *    The transport-neutral rules of a Vault client: path escaping, the
 *    retry policy and backoff, the renewal schedule, secret files.  See
 *    vault_client.h.
 */
#include "vault_client.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* ---- request paths ---- */

static bool
is_unreserved(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		(c >= '0' && c <= '9') || c == '-' || c == '.' || c == '_' || c == '~';
}

long
vc_path_escape(const char *path, bool allow_empty, char *dst, size_t dstlen)
{
	static const char hex[] = "0123456789ABCDEF";
	const char *p = path;
	const char *end = path + strlen(path);
	size_t		n = 0;
	bool		first = true;

	if (dstlen == 0)
		return -1;
	while (p < end && *p == '/')
		p++;
	while (end > p && end[-1] == '/')
		end--;
	if (p == end && !allow_empty)
		return -1;
	while (p < end)
	{
		const char *seg = p;

		while (p < end && *p != '/')
			p++;
		if (p == seg || (p - seg == 1 && seg[0] == '.') ||
			(p - seg == 2 && seg[0] == '.' && seg[1] == '.'))
			return -1;
		if (!first)
		{
			if (n + 1 >= dstlen)
				return -1;
			dst[n++] = '/';
		}
		first = false;
		for (; seg < p; seg++)
		{
			unsigned char c = (unsigned char) *seg;

			if (is_unreserved(c))
			{
				if (n + 1 >= dstlen)
					return -1;
				dst[n++] = (char) c;
			}
			else
			{
				if (n + 3 >= dstlen)
					return -1;
				dst[n++] = '%';
				dst[n++] = hex[c >> 4];
				dst[n++] = hex[c & 15];
			}
		}
		if (p < end)
			p++;
	}
	dst[n] = '\0';
	return (long) n;
}

long
vc_build_url(const char *addr, const char *path, char *dst, size_t dstlen)
{
	size_t		alen = strlen(addr);
	long		n;

	while (alen > 0 && addr[alen - 1] == '/')
		alen--;
	if (alen + 4 >= dstlen)
		return -1;
	memcpy(dst, addr, alen);
	memcpy(dst + alen, "/v1/", 4);
	n = vc_path_escape(path, false, dst + alen + 4, dstlen - alen - 4);
	if (n < 0)
	{
		dst[0] = '\0';
		return -1;
	}
	return (long) alen + 4 + n;
}

/* ---- retries ---- */

bool
vc_should_retry(VcTransport transport, long status, bool node_not_active, bool idempotent)
{
	switch (transport)
	{
		case VC_TRANSPORT_CONNECT:
			return true;
		case VC_TRANSPORT_TIMEOUT:
		case VC_TRANSPORT_LOST:
			return idempotent;
		case VC_TRANSPORT_OK:
			break;
		default:
			return false;
	}
	if (status == 412 || status == 429 || status == 503)
		return true;
	if (status == 500 && node_not_active)
		return true;
	if (status >= 500 && status != 501)
		return idempotent;
	return false;
}

long
vc_backoff_ms(int attempt, long retry_after_ms, double unit)
{
	long		delay = VC_BACKOFF_BASE_MS;

	while (attempt-- > 0 && delay < VC_BACKOFF_CAP_MS)
		delay *= 2;
	if (delay > VC_BACKOFF_CAP_MS)
		delay = VC_BACKOFF_CAP_MS;
	if (unit < 0 || unit >= 1)
		unit = 0;
	/* whole milliseconds: the jitter spans [delay / 2, delay) */
	delay = delay / 2 + (long) (unit * ((double) delay / 2.0));
	if (retry_after_ms > VC_RETRY_AFTER_CAP_MS)
		retry_after_ms = VC_RETRY_AFTER_CAP_MS;
	if (retry_after_ms > delay)
		delay = retry_after_ms;
	return delay;
}

long
vc_retry_after_ms(const char *value)
{
	char	   *end;
	long		secs;

	if (value == NULL)
		return -1;
	while (*value == ' ' || *value == '\t')
		value++;
	if (*value < '0' || *value > '9')
		return -1;
	errno = 0;
	secs = strtol(value, &end, 10);
	while (*end == ' ' || *end == '\t' || *end == '\r' || *end == '\n')
		end++;
	if (errno != 0 || *end != '\0' || secs < 0)
		return -1;
	if (secs > VC_RETRY_AFTER_CAP_MS / 1000)
		return VC_RETRY_AFTER_CAP_MS;
	return secs * 1000;
}

/* ---- token and lease renewal schedule ---- */

void
vc_schedule_granted(VcSchedule *s, uint64_t now_us, long granted_s, long asked_s,
					bool renewable)
{
	if (granted_s <= 0)
	{
		s->expires_us = 0;
		s->next_us = 0;
		s->replace = false;
		return;
	}
	s->ttl_s = granted_s;
	s->expires_us = now_us + (uint64_t) granted_s * 1000000u;
	s->next_us = now_us + (uint64_t) granted_s * 1000000u * 2 / 3;
	s->replace = !renewable;
	/*
	 * Granted less than asked: within one TTL of the max TTL, so it cannot
	 * be kept; replace it now, while it can still be revoked (TTLs are
	 * whole seconds: waiting longer risks that).
	 */
	if (asked_s > 0 && granted_s < asked_s)
	{
		s->replace = true;
		s->next_us = now_us;
	}
}

uint64_t
vc_schedule_retry(uint64_t now_us, uint64_t expires_us, uint64_t retry_us)
{
	if (expires_us > now_us && expires_us - now_us < 2 * retry_us)
		return now_us + (expires_us - now_us) / 2;
	return now_us + retry_us;
}

/* ---- secret files ---- */

static bool
is_space(char c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

VcFileStatus
vc_read_secret_file(const char *path, char *dst, size_t dstlen, struct stat *st)
{
	char		buf[4097];
	size_t		got = 0;
	size_t		start;
	size_t		end;
	size_t		i;
	ssize_t		n;
	int			fd;
	VcFileStatus status = VC_FILE_OK;

	if (dstlen == 0)
		return VC_FILE_TOO_LARGE;
	dst[0] = '\0';
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return VC_FILE_OPEN;
	if (st != NULL && fstat(fd, st) != 0)
	{
		int			save = errno;

		close(fd);
		errno = save;
		return VC_FILE_OPEN;
	}
	while (got < sizeof(buf) - 1 &&
		   (n = read(fd, buf + got, sizeof(buf) - 1 - got)) != 0)
	{
		if (n < 0)
		{
			if (errno == EINTR)
				continue;
			status = VC_FILE_OPEN;
			break;
		}
		got += (size_t) n;
	}
	close(fd);
	if (status == VC_FILE_OK)
	{
		start = 0;
		end = got;
		while (start < end && is_space(buf[start]))
			start++;
		while (end > start && is_space(buf[end - 1]))
			end--;
		for (i = start; i < end; i++)
			if ((unsigned char) buf[i] <= ' ' || (unsigned char) buf[i] >= 127)
				break;
		if (got == sizeof(buf) - 1 || end - start >= dstlen)
			status = VC_FILE_TOO_LARGE;
		else if (start == end || i < end)
			status = VC_FILE_NOT_A_WORD;
		else
		{
			memcpy(dst, buf + start, end - start);
			dst[end - start] = '\0';
		}
	}
	explicit_bzero(buf, sizeof(buf));
	if (status != VC_FILE_OK)
		explicit_bzero(dst, dstlen);
	return status;
}

const char *
vc_file_status_message(VcFileStatus status)
{
	switch (status)
	{
		case VC_FILE_OK:
			return "read";
		case VC_FILE_OPEN:
			return "cannot be opened or read";
		case VC_FILE_TOO_LARGE:
			return "is too large";
		case VC_FILE_NOT_A_WORD:
			return "is empty or holds more than one printable word";
	}
	return "cannot be read";
}

/*
 * ratelimit.c
 *    Failed authentications per client address: a token bucket each
 *    (APP_AUTH_FAIL_BURST tries, refilled at APP_AUTH_FAIL_PER_MINUTE).
 *    An address whose bucket is empty is answered 429 with Retry-After
 *    for every request that needs a credential, before its credential is
 *    looked at, until a try is back.  Requests with a valid credential
 *    cost nothing here; only failures take from the bucket.
 *
 *    An IPv4 address (IPv4-mapped IPv6 too) is one client, an IPv6 one
 *    its /64, the least a host is given.  The buckets live in a fixed
 *    open-addressed table: a full bucket (an address that never failed or
 *    has been forgiven) is free to reuse, and when a probe finds none the
 *    fullest is reused, so an attacker with many addresses can evict
 *    only the least suspicious ones.  A leaf but for the clock.
 *
 *    Behind a reverse proxy every client has the proxy's address.  With
 *    APP_TRUSTED_PROXIES (addresses or CIDR blocks) a request from one of
 *    them is keyed by X-Forwarded-For instead: its entries are read from
 *    the right, trusted ones skipped, and the first other one is the
 *    client (the leftmost when all are trusted).  A malformed entry ends
 *    the walk at the last address read, so a client cannot choose its key
 *    by writing garbage in front of what the proxy appended.  From any
 *    other address the header is ignored: anyone can send it.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

#include "app.h"

#define SLOTS		8192		/* a power of two */
#define PROBE		8

typedef struct Bucket
{
	RateKey		key;
	bool		used;
	double		tokens;
	uint64_t	last_us;
} Bucket;

static Bucket table[SLOTS];
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static double burst;
static double per_us;			/* tokens per microsecond */

/* APP_TRUSTED_PROXIES, as 16-byte (IPv4 mapped) addresses and prefix lengths */
#define MAX_TRUSTED 32
static unsigned char trusted_addr[MAX_TRUSTED][16];
static int	trusted_bits[MAX_TRUSTED];
static int	ntrusted;

/* An IPv4 or IPv6 address as text into 16 bytes (IPv4 mapped). */
static bool
parse_addr(const char *text, size_t len, unsigned char out[16], bool *v4)
{
	char		buf[INET6_ADDRSTRLEN];
	struct in_addr a4;

	if (len == 0 || len >= sizeof(buf))
		return false;
	memcpy(buf, text, len);
	buf[len] = '\0';
	if (inet_pton(AF_INET, buf, &a4) == 1)
	{
		memset(out, 0, 10);
		out[10] = out[11] = 0xff;
		memcpy(out + 12, &a4, 4);
		*v4 = true;
		return true;
	}
	*v4 = false;
	return inet_pton(AF_INET6, buf, out) == 1;
}

static bool
prefix_match(const unsigned char *a, const unsigned char *net, int bits)
{
	int			whole = bits / 8,
				rest = bits % 8;

	if (memcmp(a, net, whole) != 0)
		return false;
	return rest == 0 || ((a[whole] ^ net[whole]) & (0xff << (8 - rest))) == 0;
}

static bool
is_trusted(const unsigned char addr[16])
{
	for (int i = 0; i < ntrusted; i++)
		if (prefix_match(addr, trusted_addr[i], trusted_bits[i]))
			return true;
	return false;
}

bool
ratelimit_trust(const char *list, char *err, size_t errlen)
{
	const char *p = list ? list : "";

	ntrusted = 0;
	while (*p)
	{
		const char *end = p + strcspn(p, ",");
		const char *slash;
		const char *a = p,
				   *b = end;
		bool		v4;
		long		bits;

		while (a < b && (*a == ' ' || *a == '\t'))
			a++;
		while (b > a && (b[-1] == ' ' || b[-1] == '\t'))
			b--;
		if (a < b)
		{
			slash = memchr(a, '/', b - a);
			if (ntrusted == MAX_TRUSTED)
			{
				snprintf(err, errlen, "APP_TRUSTED_PROXIES: at most %d entries", MAX_TRUSTED);
				return false;
			}
			if (!parse_addr(a, (slash ? slash : b) - a, trusted_addr[ntrusted], &v4))
			{
				snprintf(err, errlen, "APP_TRUSTED_PROXIES: \"%.*s\" is not an IP address or CIDR block",
						 (int) (b - a), a);
				return false;
			}
			bits = 128;
			if (slash)
			{
				char	   *stop;

				bits = strtol(slash + 1, &stop, 10);
				if (stop != b || slash + 1 == b || bits < 0 || bits > (v4 ? 32 : 128))
				{
					snprintf(err, errlen, "APP_TRUSTED_PROXIES: bad prefix length in \"%.*s\"",
							 (int) (b - a), a);
					return false;
				}
				if (v4)
					bits += 96;
			}
			trusted_bits[ntrusted++] = (int) bits;
		}
		p = *end ? end + 1 : end;
	}
	return true;
}

/* 16 bytes (IPv4 mapped) into a key: IPv4 whole, IPv6 its /64. */
static void
key_of(const unsigned char addr[16], RateKey *key)
{
	static const unsigned char mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};

	memset(key, 0, sizeof(*key));
	if (memcmp(addr, mapped, 12) == 0)
		memcpy(key->addr, addr, 16);
	else
		memcpy(key->addr, addr, 8);
}

void
ratelimit_init(int b, int per_minute)
{
	burst = b;
	per_us = per_minute / 60e6;
}

bool
ratelimit_key(const void *sockaddr, const char *forwarded_for, RateKey *key)
{
	const struct sockaddr *sa = sockaddr;
	unsigned char addr[16];
	const char *end;

	memset(key, 0, sizeof(*key));
	if (sa == NULL)
		return false;
	if (sa->sa_family == AF_INET)
	{
		const struct sockaddr_in *in = sockaddr;

		/* as ::ffff:a.b.c.d, like a mapped one */
		memset(addr, 0, 10);
		addr[10] = addr[11] = 0xff;
		memcpy(addr + 12, &in->sin_addr, 4);
	}
	else if (sa->sa_family == AF_INET6)
		memcpy(addr, &((const struct sockaddr_in6 *) sockaddr)->sin6_addr, 16);
	else
		return false;

	/* through trusted proxies, right to left, to the first other address */
	end = forwarded_for ? forwarded_for + strlen(forwarded_for) : NULL;
	while (end != NULL && is_trusted(addr))
	{
		const char *start = end;
		const char *a,
				   *b;
		unsigned char next[16];
		bool		v4;

		while (start > forwarded_for && start[-1] != ',')
			start--;
		a = start;
		b = end;
		while (a < b && (*a == ' ' || *a == '\t'))
			a++;
		while (b > a && (b[-1] == ' ' || b[-1] == '\t'))
			b--;
		if (!parse_addr(a, b - a, next, &v4))
			break;
		memcpy(addr, next, 16);
		end = start > forwarded_for ? start - 1 : NULL;
	}
	key_of(addr, key);
	return true;
}

void
ratelimit_key_text(const RateKey *key, char *dst, size_t len)
{
	static const unsigned char mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
	char		buf[INET6_ADDRSTRLEN];

	if (memcmp(key->addr, mapped, 12) == 0)
		inet_ntop(AF_INET, key->addr + 12, buf, sizeof(buf));
	else
	{
		inet_ntop(AF_INET6, key->addr, buf, sizeof(buf));
		snprintf(dst, len, "%s/64", buf);
		return;
	}
	snprintf(dst, len, "%s", buf);
}

static unsigned
hash_key(const RateKey *key)
{
	uint64_t	h = 1469598103934665603ull;	/* FNV-1a */
	int			i;

	for (i = 0; i < 16; i++)
	{
		h ^= key->addr[i];
		h *= 1099511628211ull;
	}
	return (unsigned) (h ^ (h >> 32));
}

static void
refill(Bucket *b, uint64_t now)
{
	if (now > b->last_us)
	{
		b->tokens += (double) (now - b->last_us) * per_us;
		if (b->tokens > burst)
			b->tokens = burst;
	}
	b->last_us = now;
}

/* The address's bucket, refilled to now; NULL when it has none (create:
 * give it one).  Called with the lock held. */
static Bucket *
find(const RateKey *key, uint64_t now, bool create)
{
	unsigned	h = hash_key(key);
	Bucket	   *victim = NULL;
	int			i;

	for (i = 0; i < PROBE; i++)
	{
		Bucket	   *b = &table[(h + i) & (SLOTS - 1)];

		if (b->used && memcmp(&b->key, key, sizeof(*key)) == 0)
		{
			refill(b, now);
			return b;
		}
		if (!b->used)
		{
			if (victim == NULL || victim->used)
				victim = b;
			continue;
		}
		refill(b, now);
		if (victim == NULL || (victim->used && b->tokens > victim->tokens))
			victim = b;
	}
	if (!create)
		return NULL;
	victim->used = true;
	victim->key = *key;
	victim->tokens = burst;
	victim->last_us = now;
	return victim;
}

int
ratelimit_check(const RateKey *key)
{
	Bucket	   *b;
	int			wait = 0;

	if (burst <= 0)
		return 0;
	pthread_mutex_lock(&lock);
	b = find(key, now_us(), false);
	if (b != NULL && b->tokens < 1.0)
	{
		double		us = (1.0 - b->tokens) / per_us;

		wait = (int) (us / 1e6) + 1;
	}
	pthread_mutex_unlock(&lock);
	return wait;
}

bool
ratelimit_fail(const RateKey *key)
{
	Bucket	   *b;
	bool		last;

	if (burst <= 0)
		return false;
	pthread_mutex_lock(&lock);
	b = find(key, now_us(), true);
	b->tokens -= 1.0;
	last = b->tokens < 1.0;
	pthread_mutex_unlock(&lock);
	return last;
}

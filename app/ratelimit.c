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

void
ratelimit_init(int b, int per_minute)
{
	burst = b;
	per_us = per_minute / 60e6;
}

bool
ratelimit_key(const void *sockaddr, RateKey *key)
{
	const struct sockaddr *sa = sockaddr;

	memset(key, 0, sizeof(*key));
	if (sa == NULL)
		return false;
	if (sa->sa_family == AF_INET)
	{
		const struct sockaddr_in *in = sockaddr;

		/* stored as ::ffff:a.b.c.d, like a mapped one */
		key->addr[10] = key->addr[11] = 0xff;
		memcpy(key->addr + 12, &in->sin_addr, 4);
		return true;
	}
	if (sa->sa_family == AF_INET6)
	{
		const struct sockaddr_in6 *in6 = sockaddr;

		if (IN6_IS_ADDR_V4MAPPED(&in6->sin6_addr))
			memcpy(key->addr, &in6->sin6_addr, 16);
		else
			memcpy(key->addr, &in6->sin6_addr, 8);	/* the /64 */
		return true;
	}
	return false;
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

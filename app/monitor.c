/*
 * monitor.c
 *    The background thread that keeps the state requests are answered
 *    from: the credential set (auth.c), loaded every APP_AUTH_REFRESH
 *    seconds, every second while no load has succeeded yet, and at once
 *    on SIGHUP; and the health state (health.c), checked every
 *    APP_HEALTH_INTERVAL seconds.  Both go through the pool like any
 *    request, so they cost a few statements per interval whatever the
 *    traffic.
 */
#include <errno.h>
#include <pthread.h>

#include "app.h"

#define RETRY_US	(1000000ull)

static pthread_t thread;
static bool started;
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cond;
static bool stopping;
static bool woken;

static uint64_t next_auth;
static uint64_t next_health;

static void
refresh_credentials(const char *why)
{
	int			n = auth_refresh();

	if (n < 0)
	{
		log_event("warning", "credentials",
				  json_pack("{s:s, s:s, s:b}", "message", "could not load the credentials from Vault",
							"trigger", why, "kept_previous", auth_loaded()));
		next_auth = now_us() + RETRY_US;
		return;
	}
	log_event("info", "credentials", json_pack("{s:s, s:i}", "trigger", why, "loaded", n));
	next_auth = now_us() + (uint64_t) app_config.auth_refresh * 1000000u;
}

static void *
run(void *arg)
{
	for (;;)
	{
		uint64_t	next = next_auth < next_health ? next_auth : next_health;
		uint64_t	now = now_us();
		bool		wake;

		pthread_mutex_lock(&lock);
		if (!stopping && !woken && next > now)
		{
			struct timespec ts;

			clock_deadline(&ts, (int64_t) ((next - now) / 1000) + 1);
			while (!stopping && !woken)
				if (pthread_cond_timedwait(&cond, &lock, &ts) == ETIMEDOUT)
					break;
		}
		wake = woken;
		woken = false;
		if (stopping)
		{
			pthread_mutex_unlock(&lock);
			break;
		}
		pthread_mutex_unlock(&lock);

		if (wake)
			refresh_credentials("SIGHUP");
		else if (now_us() >= next_auth)
			refresh_credentials("timer");
		if (now_us() >= next_health)
		{
			health_probe(NULL);
			next_health = now_us() + (uint64_t) app_config.health_interval * 1000000u;
		}
	}
	return NULL;
}

bool
monitor_start(void)
{
	cond_init_monotonic(&cond);
	refresh_credentials("start");
	health_probe(NULL);
	next_health = now_us() + (uint64_t) app_config.health_interval * 1000000u;
	if (pthread_create(&thread, NULL, run, NULL) != 0)
		return false;
	started = true;
	return true;
}

void
monitor_wake(void)
{
	pthread_mutex_lock(&lock);
	woken = true;
	pthread_cond_signal(&cond);
	pthread_mutex_unlock(&lock);
}

void
monitor_stop(void)
{
	if (!started)
		return;
	pthread_mutex_lock(&lock);
	stopping = true;
	pthread_cond_signal(&cond);
	pthread_mutex_unlock(&lock);
	pthread_join(thread, NULL);
	started = false;
}

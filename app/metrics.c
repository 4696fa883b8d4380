/*
 * metrics.c
 *    Prometheus text exposition for GET /metrics: requests and latency
 *    histograms per route, method and status (fixed arrays of atomic
 *    counters, so the hot path takes no lock), labelled counters for rarer
 *    events (Vault and database errors, lease renewals), and the gauges
 *    the handler gathers when scraped.  A leaf: route labels are given to
 *    it at start, gauges with each rendering.
 */
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "app.h"

#define MAX_ROUTES		32
#define N_METHODS		8
#define N_BUCKETS		14

static const char *const method_names[N_METHODS] =
{"GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS", "other"};

/* The statuses this service answers; anything else counts as "other". */
static const int statuses[] = {200, 201, 400, 401, 403, 404, 405, 413, 429, 500, 502, 503, 504, 0};
#define N_STATUSES ((int) (sizeof(statuses) / sizeof(statuses[0])))

/* Upper bounds in microseconds; the last bucket is +Inf. */
static const uint64_t bucket_us[N_BUCKETS] =
{500, 1000, 2500, 5000, 10000, 25000, 50000, 100000, 250000, 500000,
 1000000, 2500000, 5000000, 10000000};

typedef struct Series
{
	uint64_t	count;
	uint64_t	sum_us;
	uint64_t	buckets[N_BUCKETS];	/* not cumulative; summed when rendered */
} Series;

/* [route + 1][method][status]; route index 0 is "no route". */
static Series series[MAX_ROUTES + 1][N_METHODS][N_STATUSES];

typedef struct Counter
{
	char		family[48];
	char		labels[96];
	uint64_t	count;
	struct Counter *next;
} Counter;

static Counter *counters;
static pthread_mutex_t counters_lock = PTHREAD_MUTEX_INITIALIZER;

/* Statements run, by name: the names are the callers' static strings,
 * each claiming a slot the first time (lock-free, so the hot path takes
 * no lock). */
#define MAX_STATEMENTS	32
static struct
{
	const char *name;
	uint64_t	count;
}			statements_run[MAX_STATEMENTS];

void
metrics_statement(const char *name)
{
	int			i;

	for (i = 0; i < MAX_STATEMENTS; i++)
	{
		const char *have = __atomic_load_n(&statements_run[i].name, __ATOMIC_ACQUIRE);

		if (have == NULL)
		{
			const char *expected = NULL;

			if (!__atomic_compare_exchange_n(&statements_run[i].name, &expected, name, false,
											 __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE))
				have = expected;
			else
				have = name;
		}
		if (have == name)
		{
			__atomic_fetch_add(&statements_run[i].count, 1, __ATOMIC_RELAXED);
			return;
		}
	}
}

static const char *const *route_labels;
static int	n_route_labels;
static int	inflight;

void
metrics_set_routes(const char *const *labels, int n)
{
	route_labels = labels;
	n_route_labels = n < MAX_ROUTES ? n : MAX_ROUTES;
}

void
metrics_inflight_add(int delta)
{
	__atomic_add_fetch(&inflight, delta, __ATOMIC_RELAXED);
}

int
metrics_inflight(void)
{
	return __atomic_load_n(&inflight, __ATOMIC_RELAXED);
}

static int
method_index(const char *m)
{
	int			i;

	for (i = 0; i < N_METHODS - 1; i++)
		if (strcmp(m, method_names[i]) == 0)
			return i;
	return N_METHODS - 1;
}

static int
status_index(int status)
{
	int			i;

	for (i = 0; i < N_STATUSES - 1; i++)
		if (statuses[i] == status)
			return i;
	return N_STATUSES - 1;
}

void
metrics_request(int route, const char *method, int status, uint64_t usec)
{
	Series	   *s;
	int			b;

	if (route < -1 || route >= MAX_ROUTES)
		route = -1;
	s = &series[route + 1][method_index(method)][status_index(status)];
	for (b = 0; b < N_BUCKETS; b++)
		if (usec <= bucket_us[b])
			break;
	__atomic_fetch_add(&s->count, 1, __ATOMIC_RELAXED);
	__atomic_fetch_add(&s->sum_us, usec, __ATOMIC_RELAXED);
	if (b < N_BUCKETS)
		__atomic_fetch_add(&s->buckets[b], 1, __ATOMIC_RELAXED);
}

/*
 * family{labels} += 1, labels being for example kind="connect".  Families
 * and labels are fixed strings from the code, so the series stay few.
 */
void
metrics_count(const char *family, const char *labels)
{
	Counter    *c;
	Counter   **tail;

	pthread_mutex_lock(&counters_lock);
	for (tail = &counters; (c = *tail) != NULL; tail = &c->next)
		if (strcmp(c->family, family) == 0 && strcmp(c->labels, labels) == 0)
			break;
	if (c == NULL && (c = calloc(1, sizeof(Counter))) != NULL)
	{
		snprintf(c->family, sizeof(c->family), "%s", family);
		snprintf(c->labels, sizeof(c->labels), "%s", labels);
		*tail = c;
	}
	if (c != NULL)
		c->count++;
	pthread_mutex_unlock(&counters_lock);
}

typedef struct Buf
{
	char	   *data;
	size_t		len;
	size_t		cap;
	bool		failed;
} Buf;

static void
bprintf(Buf *b, const char *fmt,...) __attribute__((format(printf, 2, 3)));

static void
bprintf(Buf *b, const char *fmt,...)
{
	va_list		ap;
	int			n;

	if (b->failed)
		return;
	for (;;)
	{
		va_start(ap, fmt);
		n = vsnprintf(b->data + b->len, b->cap - b->len, fmt, ap);
		va_end(ap);
		if (n < 0)
		{
			b->failed = true;
			return;
		}
		if ((size_t) n < b->cap - b->len)
		{
			b->len += n;
			return;
		}
		{
			size_t		ncap = (b->cap + n + 1) * 2;
			char	   *nd = realloc(b->data, ncap);

			if (nd == NULL)
			{
				b->failed = true;
				return;
			}
			b->data = nd;
			b->cap = ncap;
		}
	}
}

static const char *
route_label(int r)
{
	return r < 0 || r >= n_route_labels ? "unmatched" : route_labels[r];
}

static void
render_requests(Buf *b)
{
	int			r,
				m,
				s,
				k;
	int			nroutes = n_route_labels;

	bprintf(b, "# HELP pgv_app_http_requests_total HTTP requests answered, by route, method and status.\n"
			"# TYPE pgv_app_http_requests_total counter\n");
	for (r = -1; r < nroutes && r < MAX_ROUTES; r++)
		for (m = 0; m < N_METHODS; m++)
			for (s = 0; s < N_STATUSES; s++)
			{
				uint64_t	n = __atomic_load_n(&series[r + 1][m][s].count, __ATOMIC_RELAXED);
				char		st[8];

				if (n == 0)
					continue;
				snprintf(st, sizeof(st), "%d", statuses[s]);
				bprintf(b, "pgv_app_http_requests_total{route=\"%s\",method=\"%s\",status=\"%s\"} %llu\n",
						route_label(r), method_names[m], statuses[s] ? st : "other",
						(unsigned long long) n);
			}

	bprintf(b, "# HELP pgv_app_http_request_duration_seconds Time from a request's headers to its answer, by route, method and status.\n"
			"# TYPE pgv_app_http_request_duration_seconds histogram\n");
	for (r = -1; r < nroutes && r < MAX_ROUTES; r++)
		for (m = 0; m < N_METHODS; m++)
			for (s = 0; s < N_STATUSES; s++)
			{
				Series	   *se = &series[r + 1][m][s];
				uint64_t	n = __atomic_load_n(&se->count, __ATOMIC_RELAXED);
				uint64_t	cum = 0;
				char		labels[200];
				char		st[8];

				if (n == 0)
					continue;
				snprintf(st, sizeof(st), "%d", statuses[s]);
				snprintf(labels, sizeof(labels), "route=\"%s\",method=\"%s\",status=\"%s\"",
						 route_label(r), method_names[m], statuses[s] ? st : "other");
				for (k = 0; k < N_BUCKETS; k++)
				{
					cum += __atomic_load_n(&se->buckets[k], __ATOMIC_RELAXED);
					bprintf(b, "pgv_app_http_request_duration_seconds_bucket{%s,le=\"%g\"} %llu\n",
							labels, bucket_us[k] / 1e6, (unsigned long long) cum);
				}
				/* count may run ahead of the buckets while being read */
				if (cum > n)
					n = cum;
				bprintf(b, "pgv_app_http_request_duration_seconds_bucket{%s,le=\"+Inf\"} %llu\n",
						labels, (unsigned long long) n);
				bprintf(b, "pgv_app_http_request_duration_seconds_sum{%s} %.6f\n",
						labels, __atomic_load_n(&se->sum_us, __ATOMIC_RELAXED) / 1e6);
				bprintf(b, "pgv_app_http_request_duration_seconds_count{%s} %llu\n",
						labels, (unsigned long long) n);
			}
}

static const struct
{
	const char *family;
	const char *help;
}			families[] =
{
	{"pgv_app_vault_errors_total", "Errors from Vault, seen through pg_vault (source=\"sql\") or by the app's own client (source=\"app\"), by kind."},
	{"pgv_app_db_errors_total", "Database errors by kind: connect, connection_lost, pool_timeout, query."},
	{"pgv_app_auth_failures_total", "Refused bearer credentials by reason (missing, invalid, forbidden, limited, not_loaded)."},
	{"pgv_app_auth_refreshes_total", "Loads of the credential set from Vault, by outcome (ok, failed)."},
	{"pgv_app_unauthenticated_refused_total", "Requests refused because APP_MAX_UNAUTHENTICATED were in flight."},
	{"pgv_app_vault_lease_events_total", "The app's Vault token and database-credential lease events."},
};

static void
render_counters(Buf *b)
{
	size_t		f;
	Counter    *c;

	pthread_mutex_lock(&counters_lock);
	for (f = 0; f < sizeof(families) / sizeof(families[0]); f++)
	{
		bprintf(b, "# HELP %s %s\n# TYPE %s counter\n",
				families[f].family, families[f].help, families[f].family);
		for (c = counters; c; c = c->next)
			if (strcmp(c->family, families[f].family) == 0)
				bprintf(b, "%s{%s} %llu\n", c->family, c->labels,
						(unsigned long long) c->count);
	}
	pthread_mutex_unlock(&counters_lock);
}

char *
metrics_render(const MetricsGauges *g, size_t *len)
{
	Buf			b = {0};

	b.cap = 16384;
	b.data = malloc(b.cap);
	if (b.data == NULL)
		return NULL;
	render_requests(&b);
	render_counters(&b);
	bprintf(&b, "# HELP pgv_app_db_statements_total Statements run, by name.\n"
			"# TYPE pgv_app_db_statements_total counter\n");
	for (int i = 0; i < MAX_STATEMENTS; i++)
	{
		const char *name = __atomic_load_n(&statements_run[i].name, __ATOMIC_ACQUIRE);

		if (name != NULL)
			bprintf(&b, "pgv_app_db_statements_total{statement=\"%s\"} %llu\n", name,
					(unsigned long long) __atomic_load_n(&statements_run[i].count, __ATOMIC_RELAXED));
	}
	bprintf(&b, "# HELP pgv_app_db_pool_size Connections the pool may open.\n"
			"# TYPE pgv_app_db_pool_size gauge\npgv_app_db_pool_size %d\n"
			"# HELP pgv_app_db_pool_open Connections open now.\n"
			"# TYPE pgv_app_db_pool_open gauge\npgv_app_db_pool_open %d\n"
			"# HELP pgv_app_db_pool_in_use Connections serving a request now.\n"
			"# TYPE pgv_app_db_pool_in_use gauge\npgv_app_db_pool_in_use %d\n"
			"# HELP pgv_app_db_pool_waiting Requests waiting for a connection now.\n"
			"# TYPE pgv_app_db_pool_waiting gauge\npgv_app_db_pool_waiting %d\n"
			"# HELP pgv_app_http_requests_in_flight Requests being served now.\n"
			"# TYPE pgv_app_http_requests_in_flight gauge\npgv_app_http_requests_in_flight %d\n"
			"# HELP pgv_app_auth_credentials Bearer credentials in the set loaded from Vault.\n"
			"# TYPE pgv_app_auth_credentials gauge\npgv_app_auth_credentials %d\n",
			g->pool_size, g->pool_open, g->pool_in_use, g->pool_waiting, metrics_inflight(),
			g->credentials);
	if (b.failed)
	{
		free(b.data);
		return NULL;
	}
	*len = b.len;
	return b.data;
}

/*
 * routes.c
 *    The route table: every endpoint of the service as {method, pattern,
 *    scope, handler}, and the lookup that turns a request line into a
 *    route, a 404 (no such path) or a 405 (path known, method not).  HEAD
 *    is served wherever GET is.
 */
#include <stdio.h>
#include <string.h>

#include "app.h"

static const AppRoute routes[] =
{
	{"GET", "/health", SCOPE_NONE, h_health},
	{"GET", "/ready", SCOPE_NONE, h_ready},
	{"GET", "/metrics", SCOPE_NONE, h_metrics},
	{"GET", "/api/secret", SCOPE_READ, h_secret},
	{"GET", "/api/config", SCOPE_READ, h_config},
	{"GET", "/api/db-status", SCOPE_READ, h_db_status},
	{"POST", "/api/users", SCOPE_ENCRYPT, h_users_create},
	{"GET", "/api/users", SCOPE_READ, h_users_list},
	{"GET", "/api/users/{id}/ssn", SCOPE_DECRYPT, h_user_ssn},
	{"POST", "/api/encrypt", SCOPE_ENCRYPT, h_encrypt},
	{"POST", "/api/decrypt", SCOPE_DECRYPT, h_decrypt},
};

#define N_ROUTES ((int) (sizeof(routes) / sizeof(routes[0])))

int
route_count(void)
{
	return N_ROUTES;
}

const AppRoute *
route_at(int i)
{
	return &routes[i];
}

/*
 * Does path match pattern?  A {name} segment matches one non-empty path
 * segment, copied to param.
 */
static bool
path_matches(const char *pattern, const char *path, char *param, size_t param_len)
{
	const char *p = pattern;
	const char *s = path;

	while (*p && *s)
	{
		if (*p == '{')
		{
			const char *pend = strchr(p, '}');
			size_t		n = strcspn(s, "/");

			if (pend == NULL || n == 0 || n >= param_len)
				return false;
			memcpy(param, s, n);
			param[n] = '\0';
			p = pend + 1;
			s += n;
			continue;
		}
		if (*p != *s)
			return false;
		p++;
		s++;
	}
	return *p == '\0' && *s == '\0';
}

int
route_find(const char *method, const char *path, char *param, size_t param_len,
		   char *allowed, size_t allowed_len)
{
	const char *m = strcmp(method, "HEAD") == 0 ? "GET" : method;
	bool		path_known = false;
	int			i;

	allowed[0] = '\0';
	for (i = 0; i < N_ROUTES; i++)
	{
		char		scratch[64] = "";

		if (!path_matches(routes[i].pattern, path, scratch, sizeof(scratch)))
			continue;
		if (strcmp(routes[i].method, m) == 0)
		{
			snprintf(param, param_len, "%s", scratch);
			return i;
		}
		if (!strstr(allowed, routes[i].method))
		{
			size_t		used = strlen(allowed);

			snprintf(allowed + used, allowed_len - used, "%s%s",
					 used ? ", " : "", routes[i].method);
			if (strcmp(routes[i].method, "GET") == 0)
			{
				used = strlen(allowed);
				snprintf(allowed + used, allowed_len - used, ", HEAD");
			}
		}
		path_known = true;
	}
	return path_known ? -1 : -2;
}

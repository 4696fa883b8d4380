/*
 * handlers_users.c
 *    The users endpoints.  SSNs and payment tokens go into the database
 *    only as Vault ciphertexts (encrypted inside the INSERT), and come back
 *    out only masked (decrypted and masked inside the SELECT): the app
 *    holds a plaintext SSN only while it validates a request.
 */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "app.h"

#define DEFAULT_LIMIT	50
#define MAX_LIMIT		1000

/* NNN-NN-NNNN */
static bool
ssn_ok(const char *s)
{
	int			i;

	for (i = 0; i < 11; i++)
	{
		if (i == 3 || i == 6)
		{
			if (s[i] != '-')
				return false;
		}
		else if (!isdigit((unsigned char) s[i]))
			return false;
	}
	return s[11] == '\0';
}

/* local@domain, no spaces: enough to catch a swapped field. */
static bool
email_ok(const char *s)
{
	const char *at = strchr(s, '@');
	const char *c;

	if (at == NULL || at == s || at[1] == '\0' || strchr(at + 1, '@') != NULL)
		return false;
	for (c = s; *c; c++)
		if (isspace((unsigned char) *c) || iscntrl((unsigned char) *c))
			return false;
	return true;
}

/* POST /api/users */
void
h_users_create(AppRequest *req)
{
	const char *email,
			   *name,
			   *ssn,
			   *payment;
	const JsonField fields[] = {
		{"email", true, &email, 320},
		{"name", true, &name, 200},
		{"ssn", false, &ssn, 0},
		{"payment_token", false, &payment, 1024},
		{NULL}
	};
	json_t	   *body = json_body_fields(req, fields);
	const char *params[4];
	PGresult   *res;
	DbError		err;
	json_t	   *encrypted;

	if (body == NULL)
		return;
	if (!email_ok(email))
	{
		reply_error(req, 400, "field \"email\" is not an email address");
		goto done;
	}
	if (name[0] == '\0')
	{
		reply_error(req, 400, "field \"name\" must not be empty");
		goto done;
	}
	if (ssn != NULL && !ssn_ok(ssn))
	{
		reply_error(req, 400, "field \"ssn\" must have the form NNN-NN-NNNN");
		goto done;
	}
	if (payment != NULL && payment[0] == '\0')
	{
		reply_error(req, 400, "field \"payment_token\" must not be empty");
		goto done;
	}
	params[0] = email;
	params[1] = name;
	params[2] = ssn;
	params[3] = payment;
	res = db_exec(ST_USER_INSERT, 4, params, &err);
	if (res == NULL)
	{
		reply_db_error(req, &err, "could not insert the user");
		goto done;
	}
	if (PQgetisnull(res, 0, 1))
		encrypted = json_null();
	else
	{
		const char *ct = PQgetvalue(res, 0, 1);
		char		shown[64];

		/* The reference design shows the first 50 characters. */
		snprintf(shown, sizeof(shown), "%.50s...", ct);
		encrypted = json_string(shown);
	}
	reply_json(req, 201, json_pack("{s:s, s:I, s:o}",
								   "message", "User created successfully",
								   "user_id", (json_int_t) strtoll(PQgetvalue(res, 0, 0), NULL, 10),
								   "encrypted_ssn", encrypted));
	PQclear(res);
done:
	json_decref(body);
}

/* A non-negative integer query argument no larger than max. */
static bool
query_count(AppRequest *req, const char *name, long long dflt, long long max,
			char *out, size_t outlen)
{
	const char *v = req_query(req, name);
	char	   *end;
	long long	n;

	if (v == NULL)
		n = dflt;
	else
	{
		if (!isdigit((unsigned char) v[0]))
			return false;
		errno = 0;
		n = strtoll(v, &end, 10);
		if (errno != 0 || *end != '\0' || n > max)
			return false;
	}
	snprintf(out, outlen, "%lld", n);
	return true;
}

/* GET /api/users?limit=&offset= */
void
h_users_list(AppRequest *req)
{
	static const char *const known[] = {"limit", "offset", NULL};
	char		limit[24];
	char		offset[24];
	const char *params[2] = {limit, offset};
	PGresult   *res;
	DbError		err;
	json_t	   *users;
	int			i;

	if (!req_query_only(req, known))
	{
		reply_error(req, 400, "unknown query parameter (limit and offset are known)");
		return;
	}
	if (!query_count(req, "limit", DEFAULT_LIMIT, MAX_LIMIT, limit, sizeof(limit)))
	{
		reply_error(req, 400, "limit must be an integer from 0 to 1000");
		return;
	}
	if (!query_count(req, "offset", 0, INT64_MAX / 2, offset, sizeof(offset)))
	{
		reply_error(req, 400, "offset must be a non-negative integer");
		return;
	}
	res = db_exec(ST_USERS_LIST, 2, params, &err);
	if (res == NULL)
	{
		reply_db_error(req, &err, "could not list users");
		return;
	}
	users = json_array();
	for (i = 0; users != NULL && i < PQntuples(res); i++)
	{
		json_t	   *u = json_pack("{s:I, s:s, s:s}",
								  "id", (json_int_t) strtoll(PQgetvalue(res, i, 0), NULL, 10),
								  "name", PQgetvalue(res, i, 1),
								  "email", PQgetvalue(res, i, 2));

		if (u == NULL || json_array_append_new(users, u) != 0)
		{
			json_decref(users);
			users = NULL;
		}
	}
	PQclear(res);
	if (users == NULL)
	{
		reply_internal(req, "could not build the user list");
		return;
	}
	reply_json(req, 200, json_pack("{s:o}", "users", users));
}

int
user_id_check(const char *param)
{
	const char *c;

	for (c = param; *c; c++)
		if (!isdigit((unsigned char) *c))
			return 400;
	/* Longer than any bigint: no such user. */
	if (strlen(param) > 18)
		return 404;
	return 0;
}

/* GET /api/users/<id>/ssn: masked inside the database. */
void
h_user_ssn(AppRequest *req)
{
	const char *params[1] = {req->param};
	PGresult   *res;
	DbError		err;
	int			check = user_id_check(req->param);

	if (check == 400)
	{
		reply_error(req, 400, "user id must be a positive integer");
		return;
	}
	if (check == 404)
	{
		reply_error(req, 404, "SSN not found");
		return;
	}
	res = db_exec(ST_USER_SSN, 1, params, &err);
	if (res == NULL)
	{
		reply_db_error(req, &err, "could not read the SSN");
		return;
	}
	if (PQntuples(res) != 1 || PQgetisnull(res, 0, 0))
		reply_error(req, 404, "SSN not found");
	else
		reply_json(req, 200, json_pack("{s:s}", "ssn_masked", PQgetvalue(res, 0, 0)));
	PQclear(res);
}

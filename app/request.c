/*
 * request.c
 *    What a handler reads from its request: headers, query arguments (the
 *    values libmicrohttpd parsed) and the JSON body, which it answers with
 *    a 400 when it is not what the handler takes.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <microhttpd.h>

#include "app.h"

const char *
req_header(AppRequest *req, const char *name)
{
	return MHD_lookup_connection_value(req->conn, MHD_HEADER_KIND, name);
}

typedef struct HeaderJoin
{
	const char *name;
	char	   *out;			/* NULL: measuring */
	size_t		len;
} HeaderJoin;

static enum MHD_Result
join_header(void *cls, enum MHD_ValueKind kind, const char *key, const char *value)
{
	HeaderJoin *hj = cls;
	size_t		n;

	if (strcasecmp(key, hj->name) != 0 || value == NULL)
		return MHD_YES;
	n = strlen(value);
	if (hj->out)
	{
		if (hj->len > 0)
			hj->out[hj->len] = ',';
		memcpy(hj->out + hj->len + (hj->len > 0), value, n);
	}
	hj->len += n + (hj->len > 0);
	return MHD_YES;
}

char *
req_header_all(AppRequest *req, const char *name)
{
	HeaderJoin	hj = {name, NULL, 0};
	size_t		len;

	MHD_get_connection_values(req->conn, MHD_HEADER_KIND, join_header, &hj);
	if (hj.len == 0)
		return NULL;
	len = hj.len;
	hj.out = malloc(len + 1);
	if (hj.out == NULL)
		return NULL;
	hj.len = 0;
	MHD_get_connection_values(req->conn, MHD_HEADER_KIND, join_header, &hj);
	hj.out[len] = '\0';
	return hj.out;
}

const char *
req_query(AppRequest *req, const char *name)
{
	return MHD_lookup_connection_value(req->conn, MHD_GET_ARGUMENT_KIND, name);
}

typedef struct QueryCheck
{
	const char *const *names;
	bool		ok;
} QueryCheck;

static enum MHD_Result
check_query_arg(void *cls, enum MHD_ValueKind kind, const char *key, const char *value)
{
	QueryCheck *qc = cls;
	const char *const *n;

	for (n = qc->names; *n; n++)
		if (strcmp(*n, key) == 0)
			return MHD_YES;
	qc->ok = false;
	return MHD_NO;
}

/* True when every query argument is one of names (NULL-terminated). */
bool
req_query_only(AppRequest *req, const char *const *names)
{
	QueryCheck	qc = {names, true};

	MHD_get_connection_values(req->conn, MHD_GET_ARGUMENT_KIND, check_query_arg, &qc);
	return qc.ok;
}

json_t *
json_body_fields(AppRequest *req, const JsonField *fields)
{
	char		msg[160];
	json_t	   *root = json_parse_fields(req->body, req->body_len, fields, msg, sizeof(msg));

	if (root == NULL)
		reply_error(req, 400, msg);
	return root;
}

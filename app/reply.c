/*
 * reply.c
 *    Answers: each reply_* function sets a request's status and body once
 *    (a second answer is dropped); server.c sends what was set.  Bodies are
 *    JSON made by jansson and freed wiping, since they may hold a
 *    plaintext.  A leaf: handlers and server.c call it, it calls only the
 *    allocator.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "app.h"

static void
set_answer(AppRequest *req, int status, char *out, size_t len, const char *ctype,
		   void (*out_free) (void *))
{
	if (req->answered)
	{
		if (out != NULL)
			out_free(out);
		return;
	}
	req->answered = true;
	req->status = status;
	req->out = out;
	req->out_len = len;
	req->out_free = out_free;
	req->content_type = ctype;
}

void
reply_json(AppRequest *req, int status, json_t *body)
{
	char	   *text = body ? json_dumps(body, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;

	json_decref(body);
	if (text == NULL)
	{
		/* Out of memory building the answer: a fixed one will do. */
		text = strdup("{\"error\":\"internal error\"}");
		req->log_error = "could not build the answer";
		set_answer(req, 500, text, text ? strlen(text) : 0, "application/json", free);
		return;
	}
	set_answer(req, status, text, strlen(text), "application/json", json_wipe_free);
}

void
reply_error(AppRequest *req, int status, const char *message)
{
	reply_json(req, status, json_pack("{s:s}", "error", message));
}

/* A 500 says only that, and the request id the log line carries. */
void
reply_internal(AppRequest *req, const char *why)
{
	req->log_error = why;
	reply_json(req, 500, json_pack("{s:s, s:s}", "error", "internal error",
								   "request_id", req->id));
}

void
reply_unavailable(AppRequest *req, const char *what, const char *why)
{
	req->log_error = why;
	reply_json(req, 503, json_pack("{s:s, s:s}", "error", what, "request_id", req->id));
}

/* text is taken over (malloc'ed). */
void
reply_text(AppRequest *req, int status, char *text, size_t len, const char *content_type)
{
	set_answer(req, status, text, len, content_type, free);
}

void
reply_db_error(AppRequest *req, const DbError *err, const char *what)
{
	snprintf(req->sqlstate, sizeof(req->sqlstate), "%s", err->sqlstate);
	switch (err->kind)
	{
		case DBE_UNAVAILABLE:
		case DBE_CONNECTION:
			reply_unavailable(req, "database unavailable", what);
			break;
		case DBE_VAULT_UNAVAILABLE:
			reply_unavailable(req, "vault unavailable", what);
			break;
		default:
			reply_internal(req, what);
			break;
	}
}

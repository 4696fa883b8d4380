/*
 * http_many.c
 *    A parallel round of the extension's HTTP client (the batch forms): up
 *    to vault.batch_parallel requests at once through a libcurl multi
 *    handle, each on a connection of its own (vault_http_conns[1..]),
 *    which the multi handle keeps alive between rounds.
 *
 *    Their first attempts go to the first address whose breaker is closed;
 *    one that fails in a way worth retrying goes through the same retry and
 *    failover loop as a single request (http.c), on its own.  The multi
 *    loop raises no error: a pending cancel aborts the transfers through
 *    the progress callback, and is acted on once every handle is out of
 *    the multi handle.
 */
#include "postgres.h"

#include <curl/curl.h>

#include "miscadmin.h"
#include "utils/timestamp.h"

#include "pg_vault.h"
#include "http.h"

static CURLM *multi = NULL;

/*
 * The first attempt of each request marked in redo, all at once: one
 * connection each, on the first address whose breaker lets them through.
 * Requests whose attempt failed in a way worth retrying then go through
 * vault_http_exchange(), one after another, with the retries and failover
 * a single request gets.
 */
void
vault_http_perform_many(VaultResult *res, int n, const bool *redo,
						VaultMethod method, const char *path,
						const char *const *bodies, const size_t *lens,
						const int64 *rows, const char *token, int flags)
{
	struct curl_slist *headers;
	TimestampTz start = GetCurrentTimestamp();
	VaultStatKind kind = VAULT_KIND_OF(flags);
	int			base = -1;
	int			running = 0;
	bool		added[VAULT_MAX_PARALLEL];
	CURLMsg    *msg;
	int			left;

	Assert(n >= 1 && n <= VAULT_MAX_PARALLEL);
	for (int i = 0; i < n; i++)
	{
		added[i] = false;
		if (redo == NULL || redo[i])
			(void) vault_http_ready_conn(1 + i);
	}
	headers = vault_http_headers(token);
	if (multi == NULL)
	{
		multi = curl_multi_init();
		if (multi == NULL)
			ereport(ERROR,
					(errcode(ERRCODE_EXTERNAL_ROUTINE_INVOCATION_EXCEPTION),
					 errmsg("could not create a libcurl multi handle")));
	}

	for (int i = 0; i < vault_http_addr_count() && base < 0; i++)
		if (vault_breaker_allows(vault_http_addr_key(i), start))
			base = i;

	/* From here to the end of the round nothing raises an error. */
	if (base >= 0)
	{
		const char *url = vault_http_url(base, path, method);

		for (int i = 0; i < n; i++)
		{
			HttpConn   *c = &vault_http_conns[1 + i];

			if (redo != NULL && !redo[i])
				continue;
			vault_http_setup_transfer(c, &res[i], method, url, bodies[i], lens[i],
									  headers);
			if (curl_multi_add_handle(multi, c->h) == CURLM_OK)
				added[i] = true;
			else
				vault_http_finish_transfer(c, &res[i], CURLE_OUT_OF_MEMORY);
		}
		pgstat_report_wait_start(vault_http_wait_event(HTTP_WAIT_REQUEST));
		for (;;)
		{
			/* a pending cancel aborts the transfers through xferinfo_callback */
			if (curl_multi_perform(multi, &running) != CURLM_OK || running == 0)
				break;
			(void) curl_multi_poll(multi, NULL, 0, 1000, NULL);
		}
		pgstat_report_wait_end();
		while ((msg = curl_multi_info_read(multi, &left)) != NULL)
		{
			HttpConn   *c = NULL;

			if (msg->msg != CURLMSG_DONE)
				continue;
			curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **) &c);
			if (c == NULL || c < &vault_http_conns[1] || c > &vault_http_conns[n])
				continue;
			vault_http_finish_transfer(c, &res[c - &vault_http_conns[1]], msg->data.result);
			curl_multi_remove_handle(multi, c->h);
			added[c - &vault_http_conns[1]] = false;
		}
		/* a transfer the multi handle did not report (a failed perform) */
		for (int i = 0; i < n; i++)
			if (added[i])
			{
				curl_multi_remove_handle(multi, vault_http_conns[1 + i].h);
				vault_http_finish_transfer(&vault_http_conns[1 + i], &res[i], CURLE_SEND_ERROR);
			}
	}

	for (int i = 0; i < n; i++)
	{
		HttpConn   *c = &vault_http_conns[1 + i];

		if (redo != NULL && !redo[i])
			continue;
		if (base < 0)
		{
			/* every breaker open: vault_http_exchange() reports it */
			if (rows)
				vault_stat_set_rows(rows[i]);
			vault_http_exchange(c, &res[i], method, path, bodies[i], lens[i],
								headers, flags, 0, 0, start);
			continue;
		}
		if (res[i].transport == VT_CANCELED)
		{
			vault_stat_exchange(kind, false, 0, (int64) lens[i], res[i].len,
								(double) (GetCurrentTimestamp() - start) / 1000.0);
			continue;
		}
		vault_breaker_record(vault_http_addr_key(base),
							 vault_http_transport_failure(&res[i]),
							 vault_breaker_failures, vault_breaker_cooldown_ms);
		if (rows)
			vault_stat_set_rows(rows[i]);
		if (vault_http_should_retry(&res[i], flags))
			vault_http_exchange(c, &res[i], method, path, bodies[i], lens[i],
								headers, flags, 1, 1, start);
		else
		{
			vault_stat_exchange(kind, res[i].transport == VT_OK && res[i].status < 400,
								0, (int64) lens[i], res[i].len,
								(double) (GetCurrentTimestamp() - start) / 1000.0);
			vault_http_shrink_response(c, &res[i]);
		}
	}
	CHECK_FOR_INTERRUPTS();
}

/* Wipes the responses of the last parallel round (plaintexts) from memory. */
void
vault_http_wipe_many(void)
{
	for (int i = 1; i <= VAULT_MAX_PARALLEL; i++)
	{
		ResponseBuffer *rb = &vault_http_conns[i].rb;

		if (rb->data != NULL)
			explicit_bzero(rb->data, rb->len);
		rb->len = 0;
	}
}

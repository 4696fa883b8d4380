/*
 * redact.c
 *    Keeps plaintexts out of the server log: an emit_log_hook that takes the
 *    values out of the statement text in log lines (vault.redact_logs).
 *
 *    PostgreSQL writes statement text into its log in several places: the
 *    log_statement and duration lines (the message), their "parameters: $1 =
 *    ..." detail, the STATEMENT line of log_min_error_statement (from
 *    debug_query_string), the QUERY and CONTEXT lines of errors raised inside
 *    functions, COPY's 'line 3: "..."' context, and auto_explain's "Query
 *    Text".  When a text is one pg_vault redacts (vc_redact_needed: it names
 *    a vault_* function or carries values into a table: INSERT, UPDATE,
 *    MERGE, COPY, EXECUTE, also inside DO blocks and function bodies), or
 *    always with vault.redact_logs = all, every literal in those places is
 *    replaced by a placeholder before the line is written.
 *
 *    PostgreSQL formats an error once for the log and the client, so a
 *    client sees the redacted CONTEXT, DETAIL and QUERY of such an error too.
 *    The hook is installed when the library is loaded: statements logged by
 *    a session before its first pg_vault call are redacted only when
 *    pg_vault is in shared_preload_libraries (or session_preload_libraries).
 */
#include "postgres.h"

#include "miscadmin.h"
#include "tcop/tcopprot.h"
#include "utils/elog.h"
#include "utils/guc.h"
#include "utils/memutils.h"

#include "pg_vault.h"
#include "common/vault_redact.h"

typedef enum
{
	REDACT_OFF,
	REDACT_ON,
	REDACT_ALL
} RedactMode;

static const struct config_enum_entry redact_options[] = {
	{"off", REDACT_OFF, false},
	{"on", REDACT_ON, false},
	{"all", REDACT_ALL, false},
	{"false", REDACT_OFF, true},
	{"true", REDACT_ON, true},
	{"no", REDACT_OFF, true},
	{"yes", REDACT_ON, true},
	{"0", REDACT_OFF, true},
	{"1", REDACT_ON, true},
	{NULL, 0, false}
};

static int	redact_mode = REDACT_ON;
static emit_log_hook_type prev_emit_log_hook = NULL;

/* The redacted copy debug_query_string points at, if any. */
static char *redacted_statement = NULL;

/*
 * Returns s redacted (a new string in the current memory context, s wiped),
 * or s when nothing in it changes or memory is short.
 */
static char *
redact_text(char *s, size_t from, bool context)
{
	size_t		n = context ? vc_redact_context(s, NULL) : vc_redact_sql(s, from, NULL);
	char	   *r = palloc_extended(n + 1, MCXT_ALLOC_NO_OOM);

	if (r == NULL)
		return s;
	if (context)
		vc_redact_context(s, r);
	else
		vc_redact_sql(s, from, r);
	if (strcmp(r, s) == 0)
	{
		pfree(r);
		return s;
	}
	explicit_bzero(s, strlen(s));
	return r;
}

/* Where the statement starts in a message: after "duration: 1.234 ms". */
static size_t
message_offset(const char *message)
{
	const char *ms;

	if (strncmp(message, "duration: ", 10) != 0)
		return 0;
	ms = strstr(message, " ms");
	return ms ? (size_t) (ms - message) + 3 : 0;
}

static void
vault_emit_log_hook(ErrorData *edata)
{
	bool		needed;

	if (prev_emit_log_hook)
		prev_emit_log_hook(edata);
	if (redact_mode == REDACT_OFF || !edata->output_to_server)
		return;

	needed = redact_mode == REDACT_ALL ||
		vc_redact_needed(debug_query_string) ||
		vc_redact_needed(edata->message) ||
		vc_redact_needed(edata->internalquery) ||
		vc_redact_needed(edata->context);
	if (!needed)
		return;

	if (in_error_recursion_trouble())
	{
		/* no memory to spare: leave out what cannot be redacted */
		edata->hide_stmt = true;
		edata->detail = edata->detail_log = edata->context = NULL;
		edata->internalquery = NULL;
		return;
	}

	if (edata->message)
		edata->message = redact_text(edata->message,
									 message_offset(edata->message), false);
	if (edata->detail)
		edata->detail = redact_text(edata->detail, 0, false);
	if (edata->detail_log)
		edata->detail_log = redact_text(edata->detail_log, 0, false);
	if (edata->context)
		edata->context = redact_text(edata->context, 0, true);
	if (edata->internalquery)
		edata->internalquery = redact_text(edata->internalquery, 0, false);

	/*
	 * The STATEMENT line is printed from debug_query_string, which only
	 * logging reads (and parallel workers, for their own log lines and
	 * pg_stat_activity): point it at a redacted copy for the rest of the
	 * statement.
	 */
	if (!edata->hide_stmt && debug_query_string != NULL &&
		debug_query_string != redacted_statement)
	{
		size_t		n = vc_redact_sql(debug_query_string, 0, NULL);
		char	   *copy = MemoryContextAllocExtended(TopMemoryContext, n + 1,
													  MCXT_ALLOC_NO_OOM);

		if (copy == NULL)
			edata->hide_stmt = true;
		else
		{
			vc_redact_sql(debug_query_string, 0, copy);
			if (redacted_statement)
				pfree(redacted_statement);
			redacted_statement = copy;
			debug_query_string = copy;
		}
	}
}

void
vault_redact_init(void)
{
	DefineCustomEnumVariable("vault.redact_logs",
							 "Takes the values out of pg_vault statements in log lines.",
							 "on: statements that call pg_vault functions or carry values "
							 "into tables (INSERT, UPDATE, MERGE, COPY, EXECUTE); "
							 "all: every statement; off: none.",
							 &redact_mode, REDACT_ON, redact_options,
							 PGC_SUSET, 0, NULL, NULL, NULL);

	prev_emit_log_hook = emit_log_hook;
	emit_log_hook = vault_emit_log_hook;
}

/*
 * vault_redact.h
 *    Statement text with its values taken out, for log lines (pure C; see
 *    vault_redact.c).
 */
#ifndef VAULT_REDACT_H
#define VAULT_REDACT_H

#include <stdbool.h>
#include <stddef.h>

#define VC_REDACTED			"[redacted]"
#define VC_REDACTED_STRING	"'[redacted]'"

/*
 * Whether a statement text is one whose values pg_vault redacts: it names
 * a pg_vault function (an identifier starting with vault_), or carries
 * values into a table or a prepared plan (INSERT, UPDATE, MERGE, COPY,
 * EXECUTE), at the top level or inside a dollar-quoted body (DO blocks,
 * function bodies).
 */
bool		vc_redact_needed(const char *text);

/*
 * Writes text with every literal (strings of each form, dollar-quoted
 * bodies, numbers) replaced by a placeholder, keeping text[0..from) as it
 * is.  out NULL only measures.  Returns the length written, without the NUL
 * (out must hold one more byte).
 */
size_t		vc_redact_sql(const char *text, size_t from, char *out);

/*
 * The same for an error's CONTEXT lines: a line ending in a quoted
 * statement ('SQL statement "INSERT ..."') loses that statement's literals,
 * one quoting a row ('COPY t, line 3: "a,b,c"') loses the row, any other
 * line with a quote ('... parameters: $1 = 'x'') its literals.  out NULL
 * measures.
 */
size_t		vc_redact_context(const char *text, char *out);

#endif							/* VAULT_REDACT_H */

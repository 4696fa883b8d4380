/*
 * vault_redact.c
 *    Statement text with its values taken out, for log lines.  A small SQL
 *    lexer (comments, the string forms, dollar quotes, quoted identifiers,
 *    parameters, numbers) that tells whether a text is one pg_vault must
 *    redact and writes the text with every literal replaced.  Pure C: the
 *    extension's log hook (src/redact.c) and the fuzz targets use it.
 */
#include "vault_redact.h"

#include <string.h>

typedef enum
{
	TOK_OTHER,					/* one byte of punctuation or white space */
	TOK_COMMENT,
	TOK_STRING,					/* '', E'', B'', X'', N'', U&'' */
	TOK_DOLLAR,					/* $tag$ ... $tag$ */
	TOK_NUMBER,
	TOK_IDENT,
	TOK_QIDENT,					/* "..." */
	TOK_PARAM					/* $1 */
} TokKind;

typedef struct
{
	TokKind		kind;
	size_t		start;
	size_t		end;			/* one past the token */
	size_t		body;			/* TOK_DOLLAR: where the body starts */
	size_t		body_end;		/* TOK_DOLLAR: where it ends */
} Tok;

static bool
ident_start(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || c >= 0x80;
}

static bool
ident_char(unsigned char c)
{
	return ident_start(c) || (c >= '0' && c <= '9') || c == '$';
}

static bool
is_digit(unsigned char c)
{
	return c >= '0' && c <= '9';
}

/* Skips a quoted run starting at s[i] == q; backslash escapes when bs. */
static size_t
skip_quoted(const char *s, size_t n, size_t i, char q, bool bs)
{
	for (i++; i < n; i++)
	{
		if (bs && s[i] == '\\' && i + 1 < n)
			i++;
		else if (s[i] == q)
		{
			if (i + 1 < n && s[i + 1] == q)
				i++;
			else
				return i + 1;
		}
	}
	return n;					/* unterminated: to the end */
}

/* The token at s[i] (i < n). */
static Tok
next_token(const char *s, size_t n, size_t i)
{
	Tok			t = {TOK_OTHER, i, i + 1, 0, 0};
	unsigned char c = (unsigned char) s[i];

	if (c == '-' && i + 1 < n && s[i + 1] == '-')
	{
		t.kind = TOK_COMMENT;
		while (t.end < n && s[t.end] != '\n')
			t.end++;
	}
	else if (c == '/' && i + 1 < n && s[i + 1] == '*')
	{
		int			depth = 1;

		t.kind = TOK_COMMENT;
		for (t.end = i + 2; t.end < n && depth > 0; t.end++)
		{
			if (s[t.end] == '*' && t.end + 1 < n && s[t.end + 1] == '/')
				depth--, t.end++;
			else if (s[t.end] == '/' && t.end + 1 < n && s[t.end + 1] == '*')
				depth++, t.end++;
		}
	}
	else if (c == '\'')
	{
		t.kind = TOK_STRING;
		t.end = skip_quoted(s, n, i, '\'', false);
	}
	else if (c == '"')
	{
		t.kind = TOK_QIDENT;
		t.end = skip_quoted(s, n, i, '"', false);
	}
	else if (c == '$' && i + 1 < n && is_digit((unsigned char) s[i + 1]))
	{
		t.kind = TOK_PARAM;
		while (t.end < n && is_digit((unsigned char) s[t.end]))
			t.end++;
	}
	else if (c == '$')
	{
		/* $$ or $tag$: a dollar-quoted string, else a lone '$' */
		size_t		j = i + 1;

		if (j < n && ident_start((unsigned char) s[j]))
			while (j < n && ident_char((unsigned char) s[j]) && s[j] != '$')
				j++;
		if (j < n && s[j] == '$')
		{
			size_t		taglen = j + 1 - i;

			t.kind = TOK_DOLLAR;
			t.body = j + 1;
			t.body_end = t.end = n;		/* unterminated: to the end */
			for (size_t k = t.body; k + taglen <= n; k++)
				if (s[k] == '$' && memcmp(s + k, s + i, taglen) == 0)
				{
					t.body_end = k;
					t.end = k + taglen;
					break;
				}
		}
	}
	else if (is_digit(c) || (c == '.' && i + 1 < n && is_digit((unsigned char) s[i + 1])))
	{
		t.kind = TOK_NUMBER;
		/* loosely: digits, letters (0x, 1e5), '_' and '.'; '+'/'-' after e */
		while (t.end < n)
		{
			unsigned char d = (unsigned char) s[t.end];

			bool		part = is_digit(d) || d == '.' || d == '_' ||
				(d < 0x80 && ident_start(d));
			bool		exponent_sign = (d == '+' || d == '-') &&
				(s[t.end - 1] == 'e' || s[t.end - 1] == 'E');

			if (!part && !exponent_sign)
				break;
			t.end++;
		}
	}
	else if (ident_start(c))
	{
		t.kind = TOK_IDENT;
		while (t.end < n && ident_char((unsigned char) s[t.end]))
			t.end++;
		/* a one-letter prefix glued to a quote: E'...', B'', X'', N'' */
		if (t.end - i == 1 && t.end < n && s[t.end] == '\'' &&
			strchr("eEbBxXnN", c) != NULL)
		{
			t.kind = TOK_STRING;
			t.end = skip_quoted(s, n, t.end, '\'', c == 'e' || c == 'E');
		}
		/* U&'...' and U&"..." */
		else if (t.end - i == 1 && (c == 'u' || c == 'U') && t.end + 1 < n &&
				 s[t.end] == '&' && (s[t.end + 1] == '\'' || s[t.end + 1] == '"'))
		{
			t.kind = s[t.end + 1] == '\'' ? TOK_STRING : TOK_QIDENT;
			t.end = skip_quoted(s, n, t.end + 1, s[t.end + 1], false);
		}
	}
	return t;
}

/* Case-insensitive: does the identifier s[0..len) equal word / start with it? */
static bool
ident_is(const char *s, size_t len, const char *word, bool prefix)
{
	size_t		wl = strlen(word);

	if (prefix ? len < wl : len != wl)
		return false;
	for (size_t k = 0; k < wl; k++)
	{
		char		c = s[k];

		if (c >= 'A' && c <= 'Z')
			c = (char) (c - 'A' + 'a');
		if (c != word[k])
			return false;
	}
	return true;
}

/* Statements that carry values into tables or through prepared plans. */
static const char *const carrying_words[] = {
	"insert", "update", "merge", "copy", "execute", NULL
};

static bool
mentions(const char *s, size_t n, int depth)
{
	for (size_t i = 0; i < n;)
	{
		Tok			t = next_token(s, n, i);

		if (t.kind == TOK_IDENT)
		{
			const char *w = s + t.start;
			size_t		len = t.end - t.start;

			if (ident_is(w, len, "vault_", true))
				return true;
			for (int k = 0; carrying_words[k]; k++)
				if (ident_is(w, len, carrying_words[k], false))
					return true;
		}
		else if ((t.kind == TOK_QIDENT && t.end - t.start > 7 &&
				  strncmp(s + t.start + 1, "vault_", 6) == 0) ||
		/* function bodies and DO blocks: look inside, a few levels deep */
				 (t.kind == TOK_DOLLAR && depth < 4 &&
				  mentions(s + t.body, t.body_end - t.body, depth + 1)))
			return true;
		i = t.end;
	}
	return false;
}

bool
vc_redact_needed(const char *text)
{
	return text != NULL && mentions(text, strlen(text), 0);
}

/*
 * Appends src[0..len) at out+pos when out is not NULL; returns the new
 * position either way, so that one pass measures and a second writes.
 */
static size_t
put(char *out, size_t pos, const char *src, size_t len)
{
	if (out)
		memcpy(out + pos, src, len);
	return pos + len;
}

/* vc_redact_sql of text[0..n) at out+pos (out NULL measures) */
static size_t
redact_span(const char *text, size_t n, char *out, size_t pos)
{
	for (size_t i = 0; i < n;)
	{
		Tok			t = next_token(text, n, i);

		if (t.kind == TOK_STRING || t.kind == TOK_DOLLAR)
			pos = put(out, pos, VC_REDACTED_STRING, sizeof(VC_REDACTED_STRING) - 1);
		else if (t.kind == TOK_NUMBER)
			pos = put(out, pos, VC_REDACTED, sizeof(VC_REDACTED) - 1);
		else
			pos = put(out, pos, text + t.start, t.end - t.start);
		i = t.end;
	}
	return pos;
}

size_t
vc_redact_context(const char *text, char *out)
{
	size_t		n = strlen(text),
				pos = 0;

	for (size_t i = 0; i < n;)
	{
		size_t		eol = i,
					open = 0,
					sep = 0;
		bool		has_open = false,
					has_sep = false,
					has_quote = false;

		while (eol < n && text[eol] != '\n')
		{
			if (text[eol] == '"' && !has_open)
				open = eol, has_open = true;
			if (!has_sep && eol + 3 <= n && memcmp(text + eol, ": \"", 3) == 0)
				sep = eol + 2, has_sep = true;
			if (text[eol] == '\'')
				has_quote = true;
			eol++;
		}
		if (has_open && eol - 1 > open && text[eol - 1] == '"')
		{
			/*
			 * Ends in a quoted part.  'COPY t, line 3: "a,b"' quotes a row
			 * (its data goes); 'SQL statement "INSERT ..."' quotes a
			 * statement (its literals go).  PostgreSQL does not escape the
			 * quotes inside, so the part runs from the first quote to the
			 * last.
			 */
			size_t		from = has_sep ? sep : open;

			pos = put(out, pos, text + i, from + 1 - i);
			if (has_sep)
				pos = put(out, pos, VC_REDACTED, sizeof(VC_REDACTED) - 1);
			else
				pos = redact_span(text + from + 1, eol - 1 - (from + 1), out, pos);
			pos = put(out, pos, "\"", 1);
		}
		else if (has_quote)		/* 'portal with parameters: $1 = '...'' */
			pos = redact_span(text + i, eol - i, out, pos);
		else
			pos = put(out, pos, text + i, eol - i);
		if (eol < n)
			pos = put(out, pos, "\n", 1);
		i = eol + 1;
	}
	if (out)
		out[pos] = '\0';
	return pos;
}

size_t
vc_redact_sql(const char *text, size_t from, char *out)
{
	size_t		n = strlen(text),
				pos;

	if (from > n)
		from = n;
	pos = put(out, 0, text, from);
	pos = redact_span(text + from, n - from, out, pos);
	if (out)
		out[pos] = '\0';
	return pos;
}

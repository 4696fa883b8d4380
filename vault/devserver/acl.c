/*
 * acl.c
 *    ACL policies of the development Vault server: the policy store behind
 *    sys/policies/acl, a parser for Vault's policy language (HCL 1 and its
 *    JSON form), and the capability check the HTTP core runs before every
 *    engine call.
 *
 *    Parsing follows Vault's vault/policy.go: the same accepted keys, the
 *    same legacy "policy" values, the same error texts ("failed to parse
 *    policy: ...").  Matching follows vault/acl.go: an exact rule wins;
 *    otherwise only the single highest-priority glob or segment-wildcard
 *    pattern applies, its capabilities unioned over every policy of the
 *    token that contains the same pattern, and a deny on that pattern leaves
 *    no capability at all.
 *
 *    Rules are compiled when a policy is stored, so a request costs a
 *    binary search over the exact rules, a scan of the prefix rules (longest
 *    first) and a walk over the few segment-wildcard rules of each policy of
 *    the token, with no allocation.
 */
#include "devserver.h"

#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* ---- compiled rules ---- */

typedef enum rule_kind
{
	RULE_EXACT,					/* no wildcard */
	RULE_PREFIX,				/* trailing '*' only */
	RULE_SEGMENT				/* '+' segments, maybe a trailing '*' */
} rule_kind;

struct acl_rule
{
	rule_kind	kind;
	/*
	 * The pattern as Vault keys it: the path for exact rules, the path
	 * without its '*' for prefix rules, the whole pattern (with any '*') for
	 * segment rules.
	 */
	char	   *key;
	size_t		keylen;
	unsigned	caps;			/* CAP_DENY alone when denied */
	/* index one past the last rule of the same kind in the policy's array */
	int			kind_end;
	/* priority, as acl.go's wcPathDescr */
	size_t		first_wc;		/* offset of the first '+' or of the '*' */
	bool		is_prefix;		/* ends in '*' */
	int			wildcards;		/* number of "+" segments */
	size_t		wc_len;			/* key length without the trailing '*' */
	/* segment rules: segments of key[0..wc_len) split at '/' */
	int			nsegs;
	size_t	   *seg_off;
	size_t	   *seg_len;
};

/* ---- small allocation helpers ---- */

static void *
xmalloc(size_t n)
{
	void	   *p = malloc(n ? n : 1);

	if (p == NULL)
	{
		fprintf(stderr, "vault-dev: out of memory\n");
		abort();
	}
	return p;
}

static void *
xrealloc(void *old, size_t n)
{
	void	   *p = realloc(old, n ? n : 1);

	if (p == NULL)
	{
		fprintf(stderr, "vault-dev: out of memory\n");
		abort();
	}
	return p;
}

static char *
xstrndup(const char *s, size_t n)
{
	char	   *p = xmalloc(n + 1);

	memcpy(p, s, n);
	p[n] = '\0';
	return p;
}

/* A growable byte buffer. */
typedef struct sbuf
{
	char	   *d;
	size_t		n;
	size_t		cap;
} sbuf;

static void
sbuf_put(sbuf *b, const char *s, size_t n)
{
	if (b->n + n + 1 > b->cap)
	{
		b->cap = (b->n + n + 1) * 2;
		b->d = xrealloc(b->d, b->cap);
	}
	memcpy(b->d + b->n, s, n);
	b->n += n;
	b->d[b->n] = '\0';
}

static void
sbuf_putc(sbuf *b, char c)
{
	sbuf_put(b, &c, 1);
}

static void
sbuf_printf(sbuf *b, const char *fmt,...)
	__attribute__((format(printf, 2, 3)));

static void
sbuf_printf(sbuf *b, const char *fmt,...)
{
	va_list		ap;
	int			n;
	char		small[256];

	va_start(ap, fmt);
	n = vsnprintf(small, sizeof(small), fmt, ap);
	va_end(ap);
	if (n < 0)
		return;
	if ((size_t) n < sizeof(small))
	{
		sbuf_put(b, small, (size_t) n);
		return;
	}
	{
		char	   *big = xmalloc((size_t) n + 1);

		va_start(ap, fmt);
		vsnprintf(big, (size_t) n + 1, fmt, ap);
		va_end(ap);
		sbuf_put(b, big, (size_t) n);
		free(big);
	}
}

/*
 * The syntax tree lives in an arena freed in one go once the policy is
 * compiled: parse errors can then leave from anywhere without cleanup.
 */
typedef struct arena_chunk
{
	struct arena_chunk *next;
	char	   *data;
	size_t		used;
	size_t		size;
} arena_chunk;

typedef struct arena
{
	arena_chunk *head;
} arena;

static void *
arena_alloc(arena *a, size_t n)
{
	void	   *p;

	n = (n + 15) & ~(size_t) 15;
	if (a->head == NULL || a->head->size - a->head->used < n)
	{
		arena_chunk *c = xmalloc(sizeof(arena_chunk));

		c->size = n > 16384 ? n : 16384;
		c->data = xmalloc(c->size);
		c->used = 0;
		c->next = a->head;
		a->head = c;
	}
	p = a->head->data + a->head->used;
	a->head->used += n;
	memset(p, 0, n);
	return p;
}

static char *
arena_strndup(arena *a, const char *s, size_t n)
{
	char	   *p = arena_alloc(a, n + 1);

	memcpy(p, s, n);
	p[n] = '\0';
	return p;
}

static void
arena_free(arena *a)
{
	while (a->head)
	{
		arena_chunk *c = a->head;

		a->head = c->next;
		free(c->data);
		free(c);
	}
}

/* ---- syntax tree (HCL 1's ast, reduced to what policies need) ---- */

typedef enum hnode_type
{
	HN_STRING,
	HN_NUMBER,
	HN_BOOL,
	HN_LIST,
	HN_OBJECT
} hnode_type;

typedef struct hkey
{
	const char *s;
	struct hkey *next;
} hkey;

typedef struct hitem hitem;

typedef struct hnode
{
	hnode_type	type;
	int			line;
	const char *text;			/* STRING (decoded), NUMBER, BOOL */
	struct hnode *elems;		/* LIST */
	struct hnode *next;			/* next element of a LIST */
	hitem	   *items;			/* OBJECT */
} hnode;

struct hitem
{
	hkey	   *keys;
	int			nkeys;
	int			line;
	hnode	   *val;
	hitem	   *next;
};

/* ---- scanner ---- */

typedef enum tok_type
{
	T_EOF,
	T_IDENT,
	T_NUMBER,
	T_FLOAT,
	T_BOOL,
	T_STRING,
	T_HEREDOC,
	T_NULL,
	T_LBRACE,
	T_RBRACE,
	T_LBRACK,
	T_RBRACK,
	T_ASSIGN,
	T_COLON,
	T_COMMA,
	T_ILLEGAL
} tok_type;

static const char *const tok_names[] = {
	"EOF", "IDENT", "NUMBER", "FLOAT", "BOOL", "STRING", "HEREDOC", "NULL",
	"LBRACE", "RBRACE", "LBRACK", "RBRACK", "ASSIGN", "COLON", "COMMA",
	"ILLEGAL"
};

typedef struct token
{
	tok_type	type;
	int			line;
	int			col;
	const char *text;			/* decoded for strings, raw otherwise */
} token;

typedef struct parser
{
	const char *src;
	size_t		len;
	size_t		pos;
	int			line;
	int			col;
	bool		json;
	token		tok;
	arena	   *ar;
	bool		failed;
	char		err[300];
} parser;

static void
perr(parser *p, int line, int col, const char *fmt,...)
	__attribute__((format(printf, 4, 5)));

/* Record the first error only, as "At line:col: message" like HCL's PosError. */
static void
perr(parser *p, int line, int col, const char *fmt,...)
{
	va_list		ap;
	int			n;

	if (p->failed)
		return;
	p->failed = true;
	n = snprintf(p->err, sizeof(p->err), "At %d:%d: ", line, col);
	if (n < 0 || (size_t) n >= sizeof(p->err))
		return;
	va_start(ap, fmt);
	vsnprintf(p->err + n, sizeof(p->err) - n, fmt, ap);
	va_end(ap);
}

static int
peekc(const parser *p, size_t off)
{
	return p->pos + off < p->len ? (unsigned char) p->src[p->pos + off] : -1;
}

static int
nextc(parser *p)
{
	int			c;

	if (p->pos >= p->len)
		return -1;
	c = (unsigned char) p->src[p->pos++];
	if (c == '\n')
	{
		p->line++;
		p->col = 1;
	}
	else
		p->col++;
	return c;
}

static bool
is_ident_start(int c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || c >= 0x80;
}

static bool
is_ident_char(int c)
{
	return is_ident_start(c) || (c >= '0' && c <= '9') || c == '-' || c == '.';
}

static int
hexval(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

static void
put_utf8(sbuf *b, unsigned long cp)
{
	char		u[4];

	if (cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
		cp = 0xFFFD;
	if (cp < 0x80)
		sbuf_putc(b, (char) cp);
	else if (cp < 0x800)
	{
		u[0] = (char) (0xC0 | (cp >> 6));
		u[1] = (char) (0x80 | (cp & 0x3F));
		sbuf_put(b, u, 2);
	}
	else if (cp < 0x10000)
	{
		u[0] = (char) (0xE0 | (cp >> 12));
		u[1] = (char) (0x80 | ((cp >> 6) & 0x3F));
		u[2] = (char) (0x80 | (cp & 0x3F));
		sbuf_put(b, u, 3);
	}
	else
	{
		u[0] = (char) (0xF0 | (cp >> 18));
		u[1] = (char) (0x80 | ((cp >> 12) & 0x3F));
		u[2] = (char) (0x80 | ((cp >> 6) & 0x3F));
		u[3] = (char) (0x80 | (cp & 0x3F));
		sbuf_put(b, u, 4);
	}
}

/* Read n hex digits; -1 when one is missing. */
static long
scan_hex(parser *p, int n)
{
	long		v = 0;

	while (n-- > 0)
	{
		int			d = hexval(peekc(p, 0));

		if (d < 0)
			return -1;
		nextc(p);
		v = v * 16 + d;
	}
	return v;
}

/* One escape sequence after the backslash; false on an invalid one. */
static bool
scan_escape(parser *p, sbuf *b)
{
	int			line = p->line,
				col = p->col;
	int			c = nextc(p);
	long		v;

	switch (c)
	{
		case 'a':
			sbuf_putc(b, '\a');
			return true;
		case 'b':
			sbuf_putc(b, '\b');
			return true;
		case 'f':
			sbuf_putc(b, '\f');
			return true;
		case 'n':
			sbuf_putc(b, '\n');
			return true;
		case 'r':
			sbuf_putc(b, '\r');
			return true;
		case 't':
			sbuf_putc(b, '\t');
			return true;
		case 'v':
			sbuf_putc(b, '\v');
			return true;
		case '\\':
		case '"':
			sbuf_putc(b, (char) c);
			return true;
		case '/':
			if (!p->json)
				break;
			sbuf_putc(b, '/');
			return true;
		case 'x':
			if (p->json || (v = scan_hex(p, 2)) < 0)
				break;
			sbuf_putc(b, (char) v);
			return true;
		case 'u':
		case 'U':
			if (c == 'U' && p->json)
				break;
			v = scan_hex(p, c == 'u' ? 4 : 8);
			if (v < 0)
				break;
			/* a UTF-16 surrogate pair written as two \u escapes */
			if (v >= 0xD800 && v <= 0xDBFF && peekc(p, 0) == '\\' && peekc(p, 1) == 'u')
			{
				size_t		save_pos = p->pos;
				int			save_col = p->col;
				long		lo;

				nextc(p);
				nextc(p);
				lo = scan_hex(p, 4);
				if (lo >= 0xDC00 && lo <= 0xDFFF)
					v = 0x10000 + ((v - 0xD800) << 10) + (lo - 0xDC00);
				else
				{
					p->pos = save_pos;
					p->col = save_col;
				}
			}
			put_utf8(b, (unsigned long) v);
			return true;
		default:
			if (!p->json && c >= '0' && c <= '7')
			{
				int			d2 = peekc(p, 0),
							d3 = peekc(p, 1);

				if (d2 >= '0' && d2 <= '7' && d3 >= '0' && d3 <= '7')
				{
					nextc(p);
					nextc(p);
					sbuf_putc(b, (char) (((c - '0') << 6) | ((d2 - '0') << 3) | (d3 - '0')));
					return true;
				}
			}
			break;
	}
	perr(p, line, col, "illegal char escape");
	return false;
}

/*
 * A double-quoted string.  HCL keeps "${...}" interpolations verbatim (they
 * may contain quotes and newlines); a raw newline elsewhere ends nothing and
 * is an error, as in HCL's scanner.
 */
static void
scan_string(parser *p, token *t)
{
	sbuf		b = {0};
	int			braces = 0;

	nextc(p);					/* the opening quote */
	for (;;)
	{
		int			c = peekc(p, 0);

		if (c < 0 || (c == '\n' && braces == 0) || (p->json && c < 0x20))
		{
			perr(p, t->line, t->col, "literal not terminated");
			t->type = T_ILLEGAL;
			free(b.d);
			return;
		}
		nextc(p);
		if (c == '"' && braces == 0)
			break;
		if (c == '\\' && braces == 0)
		{
			if (!scan_escape(p, &b))
			{
				t->type = T_ILLEGAL;
				free(b.d);
				return;
			}
			continue;
		}
		if (!p->json)
		{
			if (braces == 0 && c == '$' && peekc(p, 0) == '{')
			{
				braces++;
				sbuf_putc(&b, '$');
				nextc(p);
				c = '{';
			}
			else if (braces > 0 && c == '{')
				braces++;
			else if (braces > 0 && c == '}')
				braces--;
		}
		sbuf_putc(&b, (char) c);
	}
	t->type = T_STRING;
	t->text = arena_strndup(p->ar, b.d ? b.d : "", b.n);
	free(b.d);
}

/*
 * "<<EOF" ... "EOF" and the indented form "<<-EOF", whose end marker may be
 * indented and whose lines lose their common leading whitespace.
 */
static void
scan_heredoc(parser *p, token *t)
{
	bool		indented = false;
	size_t		id_start,
				id_len;
	sbuf		body = {0};
	size_t		min_indent = (size_t) -1;

	nextc(p);
	nextc(p);
	if (peekc(p, 0) == '-')
	{
		indented = true;
		nextc(p);
	}
	id_start = p->pos;
	while (is_ident_char(peekc(p, 0)))
		nextc(p);
	id_len = p->pos - id_start;
	if (peekc(p, 0) == '\r')
		nextc(p);
	if (id_len == 0 || peekc(p, 0) != '\n')
	{
		perr(p, t->line, t->col, "heredoc expected newline");
		t->type = T_ILLEGAL;
		return;
	}
	nextc(p);
	for (;;)
	{
		size_t		ls = p->pos,
					le,
					ws = 0,
					content_end;

		if (ls >= p->len)
		{
			perr(p, t->line, t->col, "heredoc not terminated");
			t->type = T_ILLEGAL;
			free(body.d);
			return;
		}
		while (p->pos < p->len && p->src[p->pos] != '\n')
			nextc(p);
		le = p->pos;
		content_end = (le > ls && p->src[le - 1] == '\r') ? le - 1 : le;
		if (indented)
			while (ls + ws < content_end && (p->src[ls + ws] == ' ' || p->src[ls + ws] == '\t'))
				ws++;
		if (content_end - ls - ws == id_len &&
			memcmp(p->src + ls + ws, p->src + id_start, id_len) == 0)
			break;
		if (indented && ls + ws < content_end && ws < min_indent)
			min_indent = ws;
		sbuf_put(&body, p->src + ls, le - ls);
		sbuf_putc(&body, '\n');
		if (p->pos < p->len)
			nextc(p);
	}
	if (indented && min_indent != (size_t) -1 && min_indent > 0 && body.n > 0)
	{
		sbuf		out = {0};
		size_t		i = 0;

		while (i < body.n)
		{
			char	   *nl = memchr(body.d + i, '\n', body.n - i);
			size_t		ll = (size_t) (nl - (body.d + i)) + 1;
			size_t		skip = 0;

			while (skip < min_indent && skip < ll - 1 &&
				   (body.d[i + skip] == ' ' || body.d[i + skip] == '\t'))
				skip++;
			sbuf_put(&out, body.d + i + skip, ll - skip);
			i += ll;
		}
		free(body.d);
		body = out;
	}
	t->type = T_HEREDOC;
	t->text = arena_strndup(p->ar, body.d ? body.d : "", body.n);
	free(body.d);
}

static void
scan_number(parser *p, token *t)
{
	size_t		start = p->pos;
	bool		is_float = false;

	if (peekc(p, 0) == '-')
		nextc(p);
	if (!p->json && peekc(p, 0) == '0' && (peekc(p, 1) == 'x' || peekc(p, 1) == 'X'))
	{
		nextc(p);
		nextc(p);
		while (hexval(peekc(p, 0)) >= 0)
			nextc(p);
	}
	else
	{
		while (isdigit(peekc(p, 0)))
			nextc(p);
		if (peekc(p, 0) == '.' && isdigit(peekc(p, 1)))
		{
			is_float = true;
			nextc(p);
			while (isdigit(peekc(p, 0)))
				nextc(p);
		}
		if ((peekc(p, 0) == 'e' || peekc(p, 0) == 'E') &&
			(isdigit(peekc(p, 1)) ||
			 ((peekc(p, 1) == '+' || peekc(p, 1) == '-') && isdigit(peekc(p, 2)))))
		{
			is_float = true;
			nextc(p);
			nextc(p);
			while (isdigit(peekc(p, 0)))
				nextc(p);
		}
	}
	t->type = is_float ? T_FLOAT : T_NUMBER;
	t->text = arena_strndup(p->ar, p->src + start, p->pos - start);
}

/* Skip blanks and comments; false after an unterminated comment. */
static bool
skip_space(parser *p)
{
	for (;;)
	{
		int			c = peekc(p, 0);

		if (c == ' ' || c == '\t' || c == '\n' || c == '\r')
			nextc(p);
		else if (!p->json && (c == '#' || (c == '/' && peekc(p, 1) == '/')))
		{
			while (peekc(p, 0) >= 0 && peekc(p, 0) != '\n')
				nextc(p);
		}
		else if (!p->json && c == '/' && peekc(p, 1) == '*')
		{
			int			line = p->line,
						col = p->col;

			nextc(p);
			nextc(p);
			while (!(peekc(p, 0) == '*' && peekc(p, 1) == '/'))
			{
				if (nextc(p) < 0)
				{
					perr(p, line, col, "comment not terminated");
					return false;
				}
			}
			nextc(p);
			nextc(p);
		}
		else
			return true;
	}
}

/* Scan the next token into p->tok. */
static void
scan(parser *p)
{
	token	   *t = &p->tok;
	int			c;

	t->text = NULL;
	if (p->failed || !skip_space(p))
	{
		t->type = T_ILLEGAL;
		return;
	}
	t->line = p->line;
	t->col = p->col;
	c = peekc(p, 0);
	if (c < 0)
	{
		t->type = T_EOF;
		return;
	}
	switch (c)
	{
		case '{':
			t->type = T_LBRACE;
			nextc(p);
			return;
		case '}':
			t->type = T_RBRACE;
			nextc(p);
			return;
		case '[':
			t->type = T_LBRACK;
			nextc(p);
			return;
		case ']':
			t->type = T_RBRACK;
			nextc(p);
			return;
		case ',':
			t->type = T_COMMA;
			nextc(p);
			return;
		case '=':
			if (p->json)
				break;
			t->type = T_ASSIGN;
			nextc(p);
			return;
		case ':':
			if (!p->json)
				break;
			t->type = T_COLON;
			nextc(p);
			return;
		case '"':
			scan_string(p, t);
			return;
		case '<':
			if (p->json || peekc(p, 1) != '<')
				break;
			scan_heredoc(p, t);
			return;
		default:
			break;
	}
	if (isdigit(c) || (c == '-' && isdigit(peekc(p, 1))))
	{
		scan_number(p, t);
		return;
	}
	if (is_ident_start(c))
	{
		size_t		start = p->pos;

		while (is_ident_char(peekc(p, 0)))
			nextc(p);
		t->text = arena_strndup(p->ar, p->src + start, p->pos - start);
		if (!strcmp(t->text, "true") || !strcmp(t->text, "false"))
			t->type = T_BOOL;
		else if (p->json && !strcmp(t->text, "null"))
			t->type = T_NULL;
		else if (p->json)
		{
			perr(p, t->line, t->col, "invalid token: %s", t->text);
			t->type = T_ILLEGAL;
		}
		else
			t->type = T_IDENT;
		return;
	}
	perr(p, t->line, t->col, "illegal char");
	t->type = T_ILLEGAL;
}

/* ---- HCL parser (hcl/parser/parser.go's grammar) ---- */

static hnode *parse_value(parser *p);
static hitem *parse_object_list(parser *p, bool in_object);

static hnode *
new_node(parser *p, hnode_type type, int line)
{
	hnode	   *n = arena_alloc(p->ar, sizeof(hnode));

	n->type = type;
	n->line = line;
	return n;
}

/* '{' already current: the object body up to and including '}'. */
static hnode *
parse_object(parser *p)
{
	hnode	   *n = new_node(p, HN_OBJECT, p->tok.line);

	scan(p);
	n->items = parse_object_list(p, true);
	if (p->failed)
		return NULL;
	if (p->tok.type != T_RBRACE)
	{
		perr(p, p->tok.line, p->tok.col, "object expected closing RBRACE got: %s",
			 tok_names[p->tok.type]);
		return NULL;
	}
	scan(p);
	return n;
}

/* '[' already current: elements up to and including ']'. */
static hnode *
parse_list(parser *p)
{
	hnode	   *n = new_node(p, HN_LIST, p->tok.line);
	hnode	  **tail = &n->elems;
	bool		need_comma = false;
	bool		after_comma = false;

	scan(p);
	for (;;)
	{
		hnode	   *e;

		if (p->failed)
			return NULL;
		if (need_comma && p->tok.type != T_COMMA && p->tok.type != T_RBRACK)
		{
			perr(p, p->tok.line, p->tok.col,
				 "error parsing list, expected comma or list end, got: %s",
				 tok_names[p->tok.type]);
			return NULL;
		}
		switch (p->tok.type)
		{
			case T_RBRACK:
				/* JSON has no trailing comma */
				if (p->json && after_comma)
				{
					perr(p, p->tok.line, p->tok.col,
						 "unexpected token while parsing list: RBRACK");
					return NULL;
				}
				scan(p);
				return n;
			case T_COMMA:
				if (!need_comma)
				{
					perr(p, p->tok.line, p->tok.col,
						 "unexpected token while parsing list: COMMA");
					return NULL;
				}
				need_comma = false;
				after_comma = true;
				scan(p);
				continue;
			case T_STRING:
			case T_HEREDOC:
			case T_NUMBER:
			case T_FLOAT:
			case T_BOOL:
			case T_NULL:
			case T_LBRACE:
			case T_LBRACK:
				e = parse_value(p);
				if (e == NULL)
					return NULL;
				*tail = e;
				tail = &e->next;
				need_comma = true;
				after_comma = false;
				continue;
			default:
				perr(p, p->tok.line, p->tok.col,
					 "unexpected token while parsing list: %s", tok_names[p->tok.type]);
				return NULL;
		}
	}
}

static hnode *parse_json_object(parser *p);

/* A value at the current token; the token after it becomes current. */
static hnode *
parse_value(parser *p)
{
	hnode	   *n;

	switch (p->tok.type)
	{
		case T_STRING:
		case T_HEREDOC:
		case T_NULL:
			n = new_node(p, HN_STRING, p->tok.line);
			n->text = p->tok.text ? p->tok.text : "";
			scan(p);
			return n;
		case T_NUMBER:
		case T_FLOAT:
			n = new_node(p, HN_NUMBER, p->tok.line);
			n->text = p->tok.text;
			scan(p);
			return n;
		case T_BOOL:
			n = new_node(p, HN_BOOL, p->tok.line);
			n->text = p->tok.text;
			scan(p);
			return n;
		case T_LBRACE:
			return p->json ? parse_json_object(p) : parse_object(p);
		case T_LBRACK:
			return parse_list(p);
		case T_ILLEGAL:
			return NULL;
		default:
			perr(p, p->tok.line, p->tok.col, "Unknown token: %s", tok_names[p->tok.type]);
			return NULL;
	}
}

/* key key ... ( '=' value | '{' ... '}' ) */
static hitem *
parse_item(parser *p)
{
	hitem	   *it = arena_alloc(p->ar, sizeof(hitem));
	hkey	  **ktail = &it->keys;

	it->line = p->tok.line;
	while (p->tok.type == T_IDENT || p->tok.type == T_STRING)
	{
		hkey	   *k = arena_alloc(p->ar, sizeof(hkey));

		k->s = p->tok.text;
		*ktail = k;
		ktail = &k->next;
		it->nkeys++;
		scan(p);
	}
	if (p->failed)
		return NULL;
	switch (p->tok.type)
	{
		case T_ASSIGN:
			if (it->nkeys == 0)
			{
				perr(p, p->tok.line, p->tok.col, "no object keys found!");
				return NULL;
			}
			if (it->nkeys > 1)
			{
				perr(p, p->tok.line, p->tok.col, "nested object expected: LBRACE got: ASSIGN");
				return NULL;
			}
			it->line = p->tok.line;
			scan(p);
			if (p->tok.type == T_EOF)
			{
				perr(p, p->tok.line, p->tok.col, "Unknown token: EOF");
				return NULL;
			}
			it->val = parse_value(p);
			break;
		case T_LBRACE:
			if (it->nkeys == 0)
			{
				perr(p, p->tok.line, p->tok.col, "expected: IDENT | STRING got: LBRACE");
				return NULL;
			}
			it->val = parse_object(p);
			break;
		case T_EOF:
			if (it->nkeys > 0)
			{
				perr(p, p->tok.line, p->tok.col,
					 "key '%s' expected start of object ('{') or assignment ('=')",
					 it->keys->s);
				return NULL;
			}
			/* FALLTHROUGH */
		default:
			perr(p, p->tok.line, p->tok.col,
				 "expected: IDENT | STRING | ASSIGN | LBRACE got: %s", tok_names[p->tok.type]);
			return NULL;
	}
	return it->val ? it : NULL;
}

/* Items up to EOF (top level) or up to the '}' of the enclosing object. */
static hitem *
parse_object_list(parser *p, bool in_object)
{
	hitem	   *head = NULL,
			  **tail = &head;
	bool		after_item = false;

	for (;;)
	{
		hitem	   *it;

		if (p->failed)
			return NULL;
		if (p->tok.type == T_EOF && !in_object)
			return head;
		if (p->tok.type == T_RBRACE && in_object)
			return head;
		if (p->tok.type == T_EOF)
		{
			perr(p, p->tok.line, p->tok.col, "object expected closing RBRACE got: EOF");
			return NULL;
		}
		/* HCL allows commas between the items of an object */
		if (p->tok.type == T_COMMA && in_object && after_item)
		{
			after_item = false;
			scan(p);
			continue;
		}
		it = parse_item(p);
		if (it == NULL)
			return NULL;
		*tail = it;
		tail = &it->next;
		after_item = true;
	}
}

/* ---- JSON parser: the same tree, with line numbers kept ---- */

static hnode *
parse_json_object(parser *p)
{
	hnode	   *n = new_node(p, HN_OBJECT, p->tok.line);
	hitem	  **tail = &n->items;

	scan(p);
	if (p->tok.type == T_RBRACE)
	{
		scan(p);
		return n;
	}
	for (;;)
	{
		hitem	   *it;

		if (p->failed)
			return NULL;
		if (p->tok.type != T_STRING)
		{
			perr(p, p->tok.line, p->tok.col, "expected: STRING got: %s", tok_names[p->tok.type]);
			return NULL;
		}
		it = arena_alloc(p->ar, sizeof(hitem));
		it->keys = arena_alloc(p->ar, sizeof(hkey));
		it->keys->s = p->tok.text;
		it->nkeys = 1;
		it->line = p->tok.line;
		scan(p);
		if (p->tok.type != T_COLON)
		{
			if (!p->failed)
				perr(p, p->tok.line, p->tok.col, "expected: COLON got: %s", tok_names[p->tok.type]);
			return NULL;
		}
		scan(p);
		it->val = parse_value(p);
		if (it->val == NULL)
			return NULL;
		*tail = it;
		tail = &it->next;
		if (p->tok.type == T_COMMA)
		{
			scan(p);
			continue;
		}
		if (p->tok.type == T_RBRACE)
		{
			scan(p);
			return n;
		}
		if (!p->failed)
			perr(p, p->tok.line, p->tok.col, "expected: COMMA | RBRACE got: %s",
				 tok_names[p->tok.type]);
		return NULL;
	}
}

/* Parse HCL or, when the text starts with '{', JSON; NULL on error. */
static hitem *
parse_text(parser *p, const char *text)
{
	size_t		i = 0;
	hitem	   *items;

	p->src = text;
	p->len = strlen(text);
	p->pos = 0;
	p->line = 1;
	p->col = 1;
	while (i < p->len && isspace((unsigned char) text[i]))
		i++;
	p->json = (i < p->len && text[i] == '{');
	scan(p);
	if (p->failed)
		return NULL;
	if (!p->json)
		return parse_object_list(p, false);

	{
		hnode	   *root = parse_json_object(p);

		if (root == NULL)
			return NULL;
		if (p->tok.type != T_EOF)
		{
			perr(p, p->tok.line, p->tok.col, "expected: EOF got: %s", tok_names[p->tok.type]);
			return NULL;
		}
		items = root->items;
	}
	return items;
}

/* ---- from the tree to rules (vault/policy.go parsePaths) ---- */

/* Go's multierror format: "1 error occurred:\n\t* msg\n\n". */
typedef struct errlist
{
	sbuf		lines;
	int			n;
} errlist;

static void
errlist_add(errlist *e, const char *fmt,...)
	__attribute__((format(printf, 2, 3)));

static void
errlist_add(errlist *e, const char *fmt,...)
{
	va_list		ap;
	char		msg[512];

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (e->n > 0)
		sbuf_putc(&e->lines, '\n');
	sbuf_printf(&e->lines, "\t* %s", msg);
	e->n++;
}

typedef struct rule_vec
{
	struct acl_rule *v;
	int			n;
	int			cap;
} rule_vec;

typedef struct compile_ctx
{
	rule_vec	rules;
	char	   *err;
	size_t		errlen;
	bool		failed;
} compile_ctx;

static void
cfail(compile_ctx *c, const char *fmt,...)
	__attribute__((format(printf, 2, 3)));

/* Fail with "failed to parse policy: <message>" (first failure only). */
static void
cfail(compile_ctx *c, const char *fmt,...)
{
	va_list		ap;
	int			n;

	if (c->failed)
		return;
	c->failed = true;
	if (c->err == NULL || c->errlen == 0)
		return;
	n = snprintf(c->err, c->errlen, "failed to parse policy: ");
	if (n < 0 || (size_t) n >= c->errlen)
		return;
	va_start(ap, fmt);
	vsnprintf(c->err + n, c->errlen - n, fmt, ap);
	va_end(ap);
}

static void
cfail_errlist(compile_ctx *c, errlist *e)
{
	if (e->n == 1)
		cfail(c, "1 error occurred:\n%s\n\n", e->lines.d);
	else
		cfail(c, "%d errors occurred:\n%s\n\n", e->n, e->lines.d);
}

static bool
key_in(const char *k, const char *const *valid)
{
	for (; *valid; valid++)
		if (!strcmp(k, *valid))
			return true;
	return false;
}

static const char *const path_keys[] = {
	"comment", "policy", "capabilities", "allowed_parameters", "denied_parameters",
	"required_parameters", "min_wrapping_ttl", "max_wrapping_ttl", "mfa_methods",
	"control_group", NULL
};

static const char *
node_type_name(const hnode *n)
{
	switch (n->type)
	{
		case HN_LIST:
			return "list";
		case HN_OBJECT:
			return "object";
		default:
			return "literal";
	}
}

/*
 * A string quoted as Go's %q does, for the messages Vault builds with it.
 * Several may be used in one message: a small ring of buffers, truncated
 * when a string is very long.
 */
static const char *
goq(const char *s)
{
	static char ring[4][320];
	static int	next;
	char	   *out = ring[next];
	size_t		n = 0,
				cap = sizeof(ring[0]) - 8;

	next = (next + 1) % 4;
	out[n++] = '"';
	for (; *s && n < cap; s++)
	{
		unsigned char c = (unsigned char) *s;

		switch (c)
		{
			case '"':
			case '\\':
				out[n++] = '\\';
				out[n++] = (char) c;
				break;
			case '\n':
				out[n++] = '\\';
				out[n++] = 'n';
				break;
			case '\t':
				out[n++] = '\\';
				out[n++] = 't';
				break;
			case '\r':
				out[n++] = '\\';
				out[n++] = 'r';
				break;
			default:
				if (c < 0x20 || c == 0x7f)
					n += (size_t) snprintf(out + n, 5, "\\x%02x", c);
				else
					out[n++] = (char) c;
		}
	}
	if (*s)
	{
		memcpy(out + n, "...", 3);
		n += 3;
	}
	out[n++] = '"';
	out[n] = '\0';
	return out;
}

/*
 * Strings of a field that decodes into []string: a list of literals, or one
 * literal (HCL wraps a lone value).  Calls fn for each; false on a type error.
 */
static bool
each_string(compile_ctx *c, const char *pattern, const char *field, const hnode *v,
			bool (*fn) (compile_ctx *, const char *, const char *, void *), void *arg)
{
	const hnode *e;

	if (v->type == HN_STRING || v->type == HN_NUMBER || v->type == HN_BOOL)
		return fn(c, pattern, v->text, arg);
	if (v->type != HN_LIST)
	{
		cfail(c, "path %s: %s: expected a list of strings, got %s",
			  goq(pattern), field, node_type_name(v));
		return false;
	}
	for (e = v->elems; e; e = e->next)
	{
		if (e->type == HN_LIST || e->type == HN_OBJECT)
		{
			cfail(c, "path %s: %s: expected a list of strings, got a list of %ss",
				  goq(pattern), field, node_type_name(e));
			return false;
		}
		if (!fn(c, pattern, e->text, arg))
			return false;
	}
	return true;
}

typedef struct cap_state
{
	unsigned	caps;
	bool		denied;
} cap_state;

static bool
add_capability(compile_ctx *c, const char *pattern, const char *cap, void *arg)
{
	cap_state  *st = arg;

	/* after "deny" Vault stops reading the list */
	if (st->denied)
		return true;
	if (!strcmp(cap, "deny"))
	{
		st->denied = true;
		st->caps = CAP_DENY;
	}
	else if (!strcmp(cap, "create"))
		st->caps |= CAP_CREATE;
	else if (!strcmp(cap, "read"))
		st->caps |= CAP_READ;
	else if (!strcmp(cap, "update"))
		st->caps |= CAP_UPDATE;
	else if (!strcmp(cap, "delete"))
		st->caps |= CAP_DELETE;
	else if (!strcmp(cap, "list"))
		st->caps |= CAP_LIST;
	else if (!strcmp(cap, "sudo"))
		st->caps |= CAP_SUDO;
	else if (!strcmp(cap, "patch"))
		st->caps |= CAP_PATCH;
	else if (!strcmp(cap, "subscribe") || !strcmp(cap, "recover"))
	{
		/* newer Vault capabilities for APIs this server does not have */
	}
	else
	{
		cfail(c, "path %s: invalid capability %s", goq(pattern), goq(cap));
		return false;
	}
	return true;
}

static bool
accept_string(compile_ctx *c, const char *pattern, const char *s, void *arg)
{
	(void) c;
	(void) pattern;
	(void) s;
	(void) arg;
	return true;
}

/* allowed_parameters / denied_parameters: a map of lists (validateParameter). */
static bool
check_parameters(compile_ctx *c, const char *pattern, const char *field, const hnode *v)
{
	const hitem *it;

	if (v->type != HN_OBJECT)
	{
		cfail(c, "path %s: %s: expected a map, got %s", goq(pattern), field, node_type_name(v));
		return false;
	}
	for (it = v->items; it; it = it->next)
	{
		const char *k = it->keys->s;
		size_t		kl = strlen(k);

		if (strchr(k, '*') && strcmp(k, "*") != 0 &&
			!(k[0] == '/' && kl >= 2 && !strcmp(k + kl - 2, "/*") &&
			  memchr(k, '*', kl - 2) == NULL))
		{
			cfail(c, "path %s: %s: parameter key %s cannot contain non-tail wildcards",
				  goq(pattern), field, goq(k));
			return false;
		}
	}
	return true;
}

/* A wrapping TTL: seconds or a Go duration string; -1 when malformed. */
static int64_t
node_duration(const hnode *v)
{
	char	   *end;
	long long	n;

	if (v->type == HN_NUMBER)
	{
		n = strtoll(v->text, &end, 10);
		return (*end == '\0') ? (int64_t) n : (int64_t) strtod(v->text, NULL);
	}
	if (v->type == HN_STRING)
		return parse_duration_str(v->text);
	return -1;
}

static void
rule_vec_push(rule_vec *rv, const struct acl_rule *r)
{
	if (rv->n == rv->cap)
	{
		rv->cap = rv->cap ? rv->cap * 2 : 16;
		rv->v = xrealloc(rv->v, sizeof(struct acl_rule) * rv->cap);
	}
	rv->v[rv->n++] = *r;
}

/* Vault's identity templating ("{{identity.entity.id}}"). */
static bool
is_templated(const char *path)
{
	const char *o = strstr(path, "{{");

	return o != NULL && strstr(o + 2, "}}") != NULL;
}

/* Fill the matching fields of a rule for pattern (leading '/' stripped). */
static void
rule_build(struct acl_rule *r, const char *pattern, unsigned caps)
{
	size_t		len = strlen(pattern);
	bool		segment = !strcmp(pattern, "+") || strstr(pattern, "/+") != NULL ||
		strncmp(pattern, "+/", 2) == 0;
	bool		star = len > 0 && pattern[len - 1] == '*';

	memset(r, 0, sizeof(*r));
	r->caps = caps;
	if (segment)
	{
		size_t		i,
					start = 0;
		int			k = 0;

		r->kind = RULE_SEGMENT;
		r->key = xstrndup(pattern, len);
		r->keylen = len;
		r->is_prefix = star;
		r->wc_len = star ? len - 1 : len;
		r->first_wc = (size_t) (strchr(pattern, '+') - pattern);
		r->nsegs = 1;
		for (i = 0; i < r->wc_len; i++)
			if (pattern[i] == '/')
				r->nsegs++;
		r->seg_off = xmalloc(sizeof(size_t) * r->nsegs);
		r->seg_len = xmalloc(sizeof(size_t) * r->nsegs);
		for (i = 0; i <= r->wc_len; i++)
		{
			if (i == r->wc_len || pattern[i] == '/')
			{
				r->seg_off[k] = start;
				r->seg_len[k] = i - start;
				if (i - start == 1 && pattern[start] == '+')
					r->wildcards++;
				k++;
				start = i + 1;
			}
		}
	}
	else if (star)
	{
		r->kind = RULE_PREFIX;
		r->key = xstrndup(pattern, len - 1);
		r->keylen = len - 1;
		r->is_prefix = true;
		r->wc_len = len - 1;
		r->first_wc = len - 1;
	}
	else
	{
		r->kind = RULE_EXACT;
		r->key = xstrndup(pattern, len);
		r->keylen = len;
		r->wc_len = len;
		r->first_wc = len;
	}
}

/* One path block: vault/policy.go parsePaths, in its order of checks. */
static void
compile_path(compile_ctx *c, const char *key, const hnode *body)
{
	const hitem *it;
	errlist		bad = {{NULL, 0, 0}, 0};
	const char *legacy = NULL;
	cap_state	st = {0, false};
	int64_t		min_ttl = 0,
				max_ttl = 0;
	const char *pattern = key;
	struct acl_rule r;

	if (body->type != HN_OBJECT)
	{
		cfail(c, "path %s: expected a block, got %s", goq(key), node_type_name(body));
		return;
	}
	for (it = body->items; it; it = it->next)
		if (!key_in(it->keys->s, path_keys))
			errlist_add(&bad, "path %s: invalid key %s on line %d",
						goq(key), goq(it->keys->s), it->line);
	if (bad.n > 0)
	{
		cfail_errlist(c, &bad);
		free(bad.lines.d);
		return;
	}

	/* decode: types first, as hcl.DecodeObject does before any check */
	for (it = body->items; it; it = it->next)
	{
		const char *k = it->keys->s;
		const hnode *v = it->val;

		if (!strcmp(k, "policy") || !strcmp(k, "comment"))
		{
			if (v->type != HN_STRING && v->type != HN_NUMBER && v->type != HN_BOOL)
			{
				cfail(c, "path %s: %s: expected a string, got %s", goq(key), k, node_type_name(v));
				return;
			}
			if (!strcmp(k, "policy"))
				legacy = v->text;
		}
		else if (!strcmp(k, "required_parameters") || !strcmp(k, "mfa_methods"))
		{
			if (!each_string(c, key, k, v, accept_string, NULL))
				return;
		}
		else if (!strcmp(k, "capabilities"))
		{
			if (v->type == HN_OBJECT)
			{
				cfail(c, "path %s: capabilities: expected a list of strings, got object", goq(key));
				return;
			}
		}
		else if (!strcmp(k, "allowed_parameters") || !strcmp(k, "denied_parameters") ||
				 !strcmp(k, "control_group"))
		{
			if (v->type != HN_OBJECT)
			{
				cfail(c, "path %s: %s: expected a map, got %s", goq(key), k, node_type_name(v));
				return;
			}
		}
	}

	if (pattern[0] == '/')
		pattern++;
	if (strstr(pattern, "+*"))
	{
		cfail(c, "path %s: invalid use of wildcards ('+*' is forbidden)", goq(pattern));
		return;
	}

	if (legacy && legacy[0])
	{
		if (!strcmp(legacy, "deny"))
		{
			st.caps = CAP_DENY;
			st.denied = true;
		}
		else if (!strcmp(legacy, "read"))
			st.caps = CAP_READ | CAP_LIST;
		else if (!strcmp(legacy, "write"))
			st.caps = CAP_CREATE | CAP_READ | CAP_UPDATE | CAP_DELETE | CAP_LIST;
		else if (!strcmp(legacy, "sudo"))
			st.caps = CAP_CREATE | CAP_READ | CAP_UPDATE | CAP_DELETE | CAP_LIST | CAP_SUDO;
		else
		{
			cfail(c, "path %s: invalid policy %s", goq(key), goq(legacy));
			return;
		}
	}
	for (it = body->items; it && !st.denied; it = it->next)
		if (!strcmp(it->keys->s, "capabilities") &&
			!each_string(c, key, "capabilities", it->val, add_capability, &st))
			return;

	/* a denying rule skips the remaining checks, as Vault's goto does */
	if (!st.denied)
	{
		for (it = body->items; it; it = it->next)
		{
			const char *k = it->keys->s;

			if ((!strcmp(k, "allowed_parameters") || !strcmp(k, "denied_parameters")) &&
				!check_parameters(c, pattern, k, it->val))
				return;
		}
		for (it = body->items; it; it = it->next)
		{
			const char *k = it->keys->s;
			int64_t		d;

			if (strcmp(k, "min_wrapping_ttl") != 0 && strcmp(k, "max_wrapping_ttl") != 0)
				continue;
			d = node_duration(it->val);
			if (d < 0)
			{
				if (it->val->type == HN_STRING || it->val->type == HN_NUMBER)
					cfail(c, "error parsing %s: time: invalid duration %s", k, goq(it->val->text));
				else
					cfail(c, "error parsing %s: could not parse duration from input", k);
				return;
			}
			if (k[1] == 'i')
				min_ttl = d;
			else
				max_ttl = d;
		}
		if (min_ttl != 0 && max_ttl != 0 && max_ttl < min_ttl)
		{
			cfail(c, "max_wrapping_ttl cannot be less than min_wrapping_ttl");
			return;
		}
	}

	/* templated paths need an identity entity, which this server has not */
	if (is_templated(pattern))
		return;
	rule_build(&r, pattern, st.caps);
	rule_vec_push(&c->rules, &r);
}

static const char *const top_keys[] = {"name", "path", NULL};

/*
 * The top level: "path" blocks in HCL (path "x" { ... }), or a "path"
 * object or list of objects keyed by pattern (the JSON form, which HCL
 * flattens the same way).
 */
static void
compile_items(compile_ctx *c, const hitem *items)
{
	const hitem *it;
	errlist		bad = {{NULL, 0, 0}, 0};

	for (it = items; it; it = it->next)
		if (!key_in(it->keys->s, top_keys))
			errlist_add(&bad, "invalid key %s on line %d", goq(it->keys->s), it->line);
	if (bad.n > 0)
	{
		cfail_errlist(c, &bad);
		free(bad.lines.d);
		return;
	}
	for (it = items; it && !c->failed; it = it->next)
	{
		if (!strcmp(it->keys->s, "name"))
		{
			if (it->val->type == HN_LIST || it->val->type == HN_OBJECT)
				cfail(c, "name: expected a string, got %s", node_type_name(it->val));
			continue;
		}
		if (it->nkeys >= 2)
			compile_path(c, it->keys->next->s, it->val);
		else if (it->val->type == HN_OBJECT)
		{
			const hitem *in;

			for (in = it->val->items; in && !c->failed; in = in->next)
				compile_path(c, in->keys->s, in->val);
		}
		else if (it->val->type == HN_LIST)
		{
			const hnode *e;

			for (e = it->val->elems; e && !c->failed; e = e->next)
			{
				const hitem *in;

				if (e->type != HN_OBJECT)
				{
					cfail(c, "path: expected a list of objects");
					return;
				}
				for (in = e->items; in && !c->failed; in = in->next)
					compile_path(c, in->keys->s, in->val);
			}
		}
		else
			cfail(c, "path: expected an object, got %s", node_type_name(it->val));
	}
}

/* ---- rule arrays ---- */

static void
rule_free(struct acl_rule *r)
{
	free(r->key);
	free(r->seg_off);
	free(r->seg_len);
}

static int
keycmp(const char *a, size_t alen, const char *b, size_t blen)
{
	int			c = memcmp(a, b, alen < blen ? alen : blen);

	if (c != 0)
		return c;
	return alen < blen ? -1 : (alen > blen ? 1 : 0);
}

static int
rule_cmp_kind_key(const void *x, const void *y)
{
	const struct acl_rule *a = x,
			   *b = y;

	if (a->kind != b->kind)
		return a->kind < b->kind ? -1 : 1;
	return keycmp(a->key, a->keylen, b->key, b->keylen);
}

/* Longest prefix first: the first prefix rule that matches is the longest. */
static int
rule_cmp_len_desc(const void *x, const void *y)
{
	const struct acl_rule *a = x,
			   *b = y;

	if (a->keylen != b->keylen)
		return a->keylen > b->keylen ? -1 : 1;
	return keycmp(a->key, a->keylen, b->key, b->keylen);
}

/* NewACL's merge of one pattern seen twice: deny wins, else the union. */
static unsigned
caps_merge(unsigned a, unsigned b)
{
	if ((a | b) & CAP_DENY)
		return CAP_DENY;
	return a | b;
}

/*
 * Sort the rules by kind and key, merge the same pattern written twice,
 * order prefix rules longest first, and note where each kind's run ends.
 */
static void
rules_finish(rule_vec *rv)
{
	int			i,
				out = 0;

	if (rv->n == 0)
		return;
	qsort(rv->v, rv->n, sizeof(struct acl_rule), rule_cmp_kind_key);
	for (i = 0; i < rv->n; i++)
	{
		if (out > 0 && rule_cmp_kind_key(&rv->v[out - 1], &rv->v[i]) == 0)
		{
			rv->v[out - 1].caps = caps_merge(rv->v[out - 1].caps, rv->v[i].caps);
			rule_free(&rv->v[i]);
			continue;
		}
		rv->v[out++] = rv->v[i];
	}
	rv->n = out;
	for (i = 0; i < rv->n;)
	{
		int			j = i;

		while (j < rv->n && rv->v[j].kind == rv->v[i].kind)
			j++;
		if (rv->v[i].kind == RULE_PREFIX)
			qsort(rv->v + i, j - i, sizeof(struct acl_rule), rule_cmp_len_desc);
		for (; i < j; i++)
			rv->v[i].kind_end = j;
	}
}

/* ---- policies ---- */

/* Vault's sanitizeName: lower case, surrounding blanks trimmed. */
static char *
sanitize_name(const char *name)
{
	size_t		len,
				i;
	char	   *out;

	if (name == NULL)
		name = "";
	while (isspace((unsigned char) *name))
		name++;
	len = strlen(name);
	while (len > 0 && isspace((unsigned char) name[len - 1]))
		len--;
	out = xstrndup(name, len);
	for (i = 0; i < len; i++)
		out[i] = (char) tolower((unsigned char) out[i]);
	return out;
}

/*
 * Policy text may arrive base64-encoded (sys/policies/acl decodes it when
 * it is valid standard base64, ignoring line breaks as Go does).  Returns a
 * malloc'd decoded copy, or NULL when the text is not base64.
 */
static char *
maybe_base64(const char *text)
{
	size_t		len = strlen(text),
				i,
				n = 0;
	char	   *clean;
	unsigned char *out;
	long		dec;

	if (len == 0)
		return NULL;
	clean = xmalloc(len + 1);
	for (i = 0; i < len; i++)
		if (text[i] != '\r' && text[i] != '\n')
			clean[n++] = text[i];
	clean[n] = '\0';
	if (n == 0)
	{
		free(clean);
		return NULL;
	}
	out = xmalloc(vc_b64_decoded_maxlen(n) + 1);
	dec = vc_b64_decode(clean, n, out);
	free(clean);
	if (dec < 0)
	{
		free(out);
		return NULL;
	}
	out[dec] = '\0';
	return (char *) out;
}

vpolicy *
policy_parse(const char *name, const char *text, char *err, size_t errlen)
{
	parser		p;
	arena		ar = {NULL};
	compile_ctx c;
	hitem	   *items;
	char	   *decoded;
	vpolicy    *pol;

	if (err && errlen)
		err[0] = '\0';
	if (text == NULL)
		text = "";
	decoded = maybe_base64(text);
	if (decoded)
		text = decoded;

	memset(&p, 0, sizeof(p));
	memset(&c, 0, sizeof(c));
	c.err = err;
	c.errlen = errlen;
	p.ar = &ar;
	items = parse_text(&p, text);
	if (p.failed)
		cfail(&c, "%s", p.err);
	else
		compile_items(&c, items);
	arena_free(&ar);
	if (c.failed)
	{
		int			i;

		for (i = 0; i < c.rules.n; i++)
			rule_free(&c.rules.v[i]);
		free(c.rules.v);
		free(decoded);
		return NULL;
	}
	rules_finish(&c.rules);

	pol = xmalloc(sizeof(vpolicy));
	pol->name = sanitize_name(name);
	pol->raw = decoded ? decoded : xstrndup(text, strlen(text));
	pol->rules = c.rules.v;
	pol->nrules = c.rules.n;
	pol->next = NULL;
	return pol;
}

void
policy_free(vpolicy *p)
{
	int			i;

	if (p == NULL)
		return;
	for (i = 0; i < p->nrules; i++)
		rule_free(&p->rules[i]);
	free(p->rules);
	free(p->name);
	free(p->raw);
	free(p);
}

/* ---- the store ---- */

/* Stored policies sorted by name; "root" is never stored. */
static vpolicy *g_policies;

/* The root policy: no text and no rules, the token check short-circuits. */
static char g_root_name[] = "root";
static char g_root_raw[] = "";
static vpolicy g_root_policy = {g_root_name, g_root_raw, NULL, 0, NULL};

/* Vault's default policy (vault/policy_store.go). */
static const char default_policy_text[] =
"\n"
"# Allow tokens to look up their own properties\n"
"path \"auth/token/lookup-self\" {\n"
"    capabilities = [\"read\"]\n"
"}\n"
"\n"
"# Allow tokens to renew themselves\n"
"path \"auth/token/renew-self\" {\n"
"    capabilities = [\"update\"]\n"
"}\n"
"\n"
"# Allow tokens to revoke themselves\n"
"path \"auth/token/revoke-self\" {\n"
"    capabilities = [\"update\"]\n"
"}\n"
"\n"
"# Allow a token to look up its own capabilities on a path\n"
"path \"sys/capabilities-self\" {\n"
"    capabilities = [\"update\"]\n"
"}\n"
"\n"
"# Allow a token to look up its own entity by id or name\n"
"path \"identity/entity/id/{{identity.entity.id}}\" {\n"
"  capabilities = [\"read\"]\n"
"}\n"
"path \"identity/entity/name/{{identity.entity.name}}\" {\n"
"  capabilities = [\"read\"]\n"
"}\n"
"\n"
"\n"
"# Allow a token to look up its resultant ACL from all policies. This is useful\n"
"# for UIs. It is an internal path because the format may change at any time\n"
"# based on how the internal ACL features and capabilities change.\n"
"path \"sys/internal/ui/resultant-acl\" {\n"
"    capabilities = [\"read\"]\n"
"}\n"
"\n"
"# Allow a token to renew a lease via lease_id in the request body; old path for\n"
"# old clients, new path for newer\n"
"path \"sys/renew\" {\n"
"    capabilities = [\"update\"]\n"
"}\n"
"path \"sys/leases/renew\" {\n"
"    capabilities = [\"update\"]\n"
"}\n"
"\n"
"# Allow looking up lease properties. This requires knowing the lease ID ahead\n"
"# of time and does not divulge any sensitive information.\n"
"path \"sys/leases/lookup\" {\n"
"    capabilities = [\"update\"]\n"
"}\n"
"\n"
"# Allow a token to manage its own cubbyhole\n"
"path \"cubbyhole/*\" {\n"
"    capabilities = [\"create\", \"read\", \"update\", \"delete\", \"list\"]\n"
"}\n"
"\n"
"# Allow a token to wrap arbitrary values in a response-wrapping token\n"
"path \"sys/wrapping/wrap\" {\n"
"    capabilities = [\"update\"]\n"
"}\n"
"\n"
"# Allow a token to look up the creation time and TTL of a given\n"
"# response-wrapping token\n"
"path \"sys/wrapping/lookup\" {\n"
"    capabilities = [\"update\"]\n"
"}\n"
"\n"
"# Allow a token to unwrap a response-wrapping token. This is a convenience to\n"
"# avoid client token swapping since this is also part of the response wrapping\n"
"# policy.\n"
"path \"sys/wrapping/unwrap\" {\n"
"    capabilities = [\"update\"]\n"
"}\n"
"\n"
"# Allow general purpose tools\n"
"path \"sys/tools/hash\" {\n"
"    capabilities = [\"update\"]\n"
"}\n"
"path \"sys/tools/hash/*\" {\n"
"    capabilities = [\"update\"]\n"
"}\n"
"\n"
"# Allow checking the status of a Control Group request if the user has the\n"
"# accessor\n"
"path \"sys/control-group/request\" {\n"
"    capabilities = [\"update\"]\n"
"}\n"
"\n"
"# Allow a token to make requests to the Authorization Endpoint for OIDC providers.\n"
"path \"identity/oidc/provider/+/authorize\" {\n"
"    capabilities = [\"read\", \"update\"]\n"
"}\n";

/* A stored policy by its sanitized name. */
static vpolicy *
store_find(const char *name)
{
	vpolicy    *p;

	for (p = g_policies; p; p = p->next)
		if (!strcmp(p->name, name))
			return p;
	return NULL;
}

/* Insert or replace, keeping the list sorted; takes ownership of p. */
static void
store_put(vpolicy *p)
{
	vpolicy   **link = &g_policies;

	while (*link && strcmp((*link)->name, p->name) < 0)
		link = &(*link)->next;
	if (*link && !strcmp((*link)->name, p->name))
	{
		vpolicy    *old = *link;

		p->next = old->next;
		*link = p;
		policy_free(old);
		return;
	}
	p->next = *link;
	*link = p;
}

vpolicy *
policy_get(const char *name)
{
	char	   *clean = sanitize_name(name);
	vpolicy    *p;

	if (!strcmp(clean, "root"))
		p = &g_root_policy;
	else
		p = store_find(clean);
	free(clean);
	return p;
}

bool
policy_put(const char *name, const char *text, char *err, size_t errlen)
{
	char	   *clean = sanitize_name(name);
	vpolicy    *p;

	if (clean[0] == '\0')
	{
		snprintf(err, errlen, "policy name must be provided in the URL");
		free(clean);
		return false;
	}
	if (text == NULL || text[0] == '\0')
	{
		snprintf(err, errlen, "'policy' parameter not supplied or empty");
		free(clean);
		return false;
	}
	/* Vault parses before it looks at the name */
	p = policy_parse(clean, text, err, errlen);
	if (p == NULL)
	{
		free(clean);
		return false;
	}
	if (!strcmp(clean, "root"))
	{
		snprintf(err, errlen, "cannot update \"root\" policy");
		policy_free(p);
		free(clean);
		return false;
	}
	free(clean);
	store_put(p);
	return true;
}

bool
policy_delete(const char *name, char *err, size_t errlen)
{
	char	   *clean = sanitize_name(name);
	vpolicy   **link;

	if (!strcmp(clean, "root"))
	{
		snprintf(err, errlen, "cannot delete \"root\" policy");
		free(clean);
		return false;
	}
	if (!strcmp(clean, "default"))
	{
		snprintf(err, errlen, "cannot delete default policy");
		free(clean);
		return false;
	}
	/* deleting a policy that does not exist succeeds, as in Vault */
	for (link = &g_policies; *link; link = &(*link)->next)
	{
		if (!strcmp((*link)->name, clean))
		{
			vpolicy    *old = *link;

			*link = old->next;
			policy_free(old);
			break;
		}
	}
	free(clean);
	return true;
}

/* Stored names in order, then "root", as Vault's handlePoliciesList. */
json_t *
policy_names(void)
{
	json_t	   *arr = json_array();
	vpolicy    *p;

	for (p = g_policies; p; p = p->next)
		json_array_append_new(arr, json_string(p->name));
	json_array_append_new(arr, json_string("root"));
	return arr;
}

void
policies_init_builtin(void)
{
	char		err[512];
	vpolicy    *p;

	if (store_find("default"))
		return;
	p = policy_parse("default", default_policy_text, err, sizeof(err));
	if (p == NULL)
	{
		fprintf(stderr, "vault-dev: builtin default policy: %s\n", err);
		abort();
	}
	store_put(p);
}

json_t *
policies_save(void)
{
	json_t	   *out = json_object();
	vpolicy    *p;

	for (p = g_policies; p; p = p->next)
		json_object_set_new(out, p->name, json_string(p->raw));
	return out;
}

void
policies_load(json_t *saved)
{
	const char *name;
	json_t	   *v;
	vpolicy   **link = &g_policies;

	if (!json_is_object(saved))
		return;
	/* the saved set replaces the stored one; the builtin default stays
	 * unless the state has its own */
	while (*link)
	{
		if (strcmp((*link)->name, "default") != 0)
		{
			vpolicy    *old = *link;

			*link = old->next;
			policy_free(old);
		}
		else
			link = &(*link)->next;
	}
	json_object_foreach(saved, name, v)
	{
		char		err[512];
		vpolicy    *p;

		if (!json_is_string(v) || !strcmp(name, "root"))
			continue;
		p = policy_parse(name, json_string_value(v), err, sizeof(err));
		if (p == NULL)
		{
			fprintf(stderr, "vault-dev: state file: policy \"%s\": %s\n", name, err);
			continue;
		}
		store_put(p);
	}
}

/* ---- matching (vault/acl.go AllowOperation) ---- */

unsigned
acl_cap_for_op(vop op)
{
	switch (op)
	{
		case OP_READ:
			return CAP_READ;
		case OP_CREATE:
			return CAP_CREATE;
		case OP_UPDATE:
			return CAP_UPDATE;
		case OP_DELETE:
			return CAP_DELETE;
		case OP_LIST:
			return CAP_LIST;
		case OP_PATCH:
			return CAP_PATCH;
		default:
			return 0;
	}
}

/* Union of the exact rules for path[0..len) over the policies. */
static bool
match_exact(const vpolicy *const *pols, int npols, const char *path, size_t len,
			unsigned *caps)
{
	bool		found = false;
	int			i;

	for (i = 0; i < npols; i++)
	{
		const vpolicy *p = pols[i];
		int			lo = 0,
					hi;

		if (p->nrules == 0 || p->rules[0].kind != RULE_EXACT)
			continue;
		hi = p->rules[0].kind_end - 1;
		while (lo <= hi)
		{
			int			mid = (lo + hi) / 2;
			const struct acl_rule *r = &p->rules[mid];
			int			c = keycmp(r->key, r->keylen, path, len);

			if (c == 0)
			{
				*caps = found ? caps_merge(*caps, r->caps) : r->caps;
				found = true;
				break;
			}
			if (c < 0)
				lo = mid + 1;
			else
				hi = mid - 1;
		}
	}
	return found;
}

/* Does a priority rank above b (acl.go's "less", reversed)? */
static bool
rule_higher(const struct acl_rule *a, const struct acl_rule *b)
{
	if (a->first_wc != b->first_wc)
		return a->first_wc > b->first_wc;
	if (a->is_prefix != b->is_prefix)
		return !a->is_prefix;
	if (a->wildcards != b->wildcards)
		return a->wildcards < b->wildcards;
	if (a->wc_len != b->wc_len)
		return a->wc_len > b->wc_len;
	return memcmp(a->key, b->key, a->wc_len) > 0;
}

static bool
same_pattern(const struct acl_rule *a, const struct acl_rule *b)
{
	return a->kind == b->kind && a->keylen == b->keylen &&
		memcmp(a->key, b->key, a->keylen) == 0;
}

/*
 * A segment pattern against a path of nparts '/'-separated parts: '+'
 * takes any one part (even an empty one), other parts must be equal, and
 * the last part of a pattern ending in '*' need only be a prefix.
 */
static bool
segment_match(const struct acl_rule *r, const char *path, size_t len, int nparts)
{
	const char *s = path,
			   *end = path + len;
	int			i;

	if (nparts < r->nsegs || (!r->is_prefix && nparts != r->nsegs))
		return false;
	for (i = 0; i < r->nsegs; i++)
	{
		const char *e = memchr(s, '/', (size_t) (end - s));
		const char *ps = r->key + r->seg_off[i];
		size_t		pl = r->seg_len[i];
		size_t		plen;

		if (e == NULL)
			e = end;
		plen = (size_t) (e - s);
		if (!(pl == 1 && ps[0] == '+') &&
			!(pl == plen && memcmp(ps, s, pl) == 0) &&
			!(r->is_prefix && i == r->nsegs - 1 && plen >= pl && memcmp(ps, s, pl) == 0))
			return false;
		s = e + 1;
	}
	return true;
}

/*
 * CheckAllowedFromNonExactPaths: the highest-priority prefix or segment
 * pattern matching path[0..len), its capabilities unioned over the
 * policies that contain that same pattern.
 */
static bool
match_glob(const vpolicy *const *pols, int npols, const char *path, size_t len,
		   unsigned *caps)
{
	const struct acl_rule *best = NULL;
	unsigned	bcaps = 0;
	int			nparts = 1;
	size_t		k;
	int			i;

	for (k = 0; k < len; k++)
		if (path[k] == '/')
			nparts++;

	for (i = 0; i < npols; i++)
	{
		const vpolicy *p = pols[i];
		int			j = 0;

		while (j < p->nrules)
		{
			const struct acl_rule *r = &p->rules[j];
			int			end = r->kind_end;

			if (r->kind == RULE_EXACT)
			{
				j = end;
				continue;
			}
			for (; j < end; j++)
			{
				bool		hit;

				r = &p->rules[j];
				if (r->kind == RULE_PREFIX)
					hit = r->keylen <= len && memcmp(r->key, path, r->keylen) == 0;
				else
					hit = segment_match(r, path, len, nparts);
				if (!hit)
					continue;
				if (best == NULL || rule_higher(r, best))
				{
					best = r;
					bcaps = r->caps;
				}
				else if (same_pattern(r, best))
					bcaps = caps_merge(bcaps, r->caps);
				/* shorter prefixes of this policy cannot rank higher */
				if (r->kind == RULE_PREFIX)
				{
					j = end;
					break;
				}
			}
		}
	}
	if (best == NULL)
		return false;
	*caps = bcaps;
	return true;
}

/* The token carries the root policy (Vault's ACL "root" fast path). */
static bool
has_root_policy(const json_t *policies)
{
	size_t		i;

	for (i = 0; i < json_array_size(policies); i++)
	{
		const char *s = json_string_value(json_array_get(policies, i));

		if (s && !strcmp(s, "root"))
			return true;
	}
	return false;
}

#define ACL_INLINE_POLICIES 16

/*
 * The check itself.  list selects Vault's LIST order for a path ending in
 * '/': the exact path, the exact path without the '/', the globs without
 * the '/', the globs with it.  Other operations take the path as it is.
 */
static unsigned
acl_check(const vtoken *t, const char *path, bool list)
{
	const vpolicy *inline_pols[ACL_INLINE_POLICIES];
	const vpolicy **pols = inline_pols;
	size_t		npolicies,
				i,
				len;
	int			n = 0;
	unsigned	caps = 0;
	bool		found;

	if (t == NULL || path == NULL)
		return 0;
	if (has_root_policy(t->policies))
		return CAP_ALL;

	npolicies = json_array_size(t->policies);
	if (npolicies > ACL_INLINE_POLICIES)
		pols = xmalloc(sizeof(vpolicy *) * npolicies);
	for (i = 0; i < npolicies; i++)
	{
		const char *name = json_string_value(json_array_get(t->policies, i));
		const vpolicy *p;

		if (name == NULL)
			continue;
		for (p = g_policies; p; p = p->next)
			if (!strcasecmp(p->name, name))
				break;
		/* a policy the token names but that does not exist grants nothing */
		if (p != NULL && p->nrules > 0)
			pols[n++] = p;
	}

	while (*path == '/')
		path++;
	len = strlen(path);

	found = match_exact(pols, n, path, len, &caps);
	if (!found && list && len > 0 && path[len - 1] == '/')
	{
		found = match_exact(pols, n, path, len - 1, &caps);
		if (!found)
			found = match_glob(pols, n, path, len - 1, &caps);
	}
	if (!found)
		found = match_glob(pols, n, path, len, &caps);

	if (pols != inline_pols)
		free(pols);
	if (!found)
		return 0;
	return (caps & CAP_DENY) ? CAP_DENY : caps;
}

/* As sys/capabilities sees a path: Vault checks it as a LIST would. */
unsigned
acl_capabilities(const vtoken *t, const char *path)
{
	return acl_check(t, path, true);
}

unsigned
acl_capabilities_op(const vtoken *t, const char *path, vop op)
{
	return acl_check(t, path, op == OP_LIST);
}

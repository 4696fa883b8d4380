/*
 * database.c
 *    The database secrets engine (engine_database) with its PostgreSQL
 *    plugin, after Vault's builtin/logical/database and
 *    plugins/database/postgresql: connections (config/:name, reset,
 *    rotate-root), roles, and creds/:role, which creates a PostgreSQL role
 *    through libpq and hands it out under a lease.  The lease hooks renew
 *    the role (VALID UNTIL) and revoke it (the role's revocation
 *    statements or Vault's default revocation); lease.c drives them, on
 *    request and from its once-a-second expiry sweep.
 *
 *    Only postgresql-database-plugin exists here.  Password policies,
 *    static roles and non-password credential types are not implemented,
 *    and username_template supports the part of Go's text/template that
 *    username templates use (fields, pipelines, string and number
 *    literals, and Vault's template functions except timestamp and glob).
 *
 *    Each connection config keeps one libpq connection, opened lazily,
 *    checked before use and reopened when it has gone bad
 *    (max_open_connections and the other pool settings are checked and
 *    stored, but one connection serves everything).  Statements run
 *    under the server's global lock with a 10 s statement_timeout and a
 *    5 s connect_timeout.  The configured password and every generated
 *    password are replaced by "[password]" in any error that comes back
 *    from PostgreSQL; libpq's notices are discarded.
 */
#include "devserver.h"

#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libpq-fe.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/sha.h>

#define PLUGIN_NAME			"postgresql-database-plugin"
#define DEFAULT_USERNAME_TEMPLATE \
	"{{ printf \"v-%s-%s-%s-%s\" (.DisplayName | truncate 8) (.RoleName | truncate 8) (random 20) (unix_time) | truncate 63 }}"
#define DEFAULT_RENEW_SQL	"ALTER ROLE \"{{name}}\" VALID UNTIL '{{expiration}}';"
#define DEFAULT_ROTATE_SQL	"ALTER ROLE \"{{username}}\" WITH PASSWORD '{{password}}';"
#define PASSWORD_LEN		20
/* Vault adds this to VALID UNTIL so that the role outlives its lease. */
#define EXPIRATION_SLACK	5
#define ERRLEN				1024
#define SCRAM_ITERATIONS	4096
#define SCRAM_SALT_LEN		16

typedef struct db_config
{
	char	   *name;
	char	   *plugin_name;
	char	   *plugin_version;
	json_t	   *details;		/* connection_details as written, password
								 * included */
	json_t	   *allowed_roles;
	json_t	   *root_rotation_statements;
	char	   *password_policy;
	bool		verify_connection;
	PGconn	   *conn;			/* NULL until first used */
	struct db_config *next;
} db_config;

typedef struct db_role
{
	char	   *name;
	char	   *db_name;
	json_t	   *creation;		/* statement lists as written */
	json_t	   *revocation;
	json_t	   *rollback;
	json_t	   *renew;
	int64_t		default_ttl;
	int64_t		max_ttl;
	struct db_role *next;
} db_role;

typedef struct db_state
{
	db_config  *configs;		/* sorted by name */
	db_role    *roles;			/* sorted by name */
} db_state;

/* The plugin's settings, decoded from connection_details. */
typedef struct pg_settings
{
	const char *url;
	const char *username;
	const char *password;
	const char *username_template;
	bool		disable_escaping;
	bool		scram;			/* password_authentication = scram-sha-256 */
} pg_settings;

/* One {{key}} substitution of a statement. */
typedef struct tvar
{
	const char *key;
	const char *value;
} tvar;

/* ---- small helpers ---- */

static char *
xstrdup(const char *s)
{
	char	   *d = strdup(s ? s : "");

	if (d == NULL)
		abort();
	return d;
}

static void *
xmalloc(size_t n)
{
	void	   *p = malloc(n ? n : 1);

	if (p == NULL)
		abort();
	return p;
}

static void *
xcalloc(size_t n)
{
	void	   *p = calloc(1, n);

	if (p == NULL)
		abort();
	return p;
}

/* A growable string. */
typedef struct sbuf
{
	char	   *d;
	size_t		len;
	size_t		cap;
} sbuf;

static void
sb_putn(sbuf *b, const char *s, size_t n)
{
	if (b->len + n + 1 > b->cap)
	{
		size_t		cap = b->cap ? b->cap : 64;

		while (b->len + n + 1 > cap)
			cap *= 2;
		b->d = realloc(b->d, cap);
		if (b->d == NULL)
			abort();
		b->cap = cap;
	}
	memcpy(b->d + b->len, s, n);
	b->len += n;
	b->d[b->len] = '\0';
}

static void
sb_puts(sbuf *b, const char *s)
{
	sb_putn(b, s, strlen(s));
}

static char *
sb_take(sbuf *b)
{
	if (b->d == NULL)
		return xstrdup("");
	return b->d;
}

/* snprintf for messages, which may be cut short at the buffer's end */
static void
seterr(char *buf, size_t len, const char *fmt,...)
	__attribute__((format(printf, 3, 4)));

static void
seterr(char *buf, size_t len, const char *fmt,...)
{
	va_list		ap;

	va_start(ap, fmt);
	vsnprintf(buf, len, fmt, ap);
	va_end(ap);
}

/* Replace every occurrence of each non-empty secret by "[password]". */
static char *
redact(const char *msg, const char *const *secrets, int nsecrets)
{
	char	   *cur = xstrdup(msg);
	int			i;

	for (i = 0; i < nsecrets; i++)
	{
		const char *s = secrets[i];
		size_t		slen;
		sbuf		b = {0};
		const char *p,
				   *hit;

		if (s == NULL || (slen = strlen(s)) == 0)
			continue;
		for (p = cur; (hit = strstr(p, s)) != NULL; p = hit + slen)
		{
			sb_putn(&b, p, (size_t) (hit - p));
			sb_puts(&b, "[password]");
		}
		sb_puts(&b, p);
		free(cur);
		cur = sb_take(&b);
	}

	/*
	 * PostgreSQL quotes the token it stumbled on ("syntax error at or near
	 * "Ab3"), which may be a piece of a password: hide quoted pieces of
	 * secrets too.
	 */
	{
		sbuf		b = {0};
		const char *p = cur;
		const char *open;

		while ((open = strchr(p, '"')) != NULL)
		{
			const char *close = strchr(open + 1, '"');
			size_t		n;
			bool		secret = false;

			if (close == NULL)
				break;
			n = (size_t) (close - open - 1);
			for (i = 0; i < nsecrets && n >= 2 && !secret; i++)
				if (secrets[i] && memmem(secrets[i], strlen(secrets[i]), open + 1, n))
					secret = true;
			sb_putn(&b, p, (size_t) (open + 1 - p));
			if (secret)
				sb_puts(&b, "[password]");
			else
				sb_putn(&b, open + 1, n);
			sb_puts(&b, "\"");
			p = close + 1;
		}
		sb_puts(&b, p);
		free(cur);
		cur = sb_take(&b);
	}
	return cur;
}

/* A Go error returned by the backend: a 500 in multierror's format. */
static void
resp_go_error(vresp *resp, const char *msg)
{
	resp_error(resp, 500, "1 error occurred:\n\t* %s\n\n", msg);
}

static void
resp_not_found(vresp *resp)
{
	resp->status = 404;
	if (resp->errors == NULL)
		resp->errors = json_array();
}

static void
resp_list(vresp *resp, json_t *keys)
{
	if (json_array_size(keys) == 0)
	{
		json_decref(keys);
		resp_not_found(resp);
		return;
	}
	resp->data = json_pack("{s:o}", "keys", keys);
}

static json_t *
array_or_empty(json_t *v)
{
	return json_is_array(v) ? json_deep_copy(v) : json_array();
}

static const char *
jstr(json_t *o, const char *key)
{
	return json_string_value(json_object_get(o, key));
}

static char *
trimmed_copy(const char *s, size_t n)
{
	char	   *d;

	while (n > 0 && isspace((unsigned char) *s))
		s++, n--;
	while (n > 0 && isspace((unsigned char) s[n - 1]))
		n--;
	d = xmalloc(n + 1);
	memcpy(d, s, n);
	d[n] = '\0';
	return d;
}

/* UTC in Go's layout "2006-01-02 15:04:05-0700", as the plugin sends it. */
static void
format_expiration(int64_t t, char *buf, size_t len)
{
	time_t		tt = (time_t) t;
	struct tm	tm;

	gmtime_r(&tt, &tm);
	strftime(buf, len, "%Y-%m-%d %H:%M:%S+0000", &tm);
}

/* ---- state ---- */

static db_config *
config_find(db_state *st, const char *name)
{
	db_config  *c;

	for (c = st->configs; c; c = c->next)
		if (strcmp(c->name, name) == 0)
			return c;
	return NULL;
}

static db_role *
role_find(db_state *st, const char *name)
{
	db_role    *r;

	for (r = st->roles; r; r = r->next)
		if (strcmp(r->name, name) == 0)
			return r;
	return NULL;
}

static void
config_close(db_config *c)
{
	if (c->conn)
		PQfinish(c->conn);
	c->conn = NULL;
}

static void
config_free(db_config *c)
{
	config_close(c);
	free(c->name);
	free(c->plugin_name);
	free(c->plugin_version);
	json_decref(c->details);
	json_decref(c->allowed_roles);
	json_decref(c->root_rotation_statements);
	free(c->password_policy);
	free(c);
}

static void
role_free(db_role *r)
{
	free(r->name);
	free(r->db_name);
	json_decref(r->creation);
	json_decref(r->revocation);
	json_decref(r->rollback);
	json_decref(r->renew);
	free(r);
}

/* Put c in the sorted list, replacing (and freeing) one of the same name. */
static void
config_put(db_state *st, db_config *c)
{
	db_config **pp = &st->configs;

	while (*pp && strcmp((*pp)->name, c->name) < 0)
		pp = &(*pp)->next;
	if (*pp && strcmp((*pp)->name, c->name) == 0)
	{
		db_config  *old = *pp;

		c->next = old->next;
		config_free(old);
	}
	else
		c->next = *pp;
	*pp = c;
}

static void
role_put(db_state *st, db_role *r)
{
	db_role   **pp = &st->roles;

	while (*pp && strcmp((*pp)->name, r->name) < 0)
		pp = &(*pp)->next;
	if (*pp && strcmp((*pp)->name, r->name) == 0)
	{
		db_role    *old = *pp;

		r->next = old->next;
		role_free(old);
	}
	else
		r->next = *pp;
	*pp = r;
}

static bool
config_delete(db_state *st, const char *name)
{
	db_config **pp;

	for (pp = &st->configs; *pp; pp = &(*pp)->next)
		if (strcmp((*pp)->name, name) == 0)
		{
			db_config  *c = *pp;

			*pp = c->next;
			config_free(c);
			return true;
		}
	return false;
}

static bool
role_delete(db_state *st, const char *name)
{
	db_role   **pp;

	for (pp = &st->roles; *pp; pp = &(*pp)->next)
		if (strcmp((*pp)->name, name) == 0)
		{
			db_role    *r = *pp;

			*pp = r->next;
			role_free(r);
			return true;
		}
	return false;
}

/* ---- decoding connection_details (mapstructure's weak decoding) ---- */

static bool
detail_string(json_t *details, const char *key, const char **out, char *err, size_t errlen)
{
	json_t	   *v = json_object_get(details, key);

	*out = NULL;
	if (v == NULL || json_is_null(v))
		return true;
	if (json_is_string(v))
	{
		*out = json_string_value(v);
		return true;
	}
	seterr(err, errlen, "1 error(s) decoding:\n\n* '%s' expected type 'string', got unconvertible type '%s'",
			 key, json_is_object(v) ? "map[string]interface {}" :
			 json_is_array(v) ? "[]interface {}" : json_is_boolean(v) ? "bool" : "float64");
	return false;
}

static bool
detail_bool(json_t *details, const char *key, bool *out, char *err, size_t errlen)
{
	json_t	   *v = json_object_get(details, key);

	*out = false;
	if (v == NULL || json_is_null(v))
		return true;
	if (json_is_boolean(v))
		*out = json_is_true(v);
	else if (json_is_integer(v))
		*out = json_integer_value(v) != 0;
	else if (json_is_string(v))
	{
		const char *s = json_string_value(v);

		if (*s == '\0' || !strcasecmp(s, "false") || !strcmp(s, "0") || !strcasecmp(s, "f"))
			*out = false;
		else if (!strcasecmp(s, "true") || !strcmp(s, "1") || !strcasecmp(s, "t"))
			*out = true;
		else
		{
			seterr(err, errlen, "1 error(s) decoding:\n\n* cannot parse '%s' as bool", key);
			return false;
		}
	}
	else
	{
		seterr(err, errlen, "1 error(s) decoding:\n\n* '%s' expected type 'bool'", key);
		return false;
	}
	return true;
}

static bool
detail_int(json_t *details, const char *key, char *err, size_t errlen)
{
	json_t	   *v = json_object_get(details, key);

	if (v == NULL || json_is_null(v) || json_is_integer(v) || json_is_boolean(v))
		return true;
	if (json_is_real(v) && (double) (long long) json_real_value(v) == json_real_value(v))
		return true;
	if (json_is_string(v))
	{
		const char *s = json_string_value(v);
		char	   *end;

		if (*s == '\0')
			return true;
		(void) strtoll(s, &end, 10);
		if (*end == '\0')
			return true;
	}
	seterr(err, errlen, "1 error(s) decoding:\n\n* cannot parse '%s' as int", key);
	return false;
}

static bool username_template_check(const char *tmpl, char *err, size_t errlen);

/*
 * The plugin's Initialize() minus the connection: decode and check the
 * settings.  Messages are those of connutil and the PostgreSQL plugin.
 */
static bool
settings_decode(json_t *details, pg_settings *s, char *err, size_t errlen)
{
	const char *pa = NULL;
	json_t	   *life;

	memset(s, 0, sizeof(*s));
	if (!detail_string(details, "connection_url", &s->url, err, errlen) ||
		!detail_string(details, "username", &s->username, err, errlen) ||
		!detail_string(details, "password", &s->password, err, errlen) ||
		!detail_string(details, "username_template", &s->username_template, err, errlen) ||
		!detail_string(details, "password_authentication", &pa, err, errlen) ||
		!detail_bool(details, "disable_escaping", &s->disable_escaping, err, errlen) ||
		!detail_int(details, "max_open_connections", err, errlen) ||
		!detail_int(details, "max_idle_connections", err, errlen))
		return false;
	if (s->url == NULL || *s->url == '\0')
	{
		seterr(err, errlen, "connection_url cannot be empty");
		return false;
	}
	if ((s->username && (strstr(s->username, "{{username}}") || strstr(s->username, "{{password}}"))) ||
		(s->password && (strstr(s->password, "{{username}}") || strstr(s->password, "{{password}}"))))
	{
		seterr(err, errlen, "username and/or password cannot contain the template variables");
		return false;
	}
	life = json_object_get(details, "max_connection_lifetime");
	if (life && !json_is_null(life) && parse_duration_json(life) < 0)
	{
		seterr(err, errlen, "invalid max_connection_lifetime: time: invalid duration");
		return false;
	}
	if (s->username_template == NULL || *s->username_template == '\0')
		s->username_template = DEFAULT_USERNAME_TEMPLATE;
	if (!username_template_check(s->username_template, err, errlen))
		return false;
	if (pa && *pa)
	{
		if (strcmp(pa, "scram-sha-256") == 0)
			s->scram = true;
		else if (strcmp(pa, "password") != 0)
		{
			seterr(err, errlen, "'%s' is not a valid password authentication type", pa);
			return false;
		}
	}
	return true;
}

/* ---- username templates: the part of Go's text/template they use ---- */

typedef enum
{
	TV_STR,
	TV_INT
} tv_kind;

typedef struct tval
{
	tv_kind		kind;
	char	   *s;				/* TV_STR: malloc'd */
	long long	i;
} tval;

typedef struct tctx
{
	const char *p;				/* cursor inside the action */
	const char *end;			/* end of the action's body */
	const char *display_name;
	const char *role_name;
	bool		parse_error;	/* a syntax error rather than a failed call */
	char	   *err;
	size_t		errlen;
	bool		failed;
} tctx;

#define TMPL_MAX_ARGS 16

static void
tfail(tctx *c, bool parse, const char *fmt,...)
	__attribute__((format(printf, 3, 4)));

static void
tfail(tctx *c, bool parse, const char *fmt,...)
{
	va_list		ap;

	if (c->failed)
		return;
	c->failed = true;
	c->parse_error = parse;
	va_start(ap, fmt);
	vsnprintf(c->err, c->errlen, fmt, ap);
	va_end(ap);
}

static void
tv_free(tval *v)
{
	if (v->kind == TV_STR)
		free(v->s);
	v->s = NULL;
}

static tval
tv_str(char *owned)
{
	tval		v = {TV_STR, owned, 0};

	return v;
}

static tval
tv_int(long long i)
{
	tval		v = {TV_INT, NULL, i};

	return v;
}

/* The value as Go's fmt prints it with %v. */
static char *
tv_text(const tval *v)
{
	char		buf[32];

	if (v->kind == TV_STR)
		return xstrdup(v->s);
	snprintf(buf, sizeof(buf), "%lld", v->i);
	return xstrdup(buf);
}

static void
tskip_ws(tctx *c)
{
	while (c->p < c->end && isspace((unsigned char) *c->p))
		c->p++;
}

static bool
is_ident_start(char ch)
{
	return isalpha((unsigned char) ch) || ch == '_';
}

static bool
is_ident_char(char ch)
{
	return isalnum((unsigned char) ch) || ch == '_';
}

static bool tpipeline(tctx *c, tval *out);

/* printf with the verbs a username template needs: %s %v %d %q %%. */
static char *
tprintf(tctx *c, tval *args, int nargs)
{
	const char *f;
	sbuf		b = {0};
	int			next = 1;

	if (nargs < 1 || args[0].kind != TV_STR)
	{
		tfail(c, false, "error calling printf: wrong type for value; expected string");
		return NULL;
	}
	for (f = args[0].s; *f; f++)
	{
		char		verb;

		if (*f != '%')
		{
			sb_putn(&b, f, 1);
			continue;
		}
		verb = *++f;
		if (verb == '\0')
		{
			sb_puts(&b, "%!(NOVERB)");
			break;
		}
		if (verb == '%')
		{
			sb_puts(&b, "%");
			continue;
		}
		if (next >= nargs)
		{
			char		m[32];

			snprintf(m, sizeof(m), "%%!%c(MISSING)", verb);
			sb_puts(&b, m);
			continue;
		}
		{
			tval	   *a = &args[next++];
			char	   *t = tv_text(a);

			if (verb == 's' || verb == 'v' || (verb == 'd' && a->kind == TV_INT))
				sb_puts(&b, t);
			else if (verb == 'q' && a->kind == TV_STR)
			{
				sb_puts(&b, "\"");
				sb_puts(&b, t);
				sb_puts(&b, "\"");
			}
			else
			{
				char		m[32];

				snprintf(m, sizeof(m), "%%!%c(%s=", verb, a->kind == TV_STR ? "string" : "int");
				sb_puts(&b, m);
				sb_puts(&b, t);
				sb_puts(&b, ")");
			}
			free(t);
		}
	}
	if (next < nargs)
	{
		int			i;

		sb_puts(&b, "%!(EXTRA ");
		for (i = next; i < nargs; i++)
		{
			char	   *t = tv_text(&args[i]);

			if (i > next)
				sb_puts(&b, ", ");
			sb_puts(&b, args[i].kind == TV_STR ? "string=" : "int=");
			sb_puts(&b, t);
			free(t);
		}
		sb_puts(&b, ")");
	}
	return sb_take(&b);
}

static bool
targs(tctx *c, const char *fn, tval *args, int nargs, int want, const char *types)
{
	int			i;

	if (nargs != want)
	{
		tfail(c, false, "wrong number of args for %s: want %d got %d", fn, want, nargs);
		return false;
	}
	for (i = 0; i < nargs; i++)
		if ((types[i] == 'i') != (args[i].kind == TV_INT))
		{
			tfail(c, false, "wrong type for value; expected %s; got %s",
				  types[i] == 'i' ? "int" : "string",
				  args[i].kind == TV_INT ? "int" : "string");
			return false;
		}
	return true;
}

/* Vault's template functions (sdk/helper/template/funcs.go). */
static bool
tcall(tctx *c, const char *fn, tval *args, int nargs, tval *out)
{
	char		buf[64];

	if (strcmp(fn, "printf") == 0)
	{
		char	   *s = tprintf(c, args, nargs);

		if (s == NULL)
			return false;
		*out = tv_str(s);
	}
	else if (strcmp(fn, "truncate") == 0 || strcmp(fn, "truncate_sha256") == 0)
	{
		bool		sha = fn[8] != '\0';
		long long	max;
		size_t		len;

		if (!targs(c, fn, args, nargs, 2, "is"))
			return false;
		max = args[0].i;
		len = strlen(args[1].s);
		if (max <= (sha ? 8 : 0))
		{
			tfail(c, false, "error calling %s: max length must be > %d but was %lld",
				  fn, sha ? 8 : 0, max);
			return false;
		}
		if ((long long) len <= max)
			*out = tv_str(xstrdup(args[1].s));
		else if (!sha)
			*out = tv_str(strndup(args[1].s, (size_t) max));
		else
		{
			unsigned char md[SHA256_DIGEST_LENGTH];
			char		hex[2 * SHA256_DIGEST_LENGTH + 1];
			size_t		cut = (size_t) max - 8;
			char	   *s = xmalloc((size_t) max + 1);

			SHA256((const unsigned char *) args[1].s + cut, len - cut, md);
			vc_hex_encode(md, sizeof(md), hex);
			memcpy(s, args[1].s, cut);
			memcpy(s + cut, hex, 8);
			s[max] = '\0';
			*out = tv_str(s);
		}
	}
	else if (strcmp(fn, "uppercase") == 0 || strcmp(fn, "lowercase") == 0)
	{
		char	   *s,
				   *q;

		if (!targs(c, fn, args, nargs, 1, "s"))
			return false;
		s = xstrdup(args[0].s);
		for (q = s; *q; q++)
			*q = (char) (fn[0] == 'u' ? toupper((unsigned char) *q) : tolower((unsigned char) *q));
		*out = tv_str(s);
	}
	else if (strcmp(fn, "replace") == 0)
	{
		sbuf		b = {0};
		const char *p,
				   *hit;
		size_t		flen;

		if (!targs(c, fn, args, nargs, 3, "sss"))
			return false;
		flen = strlen(args[0].s);
		if (flen == 0)
			*out = tv_str(xstrdup(args[2].s));
		else
		{
			for (p = args[2].s; (hit = strstr(p, args[0].s)) != NULL; p = hit + flen)
			{
				sb_putn(&b, p, (size_t) (hit - p));
				sb_puts(&b, args[1].s);
			}
			sb_puts(&b, p);
			*out = tv_str(sb_take(&b));
		}
	}
	else if (strcmp(fn, "sha256") == 0)
	{
		unsigned char md[SHA256_DIGEST_LENGTH];
		char	   *hex = xmalloc(2 * SHA256_DIGEST_LENGTH + 1);

		if (!targs(c, fn, args, nargs, 1, "s"))
		{
			free(hex);
			return false;
		}
		SHA256((const unsigned char *) args[0].s, strlen(args[0].s), md);
		vc_hex_encode(md, sizeof(md), hex);
		*out = tv_str(hex);
	}
	else if (strcmp(fn, "base64") == 0 || strcmp(fn, "hex") == 0)
	{
		size_t		n;
		char	   *s;

		if (!targs(c, fn, args, nargs, 1, "s"))
			return false;
		n = strlen(args[0].s);
		if (fn[0] == 'b')
		{
			s = xmalloc(vc_b64_encoded_len(n) + 1);
			vc_b64_encode((const unsigned char *) args[0].s, n, s);
		}
		else
		{
			s = xmalloc(2 * n + 1);
			vc_hex_encode((const unsigned char *) args[0].s, n, s);
		}
		*out = tv_str(s);
	}
	else if (strcmp(fn, "decode_base64") == 0)
	{
		size_t		n;
		long		got;
		unsigned char *d;

		if (!targs(c, fn, args, nargs, 1, "s"))
			return false;
		n = strlen(args[0].s);
		d = xmalloc(vc_b64_decoded_maxlen(n) + 1);
		got = vc_b64_decode(args[0].s, n, d);
		if (got < 0)
		{
			free(d);
			tfail(c, false, "error calling decode_base64: illegal base64 data");
			return false;
		}
		d[got] = '\0';
		*out = tv_str((char *) d);
	}
	else if (strcmp(fn, "decode_hex") == 0)
	{
		size_t		n,
					k;
		char	   *d;

		if (!targs(c, fn, args, nargs, 1, "s"))
			return false;
		n = strlen(args[0].s);
		if (n % 2 != 0 || strspn(args[0].s, "0123456789abcdefABCDEF") != n)
		{
			tfail(c, false, "error calling decode_hex: encoding/hex: invalid byte");
			return false;
		}
		d = xmalloc(n / 2 + 1);
		for (k = 0; k < n / 2; k++)
		{
			char		pair[3] = {args[0].s[2 * k], args[0].s[2 * k + 1], '\0'};

			d[k] = (char) strtol(pair, NULL, 16);
		}
		d[n / 2] = '\0';
		*out = tv_str(d);
	}
	else if (strcmp(fn, "random") == 0)
	{
		char	   *s;

		if (!targs(c, fn, args, nargs, 1, "i"))
			return false;
		if (args[0].i < 0 || args[0].i > 4096)
		{
			tfail(c, false, "error calling random: invalid length %lld", args[0].i);
			return false;
		}
		s = xmalloc((size_t) args[0].i + 1);
		rand_base62(s, (size_t) args[0].i);
		*out = tv_str(s);
	}
	else if (strcmp(fn, "unix_time") == 0 || strcmp(fn, "unix_time_millis") == 0)
	{
		struct timespec ts;

		if (!targs(c, fn, args, nargs, 0, ""))
			return false;
		clock_gettime(CLOCK_REALTIME, &ts);
		if (fn[9] == '\0')
			snprintf(buf, sizeof(buf), "%lld", (long long) ts.tv_sec);
		else
			snprintf(buf, sizeof(buf), "%lld",
					 (long long) ts.tv_sec * 1000 + ts.tv_nsec / 1000000);
		*out = tv_str(xstrdup(buf));
	}
	else if (strcmp(fn, "uuid") == 0)
	{
		if (!targs(c, fn, args, nargs, 0, ""))
			return false;
		rand_uuid(buf);
		*out = tv_str(xstrdup(buf));
	}
	else
	{
		tfail(c, true, "template: template:1: function \"%s\" not defined", fn);
		return false;
	}
	return true;
}

/* A string literal, "..." with Go's common escapes or `raw`. */
static bool
tstring(tctx *c, tval *out)
{
	char		q = *c->p++;
	sbuf		b = {0};

	while (c->p < c->end && *c->p != q)
	{
		char		ch = *c->p++;

		if (q == '"' && ch == '\\' && c->p < c->end)
		{
			ch = *c->p++;
			switch (ch)
			{
				case 'n':
					ch = '\n';
					break;
				case 't':
					ch = '\t';
					break;
				case '\\':
				case '"':
					break;
				default:
					free(b.d);
					tfail(c, true, "template: template:1: unknown escape sequence");
					return false;
			}
		}
		sb_putn(&b, &ch, 1);
	}
	if (c->p >= c->end)
	{
		free(b.d);
		tfail(c, true, "template: template:1: unterminated quoted string");
		return false;
	}
	c->p++;
	*out = tv_str(sb_take(&b));
	return true;
}

/* An argument: literal, field, parenthesised pipeline or niladic call. */
static bool
toperand(tctx *c, tval *out)
{
	const char *p = c->p;

	if (*p == '"' || *p == '`')
		return tstring(c, out);
	if (isdigit((unsigned char) *p) || (*p == '-' && p + 1 < c->end && isdigit((unsigned char) p[1])))
	{
		char	   *end;
		long long	n = strtoll(p, &end, 10);

		if (end > c->end || (end < c->end && is_ident_char(*end)))
		{
			tfail(c, true, "template: template:1: bad number syntax");
			return false;
		}
		c->p = end;
		*out = tv_int(n);
		return true;
	}
	if (*p == '.')
	{
		const char *name = ++c->p;
		size_t		n;

		while (c->p < c->end && is_ident_char(*c->p))
			c->p++;
		n = (size_t) (c->p - name);
		if (n == 11 && strncmp(name, "DisplayName", n) == 0)
			*out = tv_str(xstrdup(c->display_name));
		else if (n == 8 && strncmp(name, "RoleName", n) == 0)
			*out = tv_str(xstrdup(c->role_name));
		else
		{
			tfail(c, false, "template: template:1: executing \"template\": can't evaluate field %.*s in type dbplugin.UsernameMetadata",
				  (int) n, name);
			return false;
		}
		return true;
	}
	if (*p == '(')
	{
		c->p++;
		if (!tpipeline(c, out))
			return false;
		tskip_ws(c);
		if (c->p >= c->end || *c->p != ')')
		{
			tv_free(out);
			tfail(c, true, "template: template:1: unclosed left paren");
			return false;
		}
		c->p++;
		return true;
	}
	if (is_ident_start(*p))
	{
		char		fn[64];
		size_t		n;

		while (c->p < c->end && is_ident_char(*c->p))
			c->p++;
		n = (size_t) (c->p - p);
		snprintf(fn, sizeof(fn), "%.*s", (int) n, p);
		return tcall(c, fn, NULL, 0, out);
	}
	tfail(c, true, "template: template:1: unexpected \"%c\" in operand", *p);
	return false;
}

/* A command: a function and its arguments, or one operand; piped is the
 * previous command's value, passed as the last argument. */
static bool
tcommand(tctx *c, tval *piped, tval *out)
{
	tval		args[TMPL_MAX_ARGS + 1];
	int			nargs = 0,
				i;
	char		fn[64] = "";
	bool		ok;

	tskip_ws(c);
	if (c->p >= c->end)
	{
		tfail(c, true, "template: template:1: missing value for command");
		return false;
	}
	if (is_ident_start(*c->p))
	{
		const char *start = c->p;

		while (c->p < c->end && is_ident_char(*c->p))
			c->p++;
		snprintf(fn, sizeof(fn), "%.*s", (int) (c->p - start), start);
	}
	else
	{
		if (!toperand(c, &args[0]))
			return false;
		tskip_ws(c);
		if (c->p < c->end && *c->p != '|' && *c->p != ')')
		{
			tv_free(&args[0]);
			tfail(c, true, "template: template:1: can't give argument to non-function");
			return false;
		}
		if (piped)
		{
			tv_free(&args[0]);
			tfail(c, false, "template: template:1: can't give argument to non-function");
			return false;
		}
		*out = args[0];
		return true;
	}

	for (;;)
	{
		tskip_ws(c);
		if (c->p >= c->end || *c->p == '|' || *c->p == ')')
			break;
		if (nargs == TMPL_MAX_ARGS)
		{
			tfail(c, true, "template: template:1: too many arguments");
			ok = false;
			goto done;
		}
		if (!toperand(c, &args[nargs]))
		{
			ok = false;
			goto done;
		}
		nargs++;
	}
	if (piped)
	{
		args[nargs++] = *piped;
		piped->s = NULL;
	}
	ok = tcall(c, fn, args, nargs, out);
done:
	for (i = 0; i < nargs; i++)
		tv_free(&args[i]);
	return ok;
}

static bool
tpipeline(tctx *c, tval *out)
{
	tval		cur;
	bool		have = false;

	for (;;)
	{
		tval		next;

		if (!tcommand(c, have ? &cur : NULL, &next))
		{
			if (have)
				tv_free(&cur);
			return false;
		}
		if (have)
			tv_free(&cur);
		cur = next;
		have = true;
		tskip_ws(c);
		if (c->p < c->end && *c->p == '|')
		{
			c->p++;
			continue;
		}
		break;
	}
	*out = cur;
	return true;
}

/* Find the "}}" closing an action, skipping string literals. */
static const char *
action_end(const char *p)
{
	while (*p)
	{
		if (*p == '"' || *p == '`')
		{
			char		q = *p++;

			while (*p && *p != q)
			{
				if (q == '"' && *p == '\\' && p[1])
					p++;
				p++;
			}
			if (*p)
				p++;
			continue;
		}
		if (p[0] == '}' && p[1] == '}')
			return p;
		p++;
	}
	return NULL;
}

/*
 * Run a username template.  NULL and a message on error; *parse_error
 * tells a syntax error from a failed function call, as Vault reports them
 * differently.
 */
static char *
username_template_run(const char *tmpl, const char *display_name,
					  const char *role_name, bool *parse_error,
					  char *err, size_t errlen)
{
	sbuf		b = {0};
	const char *p = tmpl;
	bool		trim_next = false;
	tctx		c = {0};

	c.display_name = display_name;
	c.role_name = role_name;
	c.err = err;
	c.errlen = errlen;
	while (*p)
	{
		const char *open = strstr(p, "{{");
		const char *text_end = open ? open : p + strlen(p);
		const char *body,
				   *close,
				   *body_end;
		bool		trim_after = false;
		tval		v;

		if (trim_next)
			while (p < text_end && isspace((unsigned char) *p))
				p++;
		body = open ? open + 2 : NULL;
		if (body && body[0] == '-' && isspace((unsigned char) body[1]))
		{
			while (text_end > p && isspace((unsigned char) text_end[-1]))
				text_end--;
			body++;
		}
		sb_putn(&b, p, (size_t) (text_end - p));
		if (open == NULL)
			break;
		close = action_end(body);
		if (close == NULL)
		{
			tfail(&c, true, "template: template:1: unclosed action");
			break;
		}
		body_end = close;
		if (body_end - body >= 2 && body_end[-1] == '-' && isspace((unsigned char) body_end[-2]))
		{
			body_end--;
			trim_after = true;
		}
		p = close + 2;
		trim_next = trim_after;

		c.p = body;
		c.end = body_end;
		tskip_ws(&c);
		if (c.end - c.p >= 2 && c.p[0] == '/' && c.p[1] == '*')
			continue;			/* a comment */
		if (c.p >= c.end)
		{
			tfail(&c, true, "template: template:1: missing value for command");
			break;
		}
		if (!tpipeline(&c, &v))
			break;
		tskip_ws(&c);
		if (c.p < c.end)
		{
			tv_free(&v);
			tfail(&c, true, "template: template:1: unexpected \"%c\" in command", *c.p);
			break;
		}
		{
			char	   *t = tv_text(&v);

			sb_puts(&b, t);
			free(t);
			tv_free(&v);
		}
	}
	if (c.failed)
	{
		free(b.d);
		if (parse_error)
			*parse_error = c.parse_error;
		return NULL;
	}
	return sb_take(&b);
}

/* The checks of the plugin's Initialize(): parse, then one trial run. */
static bool
username_template_check(const char *tmpl, char *err, size_t errlen)
{
	char		msg[ERRLEN];
	bool		parse_error = false;
	char	   *out = username_template_run(tmpl, "", "", &parse_error, msg, sizeof(msg));

	if (out)
	{
		free(out);
		return true;
	}
	if (parse_error)
		seterr(err, errlen, "unable to initialize username template: unable to parse template: %s", msg);
	else
		seterr(err, errlen, "invalid username template: unable to apply template: %s", msg);
	return false;
}

/* ---- passwords ---- */

/*
 * Vault's default password (random.DefaultStringGenerator): 20 characters
 * from [a-zA-Z0-9-] with at least one lower case letter, one upper case
 * letter, one digit and one dash.
 */
static void
generate_password(char out[PASSWORD_LEN + 1])
{
	static const char charset[] =
		"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-";
	const size_t n = sizeof(charset) - 1;	/* 63 */

	for (;;)
	{
		bool		lower = false,
					upper = false,
					digit = false,
					dash = false;
		size_t		i = 0;

		while (i < PASSWORD_LEN)
		{
			unsigned char b[32];
			size_t		j;

			rand_bytes(b, sizeof(b));
			/* rejection sampling keeps the distribution uniform */
			for (j = 0; j < sizeof(b) && i < PASSWORD_LEN; j++)
				if (b[j] < 252)
					out[i++] = charset[b[j] % n];
		}
		out[PASSWORD_LEN] = '\0';
		for (i = 0; i < PASSWORD_LEN; i++)
		{
			char		ch = out[i];

			lower |= islower((unsigned char) ch) != 0;
			upper |= isupper((unsigned char) ch) != 0;
			digit |= isdigit((unsigned char) ch) != 0;
			dash |= ch == '-';
		}
		if (lower && upper && digit && dash)
			return;
	}
}

/*
 * password_authentication = scram-sha-256: the plugin sends PostgreSQL a
 * SCRAM-SHA-256 verifier (RFC 5802/7677, as PostgreSQL stores it) instead
 * of the password, so the password itself never reaches the server.
 */
static char *
scram_verifier(const char *password)
{
	unsigned char salt[SCRAM_SALT_LEN];
	unsigned char salted[SHA256_DIGEST_LENGTH];
	unsigned char client_key[SHA256_DIGEST_LENGTH];
	unsigned char stored_key[SHA256_DIGEST_LENGTH];
	unsigned char server_key[SHA256_DIGEST_LENGTH];
	unsigned int mdlen;
	char		salt64[64],
				stored64[64],
				server64[64];
	char	   *out;

	rand_bytes(salt, sizeof(salt));
	if (PKCS5_PBKDF2_HMAC(password, (int) strlen(password), salt, sizeof(salt),
						  SCRAM_ITERATIONS, EVP_sha256(), sizeof(salted), salted) != 1 ||
		HMAC(EVP_sha256(), salted, sizeof(salted), (const unsigned char *) "Client Key", 10,
			 client_key, &mdlen) == NULL ||
		HMAC(EVP_sha256(), salted, sizeof(salted), (const unsigned char *) "Server Key", 10,
			 server_key, &mdlen) == NULL)
		return NULL;
	SHA256(client_key, sizeof(client_key), stored_key);
	vc_b64_encode(salt, sizeof(salt), salt64);
	vc_b64_encode(stored_key, sizeof(stored_key), stored64);
	vc_b64_encode(server_key, sizeof(server_key), server64);
	if (asprintf(&out, "SCRAM-SHA-256$%d:%s$%s:%s", SCRAM_ITERATIONS, salt64, stored64, server64) < 0)
		abort();
	explicit_bzero(salted, sizeof(salted));
	explicit_bzero(client_key, sizeof(client_key));
	return out;
}

/* ---- statements ---- */

/*
 * Vault's TypeStringSlice: a JSON list (elements trimmed; numbers and
 * booleans weakly converted), or one string taken as one element.
 */
static json_t *
req_stmt_list(const vreq *req, const char *key, vresp *resp, bool *ok)
{
	json_t	   *v = json_object_get(req->data, key);
	json_t	   *out = json_array();

	if (json_is_string(v))
	{
		if (json_string_length(v) > 0)
		{
			char	   *t = trimmed_copy(json_string_value(v), json_string_length(v));

			json_array_append_new(out, json_string(t));
			free(t);
		}
	}
	else if (json_is_array(v))
	{
		size_t		i;
		json_t	   *e;

		json_array_foreach(v, i, e)
		{
			char	   *s;
			char		num[64];

			if (json_is_string(e))
				s = trimmed_copy(json_string_value(e), json_string_length(e));
			else if (json_is_integer(e))
			{
				snprintf(num, sizeof(num), "%lld", (long long) json_integer_value(e));
				s = xstrdup(num);
			}
			else if (json_is_boolean(e))
				s = xstrdup(json_is_true(e) ? "1" : "0");
			else
			{
				json_decref(out);
				*ok = false;
				resp_error(resp, 400, "error converting input for field \"%s\": expected a list of strings", key);
				return NULL;
			}
			json_array_append_new(out, json_string(s));
			free(s);
		}
	}
	else if (v != NULL && !json_is_null(v))
	{
		json_decref(out);
		*ok = false;
		resp_error(resp, 400, "error converting input for field \"%s\": expected a list of strings", key);
		return NULL;
	}
	return out;
}

/* strutil.RemoveEmpty */
static json_t *
remove_empty(json_t *list)
{
	json_t	   *out = json_array();
	size_t		i;
	json_t	   *e;

	json_array_foreach(list, i, e)
		if (json_string_length(e) > 0)
		json_array_append(out, e);
	json_decref(list);
	return out;
}

/*
 * strutil.ParseArbitraryStringSlice(input, ";"): base64 of either form is
 * decoded first; a JSON list of strings is taken as is; anything else is
 * split on ';'.  Pieces are trimmed and empty ones dropped.
 */
static json_t *
parse_arbitrary(const char *input)
{
	json_t	   *out = json_array();
	char	   *in = trimmed_copy(input, strlen(input));
	size_t		n = strlen(in);
	json_t	   *parsed;
	char	   *save = NULL,
			   *tok;

	if (n == 0)
	{
		free(in);
		return out;
	}
	{
		/* Go's base64 decoder skips line breaks, as base64(1) writes them */
		char	   *flat = xmalloc(n + 1);
		size_t		flen = 0,
					k;
		unsigned char *dec = xmalloc(vc_b64_decoded_maxlen(n) + 1);
		long		got;

		for (k = 0; k < n; k++)
			if (in[k] != '\r' && in[k] != '\n')
				flat[flen++] = in[k];
		flat[flen] = '\0';
		got = vc_b64_decode(flat, flen, dec);
		free(flat);
		if (got >= 0)
		{
			dec[got] = '\0';
			free(in);
			in = (char *) dec;
		}
		else
			free(dec);
	}
	parsed = json_loads(in, JSON_DECODE_ANY, NULL);
	if (json_is_array(parsed))
	{
		size_t		i;
		json_t	   *e;
		bool		all_strings = true;

		json_array_foreach(parsed, i, e)
			all_strings &= json_is_string(e);
		if (all_strings)
		{
			json_array_foreach(parsed, i, e)
			{
				char	   *t = trimmed_copy(json_string_value(e), json_string_length(e));

				if (*t)
					json_array_append_new(out, json_string(t));
				free(t);
			}
			json_decref(parsed);
			free(in);
			return out;
		}
	}
	json_decref(parsed);
	for (tok = strtok_r(in, ";", &save); tok; tok = strtok_r(NULL, ";", &save))
	{
		char	   *t = trimmed_copy(tok, strlen(tok));

		if (*t)
			json_array_append_new(out, json_string(t));
		free(t);
	}
	free(in);
	return out;
}

/*
 * The plugin's containsMultilineStatement(): a statement with the word END
 * outside quotes (a DO block, a function body) is run whole rather than
 * split on ';'.
 */
static bool
is_multiline(const char *stmt)
{
	const char *p = stmt;
	bool		prev_word = false;

	while (*p)
	{
		if (*p == '"' || *p == '\'')
		{
			const char *close = strchr(p + 1, *p);

			if (close)
			{
				p = close + 1;
				prev_word = false;
				continue;
			}
		}
		if (!prev_word && strncmp(p, "END", 3) == 0 && !is_ident_char(p[3]))
			return true;
		prev_word = is_ident_char(*p);
		p++;
	}
	return false;
}

/* dbutil.QueryHelper: replace {{key}} (spaces inside allowed) by value. */
static char *
template_query(const char *q, const tvar *vars, int nvars)
{
	sbuf		b = {0};
	const char *p = q;

	while (*p)
	{
		const char *open = strstr(p, "{{");
		const char *close;
		const char *k;
		size_t		klen;
		int			i;
		bool		done = false;

		if (open == NULL)
			break;
		close = open + 2;
		while (*close && *close != '{' && *close != '}')
			close++;
		if (close[0] != '}' || close[1] != '}' || close == open + 2)
		{
			sb_putn(&b, p, (size_t) (open + 2 - p));
			p = open + 2;
			continue;
		}
		sb_putn(&b, p, (size_t) (open - p));
		k = open + 2;
		while (k < close && isspace((unsigned char) *k))
			k++;
		klen = (size_t) (close - k);
		while (klen > 0 && isspace((unsigned char) k[klen - 1]))
			klen--;
		for (i = 0; i < nvars && !done; i++)
			if (strlen(vars[i].key) == klen && strncmp(vars[i].key, k, klen) == 0)
			{
				sb_puts(&b, vars[i].value);
				done = true;
			}
		if (!done)
			sb_putn(&b, open, (size_t) (close + 2 - open));
		p = close + 2;
	}
	sb_puts(&b, p);
	return sb_take(&b);
}

/* ---- libpq ---- */

static void
discard_notice(void *arg, const char *message)
{
	/* REVOKE of what was never granted warns; nothing to report */
}

/* libpq's message on one line, without the trailing newline. */
static void
one_line(const char *msg, char *out, size_t len)
{
	size_t		i = 0;
	const char *p;

	for (p = msg; *p && i + 1 < len; p++)
	{
		if (*p == '\n' || *p == '\r' || *p == '\t')
		{
			if (i > 0 && out[i - 1] != ' ' && p[1] != '\0')
				out[i++] = ' ';
			continue;
		}
		out[i++] = *p;
	}
	while (i > 0 && out[i - 1] == ' ')
		i--;
	out[i] = '\0';
}

/* A failed result as pgx prints it: "ERROR: msg (SQLSTATE xxxxx)". */
static void
pg_result_error(PGconn *conn, PGresult *res, char *err, size_t errlen)
{
	const char *sev = res ? PQresultErrorField(res, PG_DIAG_SEVERITY_NONLOCALIZED) : NULL;
	const char *msg = res ? PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY) : NULL;
	const char *code = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;

	if (msg)
		seterr(err, errlen, "%s: %s (SQLSTATE %s)", sev ? sev : "ERROR", msg, code ? code : "XX000");
	else
	{
		char		line[ERRLEN];

		one_line(PQerrorMessage(conn), line, sizeof(line));
		seterr(err, errlen, "%s", *line ? line : "the connection to the database was lost");
	}
}

static bool
pg_exec(PGconn *conn, const char *sql, char *err, size_t errlen)
{
	PGresult   *res = PQexec(conn, sql);
	ExecStatusType st = res ? PQresultStatus(res) : PGRES_FATAL_ERROR;
	bool		ok = st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK || st == PGRES_EMPTY_QUERY;

	if (!ok)
		pg_result_error(conn, res, err, errlen);
	PQclear(res);
	return ok;
}

/* One value of a one-parameter query; malloc'd, NULL on error. */
static char *
pg_value(PGconn *conn, const char *sql, const char *param, char *err, size_t errlen)
{
	PGresult   *res = PQexecParams(conn, sql, param ? 1 : 0, NULL,
								   param ? &param : NULL, NULL, NULL, 0);
	char	   *v = NULL;

	if (res && PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) == 1)
		v = xstrdup(PQgetisnull(res, 0, 0) ? "" : PQgetvalue(res, 0, 0));
	else
		pg_result_error(conn, res, err, errlen);
	PQclear(res);
	return v;
}

/*
 * Go's url.PathEscape, which connutil applies to the username and the
 * password before putting them into connection_url.
 */
static char *
path_escape(const char *s)
{
	sbuf		b = {0};
	const unsigned char *p;

	for (p = (const unsigned char *) s; *p; p++)
	{
		if (isalnum(*p) || strchr("-_.~$&+:=@", *p))
			sb_putn(&b, (const char *) p, 1);
		else
		{
			char		e[4];

			snprintf(e, sizeof(e), "%%%02X", *p);
			sb_puts(&b, e);
		}
	}
	return sb_take(&b);
}

/* connection_url with {{username}} and {{password}} filled in. */
static char *
connection_string(const pg_settings *s)
{
	char	   *user = s->disable_escaping ? xstrdup(s->username) : path_escape(s->username ? s->username : "");
	char	   *pass = s->disable_escaping ? xstrdup(s->password) : path_escape(s->password ? s->password : "");
	tvar		vars[] = {{"username", user}, {"password", pass}};
	char	   *url = template_query(s->url, vars, 2);

	explicit_bzero(pass, strlen(pass));
	free(user);
	free(pass);
	return url;
}

/*
 * Open a connection.  Our defaults come before connection_url so that the
 * URL can override them: a 5 s connect timeout, keepalives that notice a
 * vanished server, and application_name "vault" as Vault sets it.
 */
static PGconn *
pg_connect(const pg_settings *s, char *err, size_t errlen)
{
	char	   *url = connection_string(s);
	const char *const keys[] = {"connect_timeout", "keepalives_idle", "keepalives_interval",
		"keepalives_count", "fallback_application_name", "dbname", NULL};
	const char *const vals[] = {"5", "10", "5", "3", "vault", url, NULL};
	PGconn	   *conn = PQconnectdbParams(keys, vals, 1);

	explicit_bzero(url, strlen(url));
	free(url);
	if (conn == NULL)
	{
		seterr(err, errlen, "out of memory");
		return NULL;
	}
	if (PQstatus(conn) != CONNECTION_OK)
	{
		one_line(PQerrorMessage(conn), err, errlen);
		PQfinish(conn);
		return NULL;
	}
	PQsetNoticeProcessor(conn, discard_notice, NULL);
	if (!pg_exec(conn, "SET statement_timeout = '10s'", err, errlen) ||
		!pg_exec(conn, "SET TIME ZONE 'UTC'", err, errlen))
	{
		PQfinish(conn);
		return NULL;
	}
	return conn;
}

/*
 * The config's connection, (re)opened when missing or no longer usable,
 * like connutil's ping before use.  NULL and a (redacted) message when the
 * database cannot be reached.
 */
static PGconn *
config_conn(db_config *c, const pg_settings *s, char *err, size_t errlen)
{
	if (c->conn)
	{
		char		ignored[ERRLEN];

		if (PQstatus(c->conn) == CONNECTION_OK &&
			PQtransactionStatus(c->conn) != PQTRANS_IDLE)
			pg_exec(c->conn, "ROLLBACK", ignored, sizeof(ignored));
		if (PQstatus(c->conn) != CONNECTION_OK ||
			PQtransactionStatus(c->conn) != PQTRANS_IDLE ||
			!pg_exec(c->conn, "", ignored, sizeof(ignored)))
			config_close(c);
	}
	if (c->conn == NULL)
	{
		char		msg[ERRLEN];

		c->conn = pg_connect(s, msg, sizeof(msg));
		if (c->conn == NULL)
		{
			const char *secrets[2];
			char	   *esc = path_escape(s->password ? s->password : "");
			char	   *r;

			secrets[0] = s->password;
			secrets[1] = esc;
			r = redact(msg, secrets, 2);
			seterr(err, errlen, "%s", r);
			free(r);
			free(esc);
			return NULL;
		}
	}
	return c->conn;
}

/*
 * Run statement lists (each element: one statement, or several to be
 * split, see parse_arbitrary) with vars substituted.  Inside a transaction
 * when tx.  The message says which step failed, as the plugin's do.
 */
static bool
run_statements(PGconn *conn, json_t *lists, const tvar *vars, int nvars,
			   bool tx, char *err, size_t errlen)
{
	size_t		i;
	json_t	   *e;
	char		msg[ERRLEN];

	if (tx && !pg_exec(conn, "BEGIN", msg, sizeof(msg)))
	{
		seterr(err, errlen, "unable to start transaction: %s", msg);
		return false;
	}
	json_array_foreach(lists, i, e)
	{
		const char *stmt = json_string_value(e);
		json_t	   *pieces;
		size_t		j;
		json_t	   *q;

		if (stmt == NULL)
			continue;
		if (is_multiline(stmt))
			pieces = json_pack("[s]", stmt);
		else
			pieces = parse_arbitrary(stmt);
		json_array_foreach(pieces, j, q)
		{
			char	   *sql = template_query(json_string_value(q), vars, nvars);
			bool		ok = pg_exec(conn, sql, msg, sizeof(msg));

			explicit_bzero(sql, strlen(sql));
			free(sql);
			if (!ok)
			{
				json_decref(pieces);
				seterr(err, errlen, "failed to execute query: %s", msg);
				if (tx)
					pg_exec(conn, "ROLLBACK", msg, sizeof(msg));
				return false;
			}
		}
		json_decref(pieces);
	}
	if (tx && !pg_exec(conn, "COMMIT", msg, sizeof(msg)))
	{
		seterr(err, errlen, "%s", msg);
		return false;
	}
	return true;
}

/*
 * The plugin's defaultDeleteUser(): revoke what the role was granted (per
 * schema it has grants in, then public's tables, sequences and usage, and
 * CONNECT on the current database), then DROP ROLE IF EXISTS.  Vault looks
 * only at information_schema.role_column_grants; role_table_grants is
 * added here so that schemas holding only non-column privileges (DELETE,
 * TRUNCATE, ...) are revoked too and cannot block the DROP.
 *
 * A session of the role that is still connected does not stop this:
 * PostgreSQL's DROP ROLE does not check for sessions, so the role goes at
 * once and the session stays connected, but with every privilege revoked
 * first it can no longer read the tables it was granted, and its next
 * login fails because the role no longer exists.  Like Vault's default
 * statements, this does not terminate the session (pg_terminate_backend);
 * revocation_statements can, for example
 * SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = '{{name}}'.
 * DROP ROLE does fail while the role still owns objects (a table it
 * created, or a temporary table of a live session): then the lease is
 * kept and the revocation retried.
 */
static bool
default_revoke(PGconn *conn, const char *username, char *err, size_t errlen)
{
	char		msg[ERRLEN];
	char	   *exists,
			   *dbname,
			   *quser,
			   *last_error = NULL;
	PGresult   *res;
	const char *param = username;
	sbuf		stmts = {0};
	int			i;
	bool		ok = true;

	exists = pg_value(conn, "SELECT exists (SELECT rolname FROM pg_roles WHERE rolname=$1)",
					  username, msg, sizeof(msg));
	if (exists == NULL)
	{
		seterr(err, errlen, "%s", msg);
		return false;
	}
	if (strcmp(exists, "t") != 0)
	{
		free(exists);
		return true;
	}
	free(exists);

	quser = PQescapeIdentifier(conn, username, strlen(username));
	if (quser == NULL)
	{
		one_line(PQerrorMessage(conn), err, errlen);
		return false;
	}

	/* statements separated by NULs in one buffer */
	res = PQexecParams(conn,
					   "SELECT DISTINCT table_schema FROM information_schema.role_column_grants WHERE grantee=$1 "
					   "UNION SELECT DISTINCT table_schema FROM information_schema.role_table_grants WHERE grantee=$1",
					   1, NULL, &param, NULL, NULL, 0);
	if (res == NULL || PQresultStatus(res) != PGRES_TUPLES_OK)
	{
		pg_result_error(conn, res, msg, sizeof(msg));
		seterr(err, errlen, "%s", msg);
		PQclear(res);
		PQfreemem(quser);
		return false;
	}
	for (i = 0; i < PQntuples(res); i++)
	{
		const char *schema = PQgetvalue(res, i, 0);
		char	   *qschema = PQescapeIdentifier(conn, schema, strlen(schema));
		char	   *s;

		if (qschema == NULL)
			continue;
		if (asprintf(&s, "REVOKE ALL PRIVILEGES ON ALL TABLES IN SCHEMA %s FROM %s;", qschema, quser) < 0)
			abort();
		sb_putn(&stmts, s, strlen(s) + 1);
		free(s);
		if (asprintf(&s, "REVOKE USAGE ON SCHEMA %s FROM %s;", qschema, quser) < 0)
			abort();
		sb_putn(&stmts, s, strlen(s) + 1);
		free(s);
		PQfreemem(qschema);
	}
	PQclear(res);
	{
		const char *fmts[] = {
			"REVOKE ALL PRIVILEGES ON ALL TABLES IN SCHEMA public FROM %s;",
			"REVOKE ALL PRIVILEGES ON ALL SEQUENCES IN SCHEMA public FROM %s;",
			"REVOKE USAGE ON SCHEMA public FROM %s;",
		};
		size_t		k;

		for (k = 0; k < sizeof(fmts) / sizeof(fmts[0]); k++)
		{
			char	   *s;

			if (asprintf(&s, fmts[k], quser) < 0)
				abort();
			sb_putn(&stmts, s, strlen(s) + 1);
			free(s);
		}
	}
	dbname = pg_value(conn, "SELECT current_database()", NULL, msg, sizeof(msg));
	if (dbname == NULL)
	{
		seterr(err, errlen, "%s", msg);
		free(stmts.d);
		PQfreemem(quser);
		return false;
	}
	if (*dbname)
	{
		char	   *qdb = PQescapeIdentifier(conn, dbname, strlen(dbname));
		char	   *s;

		if (qdb)
		{
			if (asprintf(&s, "REVOKE CONNECT ON DATABASE %s FROM %s;", qdb, quser) < 0)
				abort();
			sb_putn(&stmts, s, strlen(s) + 1);
			free(s);
			PQfreemem(qdb);
		}
	}
	free(dbname);

	/* not in a transaction: take away as much as possible even on errors */
	{
		size_t		off = 0;

		while (off < stmts.len)
		{
			const char *s = stmts.d + off;

			if (!pg_exec(conn, s, msg, sizeof(msg)))
			{
				free(last_error);
				last_error = xstrdup(msg);
			}
			off += strlen(s) + 1;
		}
	}
	free(stmts.d);
	if (last_error)
	{
		seterr(err, errlen, "could not perform all revocation statements: %s", last_error);
		free(last_error);
		PQfreemem(quser);
		return false;
	}
	{
		char	   *drop;

		if (asprintf(&drop, "DROP ROLE IF EXISTS %s;", quser) < 0)
			abort();
		ok = pg_exec(conn, drop, msg, sizeof(msg));
		free(drop);
		if (!ok)
			seterr(err, errlen, "%s", msg);
	}
	PQfreemem(quser);
	return ok;
}

/* ---- request helpers ---- */

static bool
is_write(const vreq *req)
{
	return req->op == OP_CREATE || req->op == OP_UPDATE;
}

/* Go's %q of a name that valid_name() accepted. */
static void
quoted(const char *s, char *out, size_t len)
{
	snprintf(out, len, "\"%s\"", s);
}

/* strutil.StrListContainsGlob with go-glob's '*' wildcard. */
static bool
glob_match(const char *pat, const char *s)
{
	if (*pat == '\0')
		return *s == '\0';
	if (*pat == '*')
	{
		while (*pat == '*')
			pat++;
		if (*pat == '\0')
			return true;
		for (; *s; s++)
			if (glob_match(pat, s))
				return true;
		return false;
	}
	return *s == *pat && glob_match(pat + 1, s + 1);
}

static bool
role_allowed(const db_config *c, const char *role)
{
	size_t		i;
	json_t	   *e;

	json_array_foreach(c->allowed_roles, i, e)
	{
		const char *a = json_string_value(e);

		if (a && (strcmp(a, "*") == 0 || glob_match(a, role)))
			return true;
	}
	return false;
}

/*
 * connection_url as a read shows it: Go's url.Redacted() replaces a
 * password in the URL's userinfo by "xxxxx" when the URL parses (a
 * templated "{{password}}" does not, so it is shown as written).
 */
static json_t *
redacted_url(const char *url)
{
	const char *scheme_end = strstr(url, "://");
	const char *auth,
			   *at,
			   *colon,
			   *p;
	sbuf		b = {0};
	json_t	   *v;

	if (scheme_end == NULL)
		return json_string(url);
	auth = scheme_end + 3;
	at = NULL;
	for (p = auth; *p && *p != '/' && *p != '?' && *p != '#'; p++)
		if (*p == '@')
			at = p;
	if (at == NULL)
		return json_string(url);
	colon = memchr(auth, ':', (size_t) (at - auth));
	if (colon == NULL)
		return json_string(url);
	for (p = auth; p < at; p++)
		if (!(isalnum((unsigned char) *p) || strchr("-._~!$&'()*+,;=:%@", *p)))
			return json_string(url);
	sb_putn(&b, url, (size_t) (colon + 1 - url));
	sb_puts(&b, "xxxxx");
	sb_puts(&b, at);
	v = json_string(b.d);
	free(b.d);
	return v;
}

static bool
url_has_password(const char *url)
{
	json_t	   *r = redacted_url(url);
	bool		has = strcmp(json_string_value(r), url) != 0;

	json_decref(r);
	return has;
}

/* ---- config/:name, config/, reset/:name, rotate-root/:name ---- */

static void
config_read(db_state *st, const char *name, vresp *resp)
{
	db_config  *c = config_find(st, name);
	json_t	   *details;
	const char *url;

	if (c == NULL)
	{
		resp_not_found(resp);
		return;
	}
	details = json_deep_copy(c->details);
	json_object_del(details, "password");
	json_object_del(details, "private_key");
	url = jstr(details, "connection_url");
	if (url)
		json_object_set_new(details, "connection_url", redacted_url(url));
	resp->data = json_pack("{s:O, s:o, s:s, s:s, s:s, s:O, s:b}",
						   "allowed_roles", c->allowed_roles,
						   "connection_details", details,
						   "password_policy", c->password_policy,
						   "plugin_name", c->plugin_name,
						   "plugin_version", c->plugin_version,
						   "root_credentials_rotate_statements", c->root_rotation_statements,
						   "verify_connection", c->verify_connection);
}

static void
config_write(db_state *st, const char *name, vreq *req, vresp *resp)
{
	static const char *const not_details[] = {
		"name", "plugin_name", "plugin_version", "allowed_roles", "verify_connection",
		"root_rotation_statements", "password_policy", NULL
	};
	db_config  *old = config_find(st, name);
	bool		create = req->op == OP_CREATE || old == NULL;
	bool		ok = true;
	bool		verify = req_bool(req, "verify_connection", true, &ok, resp);
	db_config  *c;
	const char *k;
	json_t	   *v;
	pg_settings s;
	char		err[ERRLEN];
	const char *const *nd;

	if (!ok)
		return;
	c = calloc(1, sizeof(*c));
	if (c == NULL)
		abort();
	c->name = xstrdup(name);
	c->verify_connection = verify;

	if (req_has(req, "plugin_name"))
		c->plugin_name = xstrdup(req_str(req, "plugin_name"));
	else
		c->plugin_name = xstrdup(create ? "" : old->plugin_name);
	if (*c->plugin_name == '\0')
	{
		resp_error(resp, 400, "empty plugin name");
		goto fail;
	}
	if (req_has(req, "plugin_version"))
		c->plugin_version = xstrdup(req_str(req, "plugin_version"));
	else
		c->plugin_version = xstrdup(create ? "" : old->plugin_version);

	if (req_has(req, "allowed_roles"))
		c->allowed_roles = req_strlist(req, "allowed_roles");
	else
		c->allowed_roles = create ? json_array() : json_deep_copy(old->allowed_roles);
	if (req_has(req, "root_rotation_statements"))
	{
		c->root_rotation_statements = req_stmt_list(req, "root_rotation_statements", resp, &ok);
		if (!ok)
			goto fail;
	}
	else
		c->root_rotation_statements = create ? json_array() :
			json_deep_copy(old->root_rotation_statements);
	if (req_has(req, "password_policy"))
		c->password_policy = xstrdup(req_str(req, "password_policy"));
	else
		c->password_policy = xstrdup(create ? "" : old->password_policy);

	/* everything else is the plugin's: merged into the old on update */
	c->details = create ? json_object() : json_deep_copy(old->details);
	json_object_foreach(req->data, k, v)
	{
		for (nd = not_details; *nd; nd++)
			if (strcmp(k, *nd) == 0)
				break;
		if (*nd == NULL)
			json_object_set(c->details, k, v);
	}

	if (strcmp(c->plugin_name, PLUGIN_NAME) != 0)
	{
		resp_error(resp, 400, "error creating database object: plugin not found in the catalog: %s",
				   c->plugin_name);
		goto fail;
	}
	if (*c->plugin_version)
	{
		resp_error(resp, 400, "error creating database object: plugin %s version %s not found in the catalog",
				   c->plugin_name, c->plugin_version);
		goto fail;
	}
	if (!settings_decode(c->details, &s, err, sizeof(err)))
	{
		resp_error(resp, 400, "error creating database object: %s", err);
		goto fail;
	}
	if (verify)
	{
		c->conn = config_conn(c, &s, err, sizeof(err));
		if (c->conn == NULL)
		{
			resp_error(resp, 400, "error creating database object: error verifying connection: %s", err);
			goto fail;
		}
	}
	if (url_has_password(s.url))
		resp_warn(resp, "Password found in connection_url, use a templated url to enable root rotation and prevent read access to password information.");
	config_put(st, c);			/* closes the old connection */
	resp->dirty = true;
	return;

fail:
	config_free(c);
}

static void
config_list(db_state *st, vresp *resp)
{
	json_t	   *keys = json_array();
	db_config  *c;

	for (c = st->configs; c; c = c->next)
		json_array_append_new(keys, json_string(c->name));
	resp_list(resp, keys);
}

/* The config a role or lease names, or a Go error in err. */
static db_config *
config_for(db_state *st, const char *db_name, pg_settings *s, char *err, size_t errlen)
{
	db_config  *c = config_find(st, db_name ? db_name : "");
	char		msg[ERRLEN];

	if (c == NULL)
	{
		seterr(err, errlen, "failed to find entry for connection with name: \"%s\"", db_name ? db_name : "");
		return NULL;
	}
	if (!settings_decode(c->details, s, msg, sizeof(msg)))
	{
		seterr(err, errlen, "%s", msg);
		return NULL;
	}
	return c;
}

static void
config_reset(db_state *st, const char *name, vresp *resp)
{
	pg_settings s;
	char		err[ERRLEN];
	db_config  *c = config_for(st, name, &s, err, sizeof(err));

	if (c == NULL)
	{
		resp_go_error(resp, err);
		return;
	}
	config_close(c);
	if (config_conn(c, &s, err, sizeof(err)) == NULL)
	{
		char		full[ERRLEN + 64];

		seterr(full, sizeof(full), "error verifying connection: %s", err);
		resp_go_error(resp, full);
	}
}

/*
 * rotate-root: a new password for the configured user, set through the
 * root rotation statements (default ALTER ROLE ... WITH PASSWORD), then
 * kept in the config; the connection is reopened with it on next use.
 */
static void
config_rotate_root(db_state *st, const char *name, vresp *resp)
{
	pg_settings s;
	char		err[ERRLEN];
	char		password[PASSWORD_LEN + 1];
	char	   *sent = NULL;
	db_config  *c = config_for(st, name, &s, err, sizeof(err));
	PGconn	   *conn;
	json_t	   *stmts;
	const char *secrets[2];
	char	   *r;
	bool		ok;

	if (c == NULL)
	{
		resp_go_error(resp, err);
		return;
	}
	if (s.username == NULL || *s.username == '\0' || s.password == NULL || *s.password == '\0')
	{
		resp_go_error(resp, "unable to rotate root credentials: no username or password in the configuration");
		return;
	}
	conn = config_conn(c, &s, err, sizeof(err));
	if (conn == NULL)
	{
		char		full[ERRLEN + 64];

		seterr(full, sizeof(full), "unable to get connection: %s", err);
		resp_go_error(resp, full);
		return;
	}
	generate_password(password);
	if (s.scram && (sent = scram_verifier(password)) == NULL)
	{
		resp_go_error(resp, "unable to scram-sha256 password");
		explicit_bzero(password, sizeof(password));
		return;
	}
	{
		tvar		vars[] = {{"name", s.username}, {"username", s.username},
		{"password", sent ? sent : password}};

		stmts = json_array_size(c->root_rotation_statements) > 0 ?
			json_incref(c->root_rotation_statements) : json_pack("[s]", DEFAULT_ROTATE_SQL);
		ok = run_statements(conn, stmts, vars, 3, true, err, sizeof(err));
		json_decref(stmts);
	}
	secrets[0] = password;
	secrets[1] = sent;
	if (!ok)
	{
		r = redact(err, secrets, 2);
		resp_go_error(resp, r);
		free(r);
	}
	else
	{
		json_object_set_new(c->details, "password", json_string(password));
		config_close(c);
		resp->dirty = true;
	}
	explicit_bzero(password, sizeof(password));
	if (sent)
	{
		explicit_bzero(sent, strlen(sent));
		free(sent);
	}
}

/* ---- roles/:name, roles/ ---- */

static void
role_read(db_state *st, const char *name, vresp *resp)
{
	db_role    *r = role_find(st, name);

	if (r == NULL)
	{
		resp_not_found(resp);
		return;
	}
	resp->data = json_pack("{s:s, s:O, s:O, s:O, s:O, s:I, s:I, s:s}",
						   "db_name", r->db_name,
						   "creation_statements", r->creation,
						   "revocation_statements", r->revocation,
						   "rollback_statements", r->rollback,
						   "renew_statements", r->renew,
						   "default_ttl", (json_int_t) r->default_ttl,
						   "max_ttl", (json_int_t) r->max_ttl,
						   "credential_type", "password");
}

static void
role_write(db_state *st, const char *name, vreq *req, vresp *resp)
{
	db_role    *old = role_find(st, name);
	bool		create = req->op == OP_CREATE || old == NULL;
	bool		ok = true;
	db_role    *r = xcalloc(sizeof(*r));
	struct
	{
		const char *key;
		json_t	  **field;
		json_t	   *old;
	}			lists[] = {
		{"creation_statements", &r->creation, old ? old->creation : NULL},
		{"revocation_statements", &r->revocation, old ? old->revocation : NULL},
		{"rollback_statements", &r->rollback, old ? old->rollback : NULL},
		{"renew_statements", &r->renew, old ? old->renew : NULL},
	};
	size_t		i;

	r->name = xstrdup(name);
	if (req_has(req, "db_name"))
		r->db_name = xstrdup(req_str(req, "db_name"));
	else
		r->db_name = xstrdup(create ? "" : old->db_name);
	if (*r->db_name == '\0')
	{
		resp_error(resp, 400, "database name is required");
		goto fail;
	}
	if (req_has(req, "credential_type"))
	{
		const char *ct = req_str(req, "credential_type");

		if (ct == NULL || strcmp(ct, "password") != 0)
		{
			resp_error(resp, 400, "invalid credential_type \"%s\"", ct ? ct : "");
			goto fail;
		}
	}
	for (i = 0; i < sizeof(lists) / sizeof(lists[0]); i++)
	{
		if (req_has(req, lists[i].key))
		{
			*lists[i].field = req_stmt_list(req, lists[i].key, resp, &ok);
			if (!ok)
				goto fail;
		}
		else
			*lists[i].field = create ? json_array() : array_or_empty(lists[i].old);
	}
	r->revocation = remove_empty(r->revocation);
	r->default_ttl = req_has(req, "default_ttl") ? req_duration(req, "default_ttl", 0, &ok, resp) :
		(create ? 0 : old->default_ttl);
	r->max_ttl = req_has(req, "max_ttl") ? req_duration(req, "max_ttl", 0, &ok, resp) :
		(create ? 0 : old->max_ttl);
	if (!ok)
		goto fail;
	role_put(st, r);
	resp->dirty = true;
	return;

fail:
	role_free(r);
}

static void
role_list(db_state *st, vresp *resp)
{
	json_t	   *keys = json_array();
	db_role    *r;

	for (r = st->roles; r; r = r->next)
		json_array_append_new(keys, json_string(r->name));
	resp_list(resp, keys);
}

/* ---- creds/:role ---- */

static void
creds_read(vmount *m, db_state *st, const char *name, vreq *req, vresp *resp)
{
	db_role    *r = role_find(st, name);
	db_config  *c;
	pg_settings s;
	char		err[ERRLEN],
				q[300],
				expiration[40],
				password[PASSWORD_LEN + 1];
	char	   *sent = NULL,
			   *username;
	bool		parse_error;
	PGconn	   *conn;
	int64_t		now = now_unix(),
				ttl;
	json_t	   *internal;
	vlease	   *l;
	const char *secrets[4];
	bool		ok;

	if (r == NULL)
	{
		resp_error(resp, 400, "unknown role: %s", name);
		return;
	}
	c = config_for(st, r->db_name, &s, err, sizeof(err));
	if (c == NULL)
	{
		resp_go_error(resp, err);
		return;
	}
	if (!role_allowed(c, name))
	{
		quoted(name, q, sizeof(q));
		seterr(err, sizeof(err), "%s is not an allowed role", q);
		resp_go_error(resp, err);
		return;
	}
	ttl = calculate_ttl(m, 0, r->default_ttl, 0, r->max_ttl, 0, now, NULL);
	format_expiration(now + (ttl > 0 ? ttl : 0) + EXPIRATION_SLACK, expiration, sizeof(expiration));
	if (*c->password_policy)
	{
		resp_go_error(resp, "unable to generate password: password policy not found");
		return;
	}
	if (json_array_size(r->creation) == 0)
	{
		resp_go_error(resp, "empty creation statements");
		return;
	}
	username = username_template_run(s.username_template,
									 req->token ? req->token->display_name : "",
									 name, &parse_error, err, sizeof(err));
	if (username == NULL)
	{
		char		full[ERRLEN + 64];

		seterr(full, sizeof(full), "unable to apply template: %s", err);
		resp_go_error(resp, full);
		return;
	}
	conn = config_conn(c, &s, err, sizeof(err));
	if (conn == NULL)
	{
		char		full[ERRLEN + 64];

		seterr(full, sizeof(full), "unable to get connection: %s", err);
		resp_go_error(resp, full);
		free(username);
		return;
	}
	generate_password(password);
	if (s.scram && (sent = scram_verifier(password)) == NULL)
	{
		resp_go_error(resp, "unable to scram-sha256 password");
		explicit_bzero(password, sizeof(password));
		free(username);
		return;
	}
	secrets[0] = password;
	secrets[1] = sent;
	secrets[2] = s.password;
	secrets[3] = NULL;
	{
		tvar		vars[] = {{"name", username}, {"username", username},
		{"password", sent ? sent : password}, {"expiration", expiration}};

		ok = run_statements(conn, r->creation, vars, 4, true, err, sizeof(err));
	}
	if (sent)
	{
		explicit_bzero(sent, strlen(sent));
		free(sent);
		secrets[1] = NULL;
	}
	if (!ok)
	{
		char	   *msg = redact(err, secrets, 3);

		/*
		 * The transaction is rolled back, so nothing was created; Vault's
		 * PostgreSQL plugin stops there.  rollback_statements are run on
		 * top, best effort, for creation statements that reach outside
		 * the transaction.
		 */
		if (json_array_size(r->rollback) > 0 && PQstatus(conn) == CONNECTION_OK)
		{
			tvar		vars[] = {{"name", username}, {"username", username}};
			char		ignored[ERRLEN];

			run_statements(conn, r->rollback, vars, 2, false, ignored, sizeof(ignored));
		}
		resp_go_error(resp, msg);
		free(msg);
		free(username);
		explicit_bzero(password, sizeof(password));
		return;
	}

	internal = json_pack("{s:s, s:s, s:s, s:O}",
						 "username", username,
						 "role", name,
						 "db_name", r->db_name,
						 "revocation_statements", r->revocation);
	l = lease_create(m, req->path, req->token ? req->token->id : "", internal,
					 r->default_ttl, r->max_ttl, true);
	if (l == NULL)
	{
		/* cannot happen with valid names; do not leave the role behind */
		default_revoke(conn, username, err, sizeof(err));
		resp_go_error(resp, "failed to register the lease");
	}
	else
	{
		resp->data = json_pack("{s:s, s:s}", "username", username, "password", password);
		snprintf(resp->lease_id, sizeof(resp->lease_id), "%s", l->id);
		resp->lease_duration = l->expire_time - l->issue_time;
		resp->renewable = true;
		resp->dirty = true;
	}
	json_decref(internal);
	free(username);
	explicit_bzero(password, sizeof(password));
}

/* ---- lease hooks ---- */

/*
 * Renew: VALID UNTIL moves to now + the TTL lease.c granted (already
 * capped at the lease's max TTL) + Vault's 5 s of slack.  Like Vault, the
 * role must still exist, for its renew statements.
 */
static int
database_lease_renew(vmount *m, vlease *l, int64_t new_ttl, vresp *resp)
{
	db_state   *st = m->state;
	const char *username = jstr(l->internal, "username");
	const char *rname = jstr(l->internal, "role");
	db_role    *r;
	db_config  *c;
	pg_settings s;
	PGconn	   *conn;
	char		err[ERRLEN],
				full[ERRLEN + 64],
				expiration[40];
	json_t	   *stmts;
	bool		ok;

	if (username == NULL)
	{
		resp_go_error(resp, "failed to renew entry: secret is missing \"username\" field in internal data");
		return -1;
	}
	if (rname == NULL)
	{
		resp_go_error(resp, "failed to renew entry: secret is missing \"role\" field in internal data");
		return -1;
	}
	r = role_find(st, rname);
	if (r == NULL)
	{
		seterr(full, sizeof(full), "failed to renew entry: error during renew: could not find role with name \"%s\"", rname);
		resp_go_error(resp, full);
		return -1;
	}
	c = config_for(st, r->db_name, &s, err, sizeof(err));
	if (c == NULL)
	{
		seterr(full, sizeof(full), "failed to renew entry: %s", err);
		resp_go_error(resp, full);
		return -1;
	}
	conn = config_conn(c, &s, err, sizeof(err));
	if (conn == NULL)
	{
		seterr(full, sizeof(full), "failed to renew entry: unable to get connection: %s", err);
		resp_go_error(resp, full);
		return -1;
	}
	format_expiration(now_unix() + new_ttl + EXPIRATION_SLACK, expiration, sizeof(expiration));
	stmts = json_array_size(r->renew) > 0 ? json_incref(r->renew) : json_pack("[s]", DEFAULT_RENEW_SQL);
	{
		tvar		vars[] = {{"name", username}, {"username", username}, {"expiration", expiration}};

		ok = run_statements(conn, stmts, vars, 3, true, err, sizeof(err));
	}
	json_decref(stmts);
	if (!ok)
	{
		const char *secrets[] = {s.password};
		char	   *msg = redact(err, secrets, 1);

		seterr(full, sizeof(full), "failed to renew entry: %s", msg);
		free(msg);
		resp_go_error(resp, full);
		return -1;
	}
	return 0;
}

/*
 * Revoke: the role's current revocation statements, or, when the role has
 * been deleted since, the db_name and statements the lease recorded at
 * issue (as Vault does); no statements means the default revocation.
 */
static int
database_lease_revoke(vmount *m, vlease *l, char *err, size_t errlen)
{
	db_state   *st = m->state;
	const char *username = jstr(l->internal, "username");
	const char *rname = jstr(l->internal, "role");
	const char *db_name;
	json_t	   *stmts;
	db_role    *r;
	db_config  *c;
	pg_settings s;
	PGconn	   *conn;
	char		msg[ERRLEN];
	bool		ok;

	if (username == NULL)
	{
		seterr(err, errlen, "secret is missing username internal data");
		return -1;
	}
	if (rname == NULL)
	{
		seterr(err, errlen, "no role name was provided");
		return -1;
	}
	r = role_find(st, rname);
	if (r)
	{
		db_name = r->db_name;
		stmts = r->revocation;
	}
	else
	{
		db_name = jstr(l->internal, "db_name");
		stmts = json_object_get(l->internal, "revocation_statements");
		if (db_name == NULL)
		{
			seterr(err, errlen, "error during revoke: could not find role with name \"%s\" or embedded revocation db name data", rname);
			return -1;
		}
		if (stmts == NULL)
		{
			seterr(err, errlen, "error during revoke: could not find role with name \"%s\" or embedded revocation statement data", rname);
			return -1;
		}
	}
	c = config_for(st, db_name, &s, msg, sizeof(msg));
	if (c == NULL)
	{
		seterr(err, errlen, "%s", msg);
		return -1;
	}
	conn = config_conn(c, &s, msg, sizeof(msg));
	if (conn == NULL)
	{
		seterr(err, errlen, "unable to get connection: %s", msg);
		return -1;
	}
	if (json_array_size(stmts) == 0)
		ok = default_revoke(conn, username, msg, sizeof(msg));
	else
	{
		tvar		vars[] = {{"name", username}, {"username", username}};

		ok = run_statements(conn, stmts, vars, 2, true, msg, sizeof(msg));
	}
	if (!ok)
	{
		const char *secrets[] = {s.password};
		char	   *r_msg = redact(msg, secrets, 1);

		seterr(err, errlen, "%s", r_msg);
		free(r_msg);
		return -1;
	}
	return 0;
}

/* ---- the engine ---- */

static void *
database_new_state(vmount *m)
{
	db_state   *st = calloc(1, sizeof(*st));

	if (st == NULL)
		abort();
	return st;
}

static void
database_free_state(vmount *m)
{
	db_state   *st = m->state;

	if (st == NULL)
		return;
	while (st->configs)
	{
		db_config  *next = st->configs->next;

		config_free(st->configs);
		st->configs = next;
	}
	while (st->roles)
	{
		db_role    *next = st->roles->next;

		role_free(st->roles);
		st->roles = next;
	}
	free(st);
	m->state = NULL;
}

/* The name after prefix when rel is exactly prefix + a valid name. */
static const char *
named(const char *rel, const char *prefix)
{
	const char *name = path_after(rel, prefix);

	return (name && valid_name(name)) ? name : NULL;
}

static int
database_exists(vmount *m, const vreq *req)
{
	db_state   *st = m->state;
	const char *name;

	if ((name = named(req->rel, "config/")) != NULL)
		return config_find(st, name) != NULL;
	if ((name = named(req->rel, "roles/")) != NULL)
		return role_find(st, name) != NULL;
	return -1;
}

static void
database_handle(vmount *m, vreq *req, vresp *resp)
{
	db_state   *st = m->state;
	const char *rel = req->rel;
	const char *name;

	if (strcmp(rel, "config/") == 0 || strcmp(rel, "config") == 0)
	{
		if (req->op == OP_LIST)
			config_list(st, resp);
		else
			resp_unsupported_op(resp, req);
	}
	else if ((name = named(rel, "config/")) != NULL)
	{
		if (req->op == OP_READ)
			config_read(st, name, resp);
		else if (is_write(req))
			config_write(st, name, req, resp);
		else if (req->op == OP_DELETE)
		{
			if (config_delete(st, name))
				resp->dirty = true;
		}
		else
			resp_unsupported_op(resp, req);
	}
	else if (strcmp(rel, "roles/") == 0 || strcmp(rel, "roles") == 0)
	{
		if (req->op == OP_LIST)
			role_list(st, resp);
		else
			resp_unsupported_op(resp, req);
	}
	else if ((name = named(rel, "roles/")) != NULL)
	{
		if (req->op == OP_READ)
			role_read(st, name, resp);
		else if (is_write(req))
			role_write(st, name, req, resp);
		else if (req->op == OP_DELETE)
		{
			if (role_delete(st, name))
				resp->dirty = true;
		}
		else
			resp_unsupported_op(resp, req);
	}
	else if ((name = named(rel, "creds/")) != NULL)
	{
		if (req->op == OP_READ)
			creds_read(m, st, name, req, resp);
		else
			resp_unsupported_op(resp, req);
	}
	else if ((name = named(rel, "reset/")) != NULL)
	{
		if (is_write(req))
			config_reset(st, name, resp);
		else
			resp_unsupported_op(resp, req);
	}
	else if ((name = named(rel, "rotate-root/")) != NULL)
	{
		if (is_write(req))
			config_rotate_root(st, name, resp);
		else
			resp_unsupported_op(resp, req);
	}
	else
		resp_unsupported_path(resp, req);
}

/* ---- persistence: configs with their passwords (the state file is 0600) ---- */

static json_t *
database_save(vmount *m)
{
	db_state   *st = m->state;
	json_t	   *configs = json_array();
	json_t	   *roles = json_array();
	db_config  *c;
	db_role    *r;

	for (c = st->configs; c; c = c->next)
		json_array_append_new(configs,
							  json_pack("{s:s, s:s, s:s, s:O, s:O, s:O, s:s, s:b}",
										"name", c->name,
										"plugin_name", c->plugin_name,
										"plugin_version", c->plugin_version,
										"connection_details", c->details,
										"allowed_roles", c->allowed_roles,
										"root_rotation_statements", c->root_rotation_statements,
										"password_policy", c->password_policy,
										"verify_connection", c->verify_connection));
	for (r = st->roles; r; r = r->next)
		json_array_append_new(roles,
							  json_pack("{s:s, s:s, s:O, s:O, s:O, s:O, s:I, s:I}",
										"name", r->name,
										"db_name", r->db_name,
										"creation_statements", r->creation,
										"revocation_statements", r->revocation,
										"rollback_statements", r->rollback,
										"renew_statements", r->renew,
										"default_ttl", (json_int_t) r->default_ttl,
										"max_ttl", (json_int_t) r->max_ttl));
	return json_pack("{s:o, s:o}", "configs", configs, "roles", roles);
}

static char *
jstr_dup(json_t *o, const char *key)
{
	return xstrdup(jstr(o, key));
}

static void
database_load(vmount *m, json_t *saved)
{
	db_state   *st = m->state;
	json_t	   *o;
	size_t		i;

	json_array_foreach(json_object_get(saved, "configs"), i, o)
	{
		db_config  *c;
		const char *name = jstr(o, "name");

		if (name == NULL || !valid_name(name) || !json_is_object(json_object_get(o, "connection_details")))
		{
			fprintf(stderr, "vault-dev: state file: skipping a malformed database connection\n");
			continue;
		}
		c = calloc(1, sizeof(*c));
		if (c == NULL)
			abort();
		c->name = xstrdup(name);
		c->plugin_name = jstr_dup(o, "plugin_name");
		c->plugin_version = jstr_dup(o, "plugin_version");
		c->details = json_deep_copy(json_object_get(o, "connection_details"));
		c->allowed_roles = array_or_empty(json_object_get(o, "allowed_roles"));
		c->root_rotation_statements = array_or_empty(json_object_get(o, "root_rotation_statements"));
		c->password_policy = jstr_dup(o, "password_policy");
		c->verify_connection = json_is_true(json_object_get(o, "verify_connection"));
		config_put(st, c);
	}
	json_array_foreach(json_object_get(saved, "roles"), i, o)
	{
		db_role    *r;
		const char *name = jstr(o, "name");

		if (name == NULL || !valid_name(name))
		{
			fprintf(stderr, "vault-dev: state file: skipping a malformed database role\n");
			continue;
		}
		r = calloc(1, sizeof(*r));
		if (r == NULL)
			abort();
		r->name = xstrdup(name);
		r->db_name = jstr_dup(o, "db_name");
		r->creation = array_or_empty(json_object_get(o, "creation_statements"));
		r->revocation = array_or_empty(json_object_get(o, "revocation_statements"));
		r->rollback = array_or_empty(json_object_get(o, "rollback_statements"));
		r->renew = array_or_empty(json_object_get(o, "renew_statements"));
		r->default_ttl = json_integer_value(json_object_get(o, "default_ttl"));
		r->max_ttl = json_integer_value(json_object_get(o, "max_ttl"));
		role_put(st, r);
	}
}

const vengine engine_database = {
	.type = "database",
	.new_state = database_new_state,
	.free_state = database_free_state,
	.exists = database_exists,
	.handle = database_handle,
	.save = database_save,
	.load = database_load,
	.lease_renew = database_lease_renew,
	.lease_revoke = database_lease_revoke,
};

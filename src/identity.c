/*
 * identity.c
 *    Who in the database a Vault request is for.  Every request carries the
 *    caller's database identity in headers that vault/bootstrap registers
 *    with Vault's audit devices (sys/config/auditing/request-headers), so
 *    that Vault's own audit log says which role decrypted what:
 *
 *      X-Pgvault-Session-User   the role that logged in
 *      X-Pgvault-Current-User   the role the call runs as
 *      X-Pgvault-Database       the database
 *      X-Pgvault-Application    application_name (the client's own word)
 *      X-Pgvault-Client         the client's address, "local" for a socket
 *      X-Pgvault-Pid            the backend's process id
 *
 *    Values are percent-encoded outside printable ASCII, so that no name
 *    can split a header.  Outside a transaction (a token given back at
 *    backend exit) only the pid is known.  A leaf: it calls nothing of
 *    pg_vault's.
 */
#include "postgres.h"

#include "access/xact.h"
#include "commands/dbcommands.h"
#include <netdb.h>
#include <sys/socket.h>

#if PG_VERSION_NUM >= 140000
#include "utils/backend_status.h"
#else
#include "pgstat.h"
#endif
#include "miscadmin.h"
#include "utils/guc.h"
#include "utils/memutils.h"

#include "pg_vault.h"

#define MAX_VALUE 64

static StringInfoData lines;
static bool lines_ready = false;
static Oid	cached_user = InvalidOid;
static Oid	cached_session = InvalidOid;
static Oid	cached_db = InvalidOid;
static char *cached_app = NULL;

static void
append_value(StringInfo buf, const char *name, const char *value)
{
	int			n = 0;

	appendStringInfo(buf, "%sX-Pgvault-%s: ", buf->len > 0 ? "\n" : "", name);
	for (const unsigned char *p = (const unsigned char *) value; *p && n < MAX_VALUE; p++, n++)
	{
		if (*p > ' ' && *p < 127 && *p != '%')
			appendStringInfoChar(buf, (char) *p);
		else if (*p == ' ')
			appendStringInfoChar(buf, ' ');
		else
			appendStringInfo(buf, "%%%02X", *p);
	}
}

const char *
vault_identity_headers(void)
{
	Oid			user = GetUserId();
	Oid			session = GetSessionUserId();
	const char *app = application_name ? application_name : "";
	bool		in_xact = IsTransactionState();

	if (!lines_ready)
	{
		MemoryContext old = MemoryContextSwitchTo(TopMemoryContext);

		initStringInfo(&lines);
		MemoryContextSwitchTo(old);
		lines_ready = true;
	}
	if (!in_xact)
	{
		resetStringInfo(&lines);
		appendStringInfo(&lines, "X-Pgvault-Pid: %d", MyProcPid);
		cached_user = InvalidOid;
		return lines.data;
	}
	if (user == cached_user && session == cached_session &&
		MyDatabaseId == cached_db && cached_app != NULL && strcmp(cached_app, app) == 0)
		return lines.data;

	resetStringInfo(&lines);
	{
		char	   *u = GetUserNameFromId(user, true);
		char	   *su = GetUserNameFromId(session, true);
		char	   *db = get_database_name(MyDatabaseId);
		char		client[NI_MAXHOST] = "local";

#if PG_VERSION_NUM < 140000
		/* 13 keeps its own backend entry private: the address is unknown */
		strlcpy(client, "unknown", sizeof(client));
#else
		if (MyBEEntry != NULL && MyBEEntry->st_clientaddr.salen > 0 &&
			(MyBEEntry->st_clientaddr.addr.ss_family == AF_INET ||
			 MyBEEntry->st_clientaddr.addr.ss_family == AF_INET6) &&
			getnameinfo((const struct sockaddr *) &MyBEEntry->st_clientaddr.addr,
						MyBEEntry->st_clientaddr.salen, client, sizeof(client),
						NULL, 0, NI_NUMERICHOST) != 0)
			strlcpy(client, "unknown", sizeof(client));
#endif
		append_value(&lines, "Session-User", su ? su : "");
		append_value(&lines, "Current-User", u ? u : "");
		append_value(&lines, "Database", db ? db : "");
		append_value(&lines, "Application", app);
		append_value(&lines, "Client", client);
		appendStringInfo(&lines, "\nX-Pgvault-Pid: %d", MyProcPid);
	}
	if (cached_app)
		pfree(cached_app);
	cached_app = MemoryContextStrdup(TopMemoryContext, app);
	cached_user = user;
	cached_session = session;
	cached_db = MyDatabaseId;
	return lines.data;
}

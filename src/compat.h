/*
 * compat.h: one source for PostgreSQL 13 to 18.  Included by pg_vault.h.
 * What 14 and 15 added, for 13 and 14:
 *
 *    utils/wait_event.h    (14) pgstat.h before
 *    String                (15) a Value node before; makeString returns one
 *    pg_is_ascii           (15) common/string.h
 *    InitMaterializedSRF   (15.1; 15.0 named it SetSingleFuncCall) the
 *                          materialize-mode set-up of a set-returning
 *                          function, with MAT_SRF_USE_EXPECTED_DESC and
 *                          MAT_SRF_BLESS
 *
 * and what PostgreSQL 16 and later removed or renamed:
 *
 *    pg_proc_aclcheck      object_aclcheck(ProcedureRelationId, ...) from 16
 *    pg_noreturn           (18) before a declaration, where 13 to 17 had
 *                          pg_attribute_noreturn() after it; GCC and clang
 *                          take that attribute before it too
 *
 * `make test-matrix` builds and tests pg_vault with these on PostgreSQL 13,
 * 15, 17 and 18.
 */
#ifndef PG_VAULT_COMPAT_H
#define PG_VAULT_COMPAT_H

#if PG_VERSION_NUM >= 140000
#include "utils/wait_event.h"
#else
#include "pgstat.h"
#endif


/* ProcessUtility_hook's signature (columns.c, dek.c) changed in 14. */
#if PG_VERSION_NUM >= 140000
#define UTILITY_PARAMS PlannedStmt *pstmt, const char *queryString, bool readOnlyTree, \
	ProcessUtilityContext context, ParamListInfo params, QueryEnvironment *queryEnv, \
	DestReceiver *dest, QueryCompletion *qc
#define UTILITY_ARGS pstmt, queryString, readOnlyTree, context, params, queryEnv, dest, qc
#else
#define UTILITY_PARAMS PlannedStmt *pstmt, const char *queryString, \
	ProcessUtilityContext context, ParamListInfo params, QueryEnvironment *queryEnv, \
	DestReceiver *dest, QueryCompletion *qc
#define UTILITY_ARGS pstmt, queryString, context, params, queryEnv, dest, qc
#endif

#ifndef pg_noreturn
#define pg_noreturn pg_attribute_noreturn()
#endif

#if PG_VERSION_NUM >= 160000
#include "catalog/pg_proc.h"
#include "utils/acl.h"
#define pg_proc_aclcheck(proc, role, mode) \
	object_aclcheck(ProcedureRelationId, (proc), (role), (mode))
#endif

#if PG_VERSION_NUM < 150000

#include "funcapi.h"
#include "miscadmin.h"
#include "nodes/value.h"
#include "utils/tuplestore.h"

typedef Value String;

static inline bool
vc_compat_is_ascii(const char *s)
{
	for (; *s; s++)
	{
		if (IS_HIGHBIT_SET(*s))
			return false;
	}
	return true;
}
#define pg_is_ascii(s) vc_compat_is_ascii(s)

#define MAT_SRF_USE_EXPECTED_DESC	0x01
#define MAT_SRF_BLESS				0x02

static inline void
vc_compat_materialized_srf(FunctionCallInfo fcinfo, bits32 flags)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	TupleDesc	tupdesc;
	MemoryContext old;

	if (rsinfo == NULL || !IsA(rsinfo, ReturnSetInfo))
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("set-valued function called in context that cannot accept a set")));
	if (!(rsinfo->allowedModes & SFRM_Materialize) ||
		((flags & MAT_SRF_USE_EXPECTED_DESC) && rsinfo->expectedDesc == NULL))
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("materialize mode required, but it is not allowed in this context")));

	old = MemoryContextSwitchTo(rsinfo->econtext->ecxt_per_query_memory);
	if (flags & MAT_SRF_USE_EXPECTED_DESC)
		tupdesc = CreateTupleDescCopy(rsinfo->expectedDesc);
	else if (get_call_result_type(fcinfo, NULL, &tupdesc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "return type must be a row type");
	if (flags & MAT_SRF_BLESS)
		BlessTupleDesc(tupdesc);
	rsinfo->returnMode = SFRM_Materialize;
	rsinfo->setResult = tuplestore_begin_heap((rsinfo->allowedModes & SFRM_Materialize_Random) != 0,
											  false, work_mem);
	rsinfo->setDesc = tupdesc;
	MemoryContextSwitchTo(old);
}
#define InitMaterializedSRF(fcinfo, flags) vc_compat_materialized_srf(fcinfo, flags)

#endif							/* PG_VERSION_NUM < 150000 */

#endif							/* PG_VAULT_COMPAT_H */

/*-------------------------------------------------------------------------
 *
 * step_defer.c
 *	  A step worker deferring its outcome and taking its next step run,
 *	  in one prepared statement.
 *
 * In a burst, a busy worker takes its next step run from the launcher's
 * hand-out queue (handout.c) and, in the step's own transaction, records
 * the outcome of the step that ended for the launcher to apply later
 * (step_outcome) and makes the next one its own.  That bookkeeping costs
 * every step of a burst, so it is one statement, planned once per worker
 * (a generic plan) and run through SPI with no PL/pgSQL call and no
 * function-level settings around it: as a function it cost about as much
 * again as the statement itself.  Only a next step run that may not be
 * taken (rare: a stop or a timeout reached it) goes on to
 * _worker_defer_refused.
 *
 * The statement runs with search_path pinned to pg_catalog (the caller
 * sets it): a cached plan is parsed again under the search_path current
 * when it is used, and its operators must not resolve to a role's own.
 * _worker_defer, granted to no one, calls the same code from SQL for the
 * tests and the rehearsal (_worker_rehearse).
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/namespace.h"
#include "catalog/pg_type_d.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "utils/guc.h"

#include "pgautomator.h"

/* the search_path the bookkeeping plans and runs under */
#define PGA_DEFER_SEARCH_PATH "pg_catalog, pg_temp"

/*
 * The outcome, and the finished step run ($1) no longer this worker's (no
 * pid: a stop or a timeout signals no one for it; a crash check applies
 * the outcome first).  An update, not only a lock: a cancel for it
 * (_signal_worker) locks it first, so it either comes before this commits
 * (and cancels this transaction, the step's) or, read committed, finds no
 * pid, or, at a stricter isolation level, fails with a serialization error
 * rather than act on an older snapshot.
 *
 * The next one ($8), claimed by the launcher for no worker yet, locked
 * without waiting (a stop or a timeout holding it now must not make the
 * step's transaction wait) and taken when it may still run, with this
 * worker's pid ($9).  A stop marks it (cancel_requested_at, with its run's
 * stop request in one transaction), waiting for this lock if it comes
 * meanwhile, and then cancels this worker.  A lock that never waits closes
 * no cycle, so the lock order of other paths, run first, is not needed.
 * Its start is now: its time limits count from when it runs, not from when
 * it was claimed.  (The two step runs are never the same row.)
 *
 * Its run and job are read only when it has a time limit ($10): then
 * whether the job's timeout has passed while it waited.  Reading them for
 * every step nearly doubled the median start lag of repeated bursts once
 * the tables held earlier runs (README, Performance); a stop needs no such
 * read, as above.
 */
static const char *const pga_defer_sql =
"WITH done AS ("
"    UPDATE pgautomator.step_run sr SET worker_pid = NULL"
"     WHERE sr.id = $1"
"    RETURNING sr.id),"
" kept AS ("
"    INSERT INTO pgautomator.step_outcome (step_run_id, succeeded, sqlstate, error, messages,"
"                                          rows_affected, output, ended_at)"
"    SELECT done.id, $2, nullif($3, ''), $4, $5, $6, $7, statement_timestamp()"
"      FROM done)"
" UPDATE pgautomator.step_run u SET worker_pid = $9, lost_since = NULL,"
"                                   started_at = statement_timestamp()"
"  WHERE u.id = (SELECT sr.id FROM pgautomator.step_run sr WHERE sr.id = $8"
"                   FOR NO KEY UPDATE SKIP LOCKED)"
"    AND u.state IS NOT DISTINCT FROM 'running' AND u.worker_pid IS NULL"
"    AND u.cancel_requested_at IS NULL AND u.step_id IS NOT NULL"
"    AND (NOT $10 OR EXISTS ("
"         SELECT FROM pgautomator.run r JOIN pgautomator.job j ON j.id = r.job_id"
"          WHERE r.id = u.run_id"
"            AND r.state IS NOT DISTINCT FROM 'running' AND r.stop_requested_at IS NULL"
"            AND (j.timeout IS NULL OR r.started_at + j.timeout > statement_timestamp())))"
" RETURNING u.id";

static SPIPlanPtr pga_defer_plan = NULL;
static SPIPlanPtr pga_refused_plan = NULL;

/*
 * pga_defer_keep prepares sql as a generic plan kept for the process.
 */
static SPIPlanPtr
pga_defer_keep(const char *sql, int nargs, Oid *types)
{
	SPIPlanPtr	plan = SPI_prepare_cursor(sql, nargs, types, CURSOR_OPT_GENERIC_PLAN);

	if (plan == NULL || SPI_keepplan(plan) != 0)
		elog(ERROR, "could not prepare \"%s\": %s", sql,
			 SPI_result_code_string(SPI_result));
	return plan;
}

/*
 * pga_defer_pin_search_path sets, as action says (within a GUC nest
 * level or the transaction that the caller ends), the search_path the
 * statements are planned and run under; only when it differs, since
 * setting costs.
 */
void
pga_defer_pin_search_path(int action)
{
	if (strcmp(namespace_search_path, PGA_DEFER_SEARCH_PATH) != 0)
		(void) set_config_option("search_path", PGA_DEFER_SEARCH_PATH, PGC_SUSET,
								 PGC_S_SESSION, (GucAction) action, true, 0, false);
}

/*
 * pga_defer_execute records the outcome of step run values[0] for later
 * and takes step run values[7] for process values[8], reading its run and
 * job only when values[9] (values and nulls: the arguments of
 * _worker_defer, as SPI takes them).  Returns 1 when that one is taken, 0
 * when it is busy (locked by a stop or a timeout: the caller puts it back
 * in the hand-out queue), -1 when it may not run (given back to the ready
 * queue, or gone).  Inside SPI, with a snapshot, as a user who may write
 * pgautomator's tables, search_path pinned.
 */
int
pga_defer_execute(Datum *values, const char *nulls)
{
	Oid			types[10] = {INT8OID, BOOLOID, TEXTOID, TEXTOID, TEXTOID, INT8OID, TEXTOID,
	INT8OID, INT4OID, BOOLOID};
	int			rc;
	bool		isnull;

	if (pga_defer_plan == NULL)
		pga_defer_plan = pga_defer_keep(pga_defer_sql, 10, types);
	rc = SPI_execute_plan(pga_defer_plan, values, nulls, false, 0);
	if (rc != SPI_OK_UPDATE_RETURNING)
		elog(ERROR, "the deferred outcome's statement returned SPI code %d", rc);
	if (SPI_processed == 1)
		return 1;
	if (pga_refused_plan == NULL)
		pga_refused_plan = pga_defer_keep("SELECT pgautomator._worker_defer_refused($1)", 1, &types[7]);
	rc = SPI_execute_plan(pga_refused_plan, &values[7], &nulls[7], false, 1);
	if (rc != SPI_OK_SELECT || SPI_processed != 1)
		elog(ERROR, "_worker_defer_refused returned SPI code %d", rc);
	return DatumGetInt32(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
}

PG_FUNCTION_INFO_V1(pga_worker_defer);

/*
 * pga_worker_defer is pgautomator._worker_defer: pga_defer_execute from
 * SQL (the tests, the rehearsal), the same statement a worker runs.  The
 * function's own SET search_path pins the search_path.
 */
Datum
pga_worker_defer(PG_FUNCTION_ARGS)
{
	Datum		values[10];
	char		nulls[10];
	int			i;
	int			taken;

	for (i = 0; i < 10; i++)
	{
		nulls[i] = PG_ARGISNULL(i) ? 'n' : ' ';
		values[i] = PG_ARGISNULL(i) ? (Datum) 0 : PG_GETARG_DATUM(i);
	}
	/* the statement needs these: refused here with a clear error */
	if (PG_ARGISNULL(1) || PG_ARGISNULL(7) || PG_ARGISNULL(8) || PG_ARGISNULL(9))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("_worker_defer: p_succeeded, p_next, p_pid and p_check_run must not be NULL")));
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	taken = pga_defer_execute(values, nulls);
	SPI_finish();
	PG_RETURN_INT32(taken);
}

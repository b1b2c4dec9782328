/*-------------------------------------------------------------------------
 *
 * step_settle.c
 *	  A step worker in the extension's database settling its own step run.
 *
 * Without this, every outcome goes through the launcher: the worker writes
 * it to its segment, the launcher reports it in its next pass, claims the
 * next step run and hands it back.  The launcher is one process, so under
 * load its bookkeeping, not the steps, bounds how many step runs start per
 * second.  A worker connected to the database where pgautomator lives can
 * instead record its outcome and claim its next step run (of its own role
 * and database) in one transaction of its own, in parallel with the other
 * workers; the launcher then only starts workers and fires schedules.
 *
 * The bookkeeping runs as the bootstrap superuser through
 * SetUserIdAndSecContext, as a security-restricted operation, while no
 * step code runs (after the session was reset, or at the end of the step's
 * last transaction, after its deferred triggers): the session user stays
 * the run-as role, so the step's SQL can never reach these rights (SET
 * ROLE and SET SESSION AUTHORIZATION give it only what its role has), and
 * _worker_settle is granted to no one.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "access/xact.h"
#include "catalog/namespace.h"
#include "catalog/pg_authid.h"
#include "catalog/pg_database.h"
#include "catalog/pg_type_d.h"
#include "commands/async.h"
#include "commands/prepare.h"
#include "commands/sequence.h"
#include "executor/spi.h"
#include "jit/jit.h"
#include "mb/pg_wchar.h"
#include "miscadmin.h"
#include "optimizer/cost.h"
#include "optimizer/optimizer.h"
#include "optimizer/paths.h"
#include "postmaster/interrupt.h"
#include "storage/lock.h"
#include "storage/proc.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/inval.h"
#include "utils/portal.h"
#include "utils/resowner.h"
#include "utils/snapmgr.h"
#include "utils/syscache.h"

#include "pgautomator.h"

/*
 * pga_session_reset gives the next step a fresh session, as a new
 * connection would have: what DISCARD ALL does (portals, settings, role,
 * prepared statements, LISTEN, advisory locks, temporary tables, sequence
 * caches) except dropping cached plans.  Plans are checked against the
 * search_path they were made with, so keeping them is safe, and it spares
 * the bookkeeping functions a new plan for every step.  False (with a
 * WARNING) when it failed: the worker must not run another step.  A cancel
 * that arrives during the reset is kept when keep_cancel: the next step run
 * was claimed with the step that ended, so it is meant for that one.
 */
bool
pga_session_reset(bool keep_cancel)
{
	MemoryContext caller = CurrentMemoryContext;
	volatile bool ok = true;
	uint32		holdoff = QueryCancelHoldoffCount;

	/* a cancel meant for the step that ended must not break the reset */
	QueryCancelPending = false;
	HOLD_CANCEL_INTERRUPTS();
	SetCurrentStatementStartTimestamp();
	StartTransactionCommand();
	PG_TRY();
	{
		/* closing portals may run user-defined code: first */
		PortalHashTableDeleteAll();
		SetPGVariable("session_authorization", NIL, false);
		ResetAllOptions();
		DropAllPreparedStatements();
		Async_UnlistenAll();
		LockReleaseAll(USER_LOCKMETHOD, true);
		ResetTempTableNamespace();
		ResetSequenceCaches();
		CommitTransactionCommand();
	}
	PG_CATCH();
	{
		ErrorData  *edata;

		MemoryContextSwitchTo(caller);
		edata = CopyErrorData();
		FlushErrorState();
		AbortCurrentTransaction();
		ereport(WARNING,
				(errcode(edata->sqlerrcode),
				 errmsg("pgautomator step worker: could not reset its session: %s", edata->message),
				 errdetail("The worker exits after this step.")));
		FreeErrorData(edata);
		ok = false;
	}
	PG_END_TRY();
	if (!keep_cancel)
		QueryCancelPending = false;

	/*
	 * An error's recovery reset the hold-off count to zero already: resuming
	 * then would take it below (an assertion failure in assert-enabled
	 * builds, cancels held off for good in others).
	 */
	if (ok)
		RESUME_CANCEL_INTERRUPTS();
	else
		QueryCancelHoldoffCount = holdoff;
	return ok;
}

static SPIPlanPtr pga_settle_plan = NULL;

/*
 * The tables _worker_settle reads and then writes (see table_locks.c).
 * (Not those it only reads: a REINDEX waiting for someone else's lock on
 * one would then hold up every worker.)
 */
static const char *const pga_settle_tables[] = {"run", "step_run", "step_outcome"};

/*
 * pga_settle_prepare plans the call of _worker_settle, once per worker:
 * parsing and planning it would cost every step.  Inside SPI.
 */
static void
pga_settle_prepare(void)
{
	Oid			types[10] = {INT8OID, BOOLOID, TEXTOID, TEXTOID, TEXTOID, INT8OID, TEXTOID,
	BOOLOID, NAMEOID, INT4OID};
	SPIPlanPtr	plan;

	if (pga_settle_plan == NULL)
	{
		plan = SPI_prepare("SELECT step_run_id, database, run_as, code, transaction, timeout_ms"
						   " FROM pgautomator._worker_settle($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
						   10, types);
		if (plan == NULL || SPI_keepplan(plan) != 0)
			elog(ERROR, "could not prepare _worker_settle: %s", SPI_result_code_string(SPI_result));
		pga_settle_plan = plan;
	}
}

/*
 * pga_settle_defer records the outcome for later and takes next, the step
 * run this worker took from the launcher's hand-out queue (handout.c), as
 * its next one (values: _worker_settle's; inside SPI); true when it is to
 * run next.  Otherwise next is let go: back to the hand-out queue when
 * it was busy, else to the ready queue (step_defer.c).
 */
static bool
pga_settle_defer(Datum *values, char *nulls, PgaStepInput *next)
{
	Datum		dvalues[10];
	char		dnulls[10];
	int			taken;

	memcpy(dvalues, values, sizeof(Datum) * 7);
	memcpy(dnulls, nulls, 7);
	dvalues[7] = Int64GetDatum(next->step_run_id);
	dvalues[8] = Int32GetDatum(MyProcPid);
	/* its run and job are read only for a time limit (step_defer.c) */
	dvalues[9] = BoolGetDatum(next->timeout_ms > 0);
	memset(&dnulls[7], ' ', 3);
	taken = pga_defer_execute(dvalues, dnulls);
	/* taken, or given back to the ready queue: for good once this commits */
	pga_handout_settle_held(taken != 0, true);
	if (taken == 1)
		return true;
	pfree(next->code);
	next->code = NULL;
	return false;
}

/*
 * pga_settle_call records the outcome and, when claim, finds the next step
 * run: one of the launcher's hand-out queue (pga_settle_defer, which
 * defers the outcome), else one _worker_settle claims (after recording the
 * outcome in full).  With one, fills next (its code allocated in
 * TopMemoryContext) and returns true.
 */
static bool
pga_settle_call(const PgaStepOutcome *outcome, bool claim, PgaStepInput *next)
{
	Datum		values[10];
	char		nulls[11] = "          ";
	NameData	run_as;
	bool		claimed = false;
	int			rc;
	HeapTuple	role;

	next->code = NULL;			/* (freed by the caller after an error) */

	/*
	 * Claims go by role name: only while the role this session connected as
	 * still exists (not dropped and made again) and may log in.  (The role
	 * it connected as: a superuser's step may have changed the session
	 * user.)  The catalog caches first take in what was committed since
	 * the step's transaction began (an ALTER ROLE ... NOLOGIN while the
	 * step ran), as a claim's own lookup would see it.
	 */
	AcceptInvalidationMessages();
	role = SearchSysCache1(AUTHOID, ObjectIdGetDatum(GetAuthenticatedUserId()));
	memset(&run_as, 0, sizeof(run_as));
	if (HeapTupleIsValid(role))
	{
		Form_pg_authid form = (Form_pg_authid) GETSTRUCT(role);

		namestrcpy(&run_as, NameStr(form->rolname));
		claim = claim && form->rolcanlogin;
		ReleaseSysCache(role);
	}
	else
		claim = false;
	/* (_claim_local relies on both checks for the steps it gives this worker) */
	if (claim)
	{
		HeapTuple	db = SearchSysCache1(DATABASEOID, ObjectIdGetDatum(MyDatabaseId));

		claim = HeapTupleIsValid(db) && ((Form_pg_database) GETSTRUCT(db))->datallowconn;
		if (HeapTupleIsValid(db))
			ReleaseSysCache(db);
	}
	values[0] = Int64GetDatum(outcome->step_run_id);
	values[1] = BoolGetDatum(outcome->succeeded);
	values[2] = pga_text_datum(outcome->sqlstate[0] ? outcome->sqlstate : NULL, PG_SQL_ASCII, &nulls[2]);
	values[3] = pga_text_datum(outcome->error, outcome->encoding, &nulls[3]);
	values[4] = pga_text_datum(outcome->messages, outcome->encoding, &nulls[4]);
	values[5] = Int64GetDatum(outcome->rows);
	values[6] = pga_text_datum(outcome->output, outcome->encoding, &nulls[6]);
	values[7] = BoolGetDatum(claim);
	values[8] = NameGetDatum(&run_as);
	values[9] = Int32GetDatum(MyProcPid);

	pga_lock_tables(pga_settle_tables, lengthof(pga_settle_tables));
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	PushActiveSnapshot(GetTransactionSnapshot());
	pga_settle_prepare();
	/* the next step run from the launcher's hand-out queue, if it has one */
	if (claim && pga_handout_take_mine(pga_database, NameStr(run_as), next))
		claimed = pga_settle_defer(values, nulls, next);
	else
	{
		rc = SPI_execute_plan(pga_settle_plan, values, nulls, false, 1);
		if (rc != SPI_OK_SELECT)
			elog(ERROR, "_worker_settle returned SPI code %d", rc);
		if (SPI_processed > 0)
		{
			pga_read_local_step(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, next, TopMemoryContext);
			claimed = true;
		}
	}
	PopActiveSnapshot();
	SPI_finish();
	return claimed;
}

/*
 * The planner's method switches, all on unless someone turned them off.
 * (Those off by default, partitionwise joins and aggregates, change
 * nothing in the bookkeeping's plans; switches of releases after 17 are
 * not listed.)
 */
static const struct
{
	const char *name;
	const bool *value;
}			pga_planner_switches[] =
{
	{"enable_seqscan", &enable_seqscan},
	{"enable_indexscan", &enable_indexscan},
	{"enable_indexonlyscan", &enable_indexonlyscan},
	{"enable_bitmapscan", &enable_bitmapscan},
	{"enable_tidscan", &enable_tidscan},
	{"enable_sort", &enable_sort},
	{"enable_incremental_sort", &enable_incremental_sort},
	{"enable_hashagg", &enable_hashagg},
	{"enable_nestloop", &enable_nestloop},
	{"enable_material", &enable_material},
	{"enable_memoize", &enable_memoize},
	{"enable_mergejoin", &enable_mergejoin},
	{"enable_hashjoin", &enable_hashjoin},
	{"enable_gathermerge", &enable_gathermerge},
	{"enable_parallel_append", &enable_parallel_append},
	{"enable_parallel_hash", &enable_parallel_hash},
	{"enable_partition_pruning", &enable_partition_pruning},
	{"enable_async_append", &enable_async_append},
#if PG_VERSION_NUM >= 160000
	{"enable_presorted_aggregate", &enable_presorted_aggregate},
#endif
#if PG_VERSION_NUM >= 170000
	/* (declared in optimizer/paths.h) */
	{"enable_group_by_reordering", &enable_group_by_reordering},
#endif
};

/* PostgreSQL's default jit_above_cost: below it, JIT may compile a plan */
#define PGA_DEFAULT_JIT_ABOVE_COST	100000.0

/*
 * pga_settle_pin_planner undoes, for the bookkeeping, what the step or its
 * role set that changes how plans are made.  A worker keeps the plans of
 * its bookkeeping for its life, and plans them again whenever the tables'
 * statistics change, inside the step's transaction (or, after the session
 * reset, with the role's own ALTER ROLE ... SET values): a step that turns
 * off index scans or nested loops (a reporting query's tuning, say) would
 * otherwise leave every later settle and claim of that worker reading
 * whole history tables, or compiling each statement with JIT, or starting
 * parallel workers.  Only what differs from what the bookkeeping needs is
 * set.  Costs, memory and join-search limits are left as configured: they
 * tilt plans, where these switches forbid whole kinds of them.
 */
static void
pga_settle_pin_planner(GucAction action)
{
	int			i;

	for (i = 0; i < lengthof(pga_planner_switches); i++)
		if (!*pga_planner_switches[i].value)
			(void) set_config_option(pga_planner_switches[i].name, "on", PGC_SUSET,
									 PGC_S_SESSION, action, true, 0, false);
	if (jit_enabled && jit_above_cost >= 0 && jit_above_cost < PGA_DEFAULT_JIT_ABOVE_COST)
		(void) set_config_option("jit", "off", PGC_SUSET, PGC_S_SESSION, action, true, 0, false);
	if (max_parallel_workers_per_gather > 0 &&
		(parallel_setup_cost < DEFAULT_PARALLEL_SETUP_COST ||
		 parallel_tuple_cost < DEFAULT_PARALLEL_TUPLE_COST))
		(void) set_config_option("max_parallel_workers_per_gather", "0", PGC_SUSET,
								 PGC_S_SESSION, action, true, 0, false);
	/* (a Gather over every parallel-safe query, settable by any user) */
#if PG_VERSION_NUM >= 160000
	if (debug_parallel_query != DEBUG_PARALLEL_OFF)
		(void) set_config_option("debug_parallel_query", "off", PGC_SUSET,
								 PGC_S_SESSION, action, true, 0, false);
#else
	if (force_parallel_mode != FORCE_PARALLEL_OFF)
		(void) set_config_option("force_parallel_mode", "off", PGC_SUSET,
								 PGC_S_SESSION, action, true, 0, false);
#endif
}

/*
 * pga_settle_pin_settings sets, for the current transaction only, what the
 * run-as role's own settings (ALTER ROLE ... SET, which the reset brings
 * back) and, within the step's transaction, the step's settings must not
 * change in the bookkeeping: how it reads and waits, and how it plans.
 * (Settings that break it otherwise make it fail: after the step's commit
 * the outcome then goes to the launcher; within the step's transaction the
 * step fails.)  Isolation and read-only mode can only be set before the
 * transaction's first query: pga_settle_in_step checks them instead.
 */
static void
pga_settle_pin_settings(GucAction action)
{
	pga_settle_pin_planner(action);
	/* what the plans were made with (step_defer.c) */
	pga_defer_pin_search_path(action);
	/* only what differs: setting a parameter costs, even to its value */
	if (XactIsoLevel != XACT_READ_COMMITTED)
		(void) set_config_option("transaction_isolation", "read committed", PGC_SUSET,
								 PGC_S_SESSION, action, true, 0, false);
	if (XactReadOnly)
		(void) set_config_option("transaction_read_only", "off", PGC_SUSET,
								 PGC_S_SESSION, action, true, 0, false);
	if (StatementTimeout != 0)
		(void) set_config_option("statement_timeout", "0", PGC_SUSET,
								 PGC_S_SESSION, action, true, 0, false);
	if (LockTimeout != 0)
		(void) set_config_option("lock_timeout", "0", PGC_SUSET,
								 PGC_S_SESSION, action, true, 0, false);
}

/*
 * pga_settle_in_step records the outcome of a step that succeeded in the
 * step's own last transaction, before it commits (pga_exec_step's
 * before_commit), and may claim the worker's next step run there too: the
 * step's work and its record commit together, one WAL flush instead of
 * two.  Only when that transaction reads and waits as the bookkeeping must
 * (read committed, not read-only, synchronous_commit as the session's
 * default) and the session user is still the role the worker connected as
 * (a superuser's step may change it); otherwise false, and the outcome is
 * recorded after the commit.
 *
 * No subtransaction: a failing bookkeeping (a deadlock with a session that
 * holds the run, say) fails the step's transaction, as a failing commit
 * would, and the step ends failed with that error, the work of that
 * transaction rolled back (the worker then records its later steps after
 * their commits, see step_worker.c); a cancel (a stop, the step's timeout)
 * fails the step as well, which has not ended yet.  A subtransaction would keep the step's work then, but every
 * step would pay for it: a subtransaction id, and for the other workers'
 * visibility checks of its rows a lookup in pg_subtrans (10-15 % of a
 * worker's CPU per step in a burst).
 *
 * The bookkeeping runs after the step's statements, before the session is
 * reset: as the bootstrap superuser, a security-restricted operation, in
 * functions that set their own search_path.  What the step's session set
 * and still holds can only change how the bookkeeping formats and what its
 * plans cost: the settings it reads or waits by are checked above or
 * pinned, and so are the planner's switches.  (On an error the
 * transaction's abort restores the user, the security context and the
 * settings.)
 */
bool
pga_settle_in_step(const PgaStepOutcome *outcome, void *arg)
{
	PgaInStepSettle *in_step = arg;
	MemoryContext caller = CurrentMemoryContext;
	Oid			save_userid;
	int			save_sec_context;
	int			guc_level;

	in_step->claimed = false;
	in_step->failed_code = 0;
	if (XactIsoLevel != XACT_READ_COMMITTED || XactReadOnly ||
		GetSessionUserId() != GetAuthenticatedUserId() ||
		strcmp(GetConfigOption("synchronous_commit", false, false),
			   GetConfigOptionResetString("synchronous_commit")) != 0)
		return false;

	/* now() is when the step's transaction began: the record says its end */
	SetCurrentStatementStartTimestamp();
	GetUserIdAndSecContext(&save_userid, &save_sec_context);
	/* pinned for the bookkeeping only, not for the rest of the step */
	guc_level = NewGUCNestLevel();
	pga_settle_pin_settings(GUC_ACTION_SAVE);
	SetUserIdAndSecContext(BOOTSTRAP_SUPERUSERID,
						   save_sec_context | SECURITY_LOCAL_USERID_CHANGE |
						   SECURITY_RESTRICTED_OPERATION);
	PG_TRY();
	{
		/*
		 * No claim while asked to quit, or with settings to reload (they may
		 * say pgautomator.enabled = off; reloading waits for the commit).
		 */
		in_step->claimed = pga_settle_call(outcome,
										   pga_enabled && !ConfigReloadPending &&
										   !pga_shm_quitting(in_step->seg),
										   &in_step->next);
	}
	PG_CATCH();
	{
		ErrorData  *edata;

		MemoryContextSwitchTo(caller);
		edata = CopyErrorData();
		FlushErrorState();
		if (edata->sqlerrcode == ERRCODE_QUERY_CANCELED)
			ReThrowError(edata);
		in_step->failed_code = edata->sqlerrcode;
		ereport(LOG,
				(errcode(edata->sqlerrcode),
				 errmsg("pgautomator step worker: could not record step run " INT64_FORMAT
						" in its transaction, which fails: %s", outcome->step_run_id, edata->message),
				 edata->detail ? errdetail_internal("%s", edata->detail) : 0));
		ereport(ERROR,
				(errcode(edata->sqlerrcode),
				 errmsg("could not record the step's outcome in its transaction, which is rolled back: %s",
						edata->message),
				 edata->detail ? errdetail_internal("%s", edata->detail) : 0,
				 edata->hint ? errhint("%s", edata->hint) : 0));
	}
	PG_END_TRY();
	SetUserIdAndSecContext(save_userid, save_sec_context);
	AtEOXact_GUC(true, guc_level);
	MemoryContextSwitchTo(caller);
	return true;
}

/*
 * pga_settle_transaction runs fn(arg) in a transaction of its own, as the
 * bootstrap superuser in a security-restricted operation with the pinned
 * settings, then commits it (or, unless keep, rolls it back).  Called
 * outside a transaction.  Returns NULL, or the error that rolled it back,
 * copied into the caller's memory context.
 */
static ErrorData *
pga_settle_transaction(void (*fn) (void *), void *arg, bool keep)
{
	MemoryContext caller = CurrentMemoryContext;
	Oid			save_userid;
	int			save_sec_context;
	ErrorData  *volatile error = NULL;

	SetCurrentStatementStartTimestamp();
	StartTransactionCommand();
	GetUserIdAndSecContext(&save_userid, &save_sec_context);
	PG_TRY();
	{
		pga_settle_pin_settings(GUC_ACTION_LOCAL);
		SetUserIdAndSecContext(BOOTSTRAP_SUPERUSERID,
							   save_sec_context | SECURITY_LOCAL_USERID_CHANGE |
							   SECURITY_RESTRICTED_OPERATION);
		fn(arg);
		SetUserIdAndSecContext(save_userid, save_sec_context);
		if (keep)
			CommitTransactionCommand();
		else
			AbortCurrentTransaction();
	}
	PG_CATCH();
	{
		MemoryContextSwitchTo(caller);
		error = CopyErrorData();
		FlushErrorState();
		AbortCurrentTransaction();
		SetUserIdAndSecContext(save_userid, save_sec_context);
	}
	PG_END_TRY();
	MemoryContextSwitchTo(caller);
	return error;
}

/*
 * pga_rehearse_call is _worker_rehearse for pga_settle_transaction.
 */
static void
pga_rehearse_call(void *arg)
{
	Oid			types[2] = {NAMEOID, INT4OID};
	Datum		values[2];
	NameData	run_as;

	namestrcpy(&run_as, GetUserNameFromId(GetAuthenticatedUserId(), false));
	values[0] = NameGetDatum(&run_as);
	values[1] = Int32GetDatum(MyProcPid);
	pga_spi_run("SELECT pgautomator._worker_rehearse($1, $2)", 2, types, values, NULL);
	pga_settle_prepare();
	pga_spi_done();
}

/*
 * pga_settle_rehearse rehearses the bookkeeping of a step (see
 * _worker_rehearse) in a worker started ahead of its first step, as
 * pga_settle_step would run it, so that the first step finds it compiled
 * and planned.  Called outside a transaction.  Its transaction is rolled
 * back, not committed: nothing of it is kept but the compiled functions
 * and plans, and a rollback needs no WAL flush.  A rehearsal that fails
 * changes nothing either; it is logged (its first step then plans the
 * bookkeeping itself, as without it).
 */
void
pga_settle_rehearse(void)
{
	ErrorData  *edata = pga_settle_transaction(pga_rehearse_call, NULL, false);

	if (edata != NULL)
	{
		ereport(LOG,
				(errcode(edata->sqlerrcode),
				 errmsg("pgautomator step worker: could not rehearse its bookkeeping: %s", edata->message)));
		FreeErrorData(edata);
	}
}

/*
 * pga_settle_error_may_pass tells whether a bookkeeping error was a
 * conflict that may not come again (a cancel, a deadlock, a serialization
 * failure, a lock timeout), rather than one each attempt would meet.
 */
bool
pga_settle_error_may_pass(int sqlerrcode)
{
	return sqlerrcode == ERRCODE_QUERY_CANCELED ||
		sqlerrcode == ERRCODE_T_R_DEADLOCK_DETECTED ||
		sqlerrcode == ERRCODE_T_R_SERIALIZATION_FAILURE ||
		sqlerrcode == ERRCODE_LOCK_NOT_AVAILABLE;
}

/* what pga_settle_step asks of pga_settle_call and gets back */
typedef struct PgaSettleArgs
{
	const PgaStepOutcome *outcome;
	bool		claim;
	PgaStepInput *next;
	bool		claimed;
} PgaSettleArgs;

/*
 * pga_settle_step_call is pga_settle_call for pga_settle_transaction.
 */
static void
pga_settle_step_call(void *arg)
{
	PgaSettleArgs *args = arg;

	args->claimed = pga_settle_call(args->outcome, args->claim, args->next);
}

/*
 * pga_settle_step records the outcome of the worker's step run and, when
 * claim is set, claims its next one into next.  On an error nothing is
 * recorded, a WARNING says why, and PGA_SETTLE_FAILED (or, for an error
 * that may not come again, PGA_SETTLE_RETRY_LATER) tells the caller to hand
 * the outcome to the launcher as before.  Called outside a
 * transaction, after pga_session_reset.
 */
PgaSettleResult
pga_settle_step(const PgaStepOutcome *outcome, bool claim, PgaStepInput *next)
{
	PgaSettleArgs args = {outcome, claim, next, false};
	ErrorData  *edata;
	PgaSettleResult result;

	next->code = NULL;
	edata = pga_settle_transaction(pga_settle_step_call, &args, true);

	if (edata == NULL)
		return args.claimed ? PGA_SETTLE_NEXT : PGA_SETTLE_DONE;
	if (next->code != NULL)
	{
		pfree(next->code);		/* claimed or taken, then rolled back */
		next->code = NULL;
	}
	ereport(WARNING,
			(errcode(edata->sqlerrcode),
			 errmsg("pgautomator step worker: could not record step run " INT64_FORMAT " itself: %s",
					outcome->step_run_id, edata->message),
			 errdetail("The launcher records it instead.")));
	result = pga_settle_error_may_pass(edata->sqlerrcode) ? PGA_SETTLE_RETRY_LATER : PGA_SETTLE_FAILED;
	FreeErrorData(edata);
	return result;
}

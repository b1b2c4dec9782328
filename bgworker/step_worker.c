/*-------------------------------------------------------------------------
 *
 * step_worker.c
 *	  The dynamic background worker that runs step runs.
 *
 * It reads its first step run from the segment whose handle the launcher
 * passed (a spare has none yet: it waits, idle, for its first one; see
 * launcher_spares.c), connects to the step's database AS the job's run-as
 * role (the session user from connection time: the code cannot switch
 * back to anything more privileged), runs the code and writes the outcome
 * into the segment.  It then stays connected up to
 * pgautomator.worker_idle_time for further step runs of the same role and
 * database, resetting the session (DISCARD ALL) before each, so it saves
 * the next step the cost of a new process and connection.  If it ends any
 * other way (a FATAL error: the role may not log in, the worker was
 * terminated) an exit callback writes that as the outcome of the step run
 * it was running.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/htup_details.h"
#include "access/xact.h"
#include "catalog/pg_authid.h"
#include "commands/dbcommands.h"
#include "mb/pg_wchar.h"
#include "miscadmin.h"
#include "nodes/parsenodes.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "postmaster/interrupt.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "tcop/tcopprot.h"
#include "utils/acl.h"
#include "utils/guc.h"
#include "utils/memutils.h"
#include "utils/syscache.h"
#include "utils/timestamp.h"

#include "pgautomator.h"

static dsm_segment *pga_step_segment = NULL;
static bool pga_self_settle = false;	/* records its own outcomes */
static bool pga_in_step_settle = true;	/* ... in the step's transaction */
static bool pga_reset_failed = false;	/* the session is not fresh: exit */

/*
 * pga_step_worker_exit writes an outcome when the worker ends while running
 * a step run: the FATAL error that ended it (the role may not log in, the
 * database is gone), except a termination.  (A step run
 * assigned just as an idle worker exits was never taken up: the launcher
 * gives it back.)
 */
static void
pga_step_worker_exit(int code, Datum arg)
{
	PgaStepOutcome outcome;
	char		sqlstate[6];
	char	   *message;

	/* a hand-out entry its unfinished bookkeeping held goes back */
	pga_handout_xact_end(false);
	if (pga_step_segment == NULL || !pga_shm_taken(pga_step_segment))
		return;
	memset(&outcome, 0, sizeof(outcome));
	/* the segment knows it from the moment it is taken up or claimed */
	outcome.step_run_id = pga_shm_current(pga_step_segment);
	outcome.succeeded = false;
	if (pga_messages_last_fatal(sqlstate, &message) && strncmp(sqlstate, "57P", 3) == 0)
	{
		/*
		 * Terminated (pg_terminate_backend, server shutdown): no outcome, so
		 * the dispatcher ends the step run as crashed, like a killed worker.
		 */
		return;
	}
	if (pga_messages_last_fatal(sqlstate, &message))
	{
		strlcpy(outcome.sqlstate, sqlstate, sizeof(outcome.sqlstate));
		outcome.error = psprintf("step worker ended: %s", message);
	}
	else
	{
		strlcpy(outcome.sqlstate, "XX000", sizeof(outcome.sqlstate));
		outcome.error = psprintf("step worker exited with code %d without an outcome", code);
	}
	outcome.messages = pga_messages_finish();
	outcome.encoding = GetDatabaseEncoding();
	pga_shm_write_outcome(pga_step_segment, &outcome);
}

/*
 * pga_step_worker_wait waits for the next assignment; false when the
 * worker should exit instead (asked to, or idle too long).
 */
static bool
pga_step_worker_wait(dsm_segment *seg)
{
	TimestampTz idle_since = GetCurrentTimestamp();

	SetConfigOption("application_name", "pgautomator step idle", PGC_USERSET, PGC_S_SESSION);
	pgstat_report_activity(STATE_IDLE, NULL);
	/* what its steps did reaches the statistics (and autovacuum) now */
	pgstat_report_stat(true);
	for (;;)
	{
		long		left_ms;

		/* idle, a cancel has nothing to cancel (as for a client's backend) */
		QueryCancelPending = false;
		CHECK_FOR_INTERRUPTS();
		if (ConfigReloadPending)
		{
			ConfigReloadPending = false;
			ProcessConfigFile(PGC_SIGHUP);
		}
		if (pga_shm_quitting(seg))
			return false;
		if (pga_shm_pending(seg))
			return true;
		left_ms = (long) pga_worker_idle_time * 1000L -
			(long) ((GetCurrentTimestamp() - idle_since) / 1000);
		if (left_ms <= 0)
			return false;
		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
						 left_ms, PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
	}
}

/*
 * pga_step_worker_wait_release waits, connected, while the launcher holds
 * the first step run (it started the worker ahead of the instant the step
 * is due, before its claim committed); false when asked to exit instead.
 */
static bool
pga_step_worker_wait_release(dsm_segment *seg)
{
	while (pga_shm_held(seg))
	{
		if (pga_shm_quitting(seg))
			return false;
		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_EXIT_ON_PM_DEATH, -1L, PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
		/* no step runs yet: a cancel has nothing to cancel (nor may end it) */
		QueryCancelPending = false;
		CHECK_FOR_INTERRUPTS();
	}
	return true;
}

/*
 * pga_step_worker_same_session tells whether this session may run the
 * step: same database, and its run-as role is still the role this session
 * connected as (not dropped and made again) and may still log in.
 */
static bool
pga_step_worker_same_session(const PgaStepInput *input)
{
	bool		same;
	HeapTuple	tuple;

	StartTransactionCommand();
	same = strcmp(get_database_name(MyDatabaseId), input->database) == 0 &&
		get_role_oid(input->run_as, true) == GetSessionUserId();
	tuple = SearchSysCache1(AUTHOID, ObjectIdGetDatum(GetSessionUserId()));
	if (!HeapTupleIsValid(tuple))
		same = false;
	else
	{
		same = same && ((Form_pg_authid) GETSTRUCT(tuple))->rolcanlogin;
		ReleaseSysCache(tuple);
	}
	CommitTransactionCommand();
	return same;
}

/*
 * pga_step_worker_run runs one step run into outcome; in_step, when given,
 * lets the step's own transaction record it (pga_settle_in_step).
 */
static void
pga_step_worker_run(const PgaStepInput *input, PgaStepOutcome *outcome, PgaInStepSettle *in_step)
{
	char		appname[NAMEDATALEN];

	snprintf(appname, sizeof(appname), "pgautomator step " INT64_FORMAT, input->step_run_id);
	SetConfigOption("application_name", appname, PGC_USERSET, PGC_S_SESSION);
	pgstat_report_activity(STATE_RUNNING, input->code);

	memset(outcome, 0, sizeof(PgaStepOutcome));
	pga_exec_step(input, outcome, in_step ? pga_settle_in_step : NULL, in_step);
	outcome->messages = pga_messages_finish();
	outcome->encoding = GetDatabaseEncoding();

	/*
	 * A record that failed within the step failed the step.  Unless that
	 * was a conflict that may not come again (a deadlock, a serialization
	 * failure, a lock timeout), this worker records its later steps after
	 * their commits: an error that would come each time costs at most this
	 * one step's work.
	 */
	if (in_step && in_step->failed_code != 0 && !pga_settle_error_may_pass(in_step->failed_code))
		pga_in_step_settle = false;
}

/*
 * pga_step_worker_recorded moves on from a step whose outcome committed
 * with it: resets the session and takes the next step run claimed there,
 * if any (true).  A session that cannot be reset gives that one back.
 */
static bool
pga_step_worker_recorded(dsm_segment *seg, PgaStepOutcome *outcome, PgaInStepSettle *in_step,
						 PgaStepInput *next)
{
	int64		done = outcome->step_run_id;

	/* from now on an exit speaks for the claimed one */
	if (in_step->claimed)
		pga_shm_set_current(seg, in_step->next.step_run_id);
	if (!pga_session_reset(in_step->claimed))
		pga_reset_failed = true;
	else if (in_step->claimed)
	{
		*next = in_step->next;
		in_step->claimed = false;
		return true;
	}
	memset(outcome, 0, sizeof(PgaStepOutcome));
	if (in_step->claimed)
	{
		/* never run: the launcher puts it back in the queue */
		outcome->step_run_id = in_step->next.step_run_id;
		outcome->not_run = true;
		pfree(in_step->next.code);
		in_step->claimed = false;
	}
	else
	{
		/* recorded: the launcher only learns that the worker is idle */
		outcome->step_run_id = done;
		outcome->self_reported = true;
	}
	pga_shm_write_outcome(seg, outcome);
	return false;
}

/*
 * pga_step_worker_settle records the outcome in this session when the
 * worker is connected to the extension's database (see step_settle.c) and
 * may claim the next step run into next; true when it did.  Otherwise, or
 * if that fails, the outcome goes to the launcher through the segment.
 */
static bool
pga_step_worker_settle(dsm_segment *seg, PgaStepOutcome *outcome, PgaInStepSettle *in_step,
					   PgaStepInput *next)
{
	PgaSettleResult result;

	if (outcome->recorded_with_step)
		return pga_step_worker_recorded(seg, outcome, in_step, next);
	if (in_step->next.code != NULL)
	{
		/* claimed (or taken) in a transaction that then failed to commit */
		pfree(in_step->next.code);
		in_step->next.code = NULL;
		in_step->claimed = false;
	}
	if (!pga_self_settle)
	{
		pga_shm_write_outcome(seg, outcome);
		pga_reset_failed = !pga_session_reset(false);
		return false;
	}
	if (!pga_session_reset(false))
	{
		/* the launcher records it; a session that could not be reset ends */
		pga_reset_failed = true;
		pga_shm_write_outcome(seg, outcome);
		return false;
	}
	/* a busy worker sees pgautomator.enabled = off before it claims */
	if (ConfigReloadPending)
	{
		ConfigReloadPending = false;
		ProcessConfigFile(PGC_SIGHUP);
	}
	result = pga_settle_step(outcome, pga_enabled && !pga_shm_quitting(seg), next);
	if (result == PGA_SETTLE_NEXT)
	{
		pga_shm_set_current(seg, next->step_run_id);
		return true;
	}
	if (result == PGA_SETTLE_FAILED)
		pga_self_settle = false;	/* the launcher reports from now on */
	else if (result == PGA_SETTLE_DONE)
	{
		/* recorded: the launcher only learns that the worker is idle */
		int64		done = outcome->step_run_id;

		memset(outcome, 0, sizeof(PgaStepOutcome));
		outcome->step_run_id = done;
		outcome->self_reported = true;
	}
	pga_shm_write_outcome(seg, outcome);
	return false;
}

/*
 * pga_step_worker_next waits for the next assignment and takes it up into
 * input; false when the worker should exit instead (asked to, idle too
 * long, or its session may no longer run it: the launcher gets it back).
 */
static bool
pga_step_worker_next(dsm_segment *seg, PgaStepInput *input)
{
	bool		same;

	if (pga_reset_failed || !pga_step_worker_wait(seg))
		return false;
	pga_shm_read_input(seg, input);

	/*
	 * A cancel that comes now (a stop of the step run just handed over) is
	 * kept for the step's first statement, which it cancels: here, with no
	 * error handler, it would end the worker and fail the step.
	 */
	HOLD_CANCEL_INTERRUPTS();
	same = pga_step_worker_same_session(input);
	RESUME_CANCEL_INTERRUPTS();
	if (!same)
	{
		PgaStepOutcome outcome;

		memset(&outcome, 0, sizeof(outcome));
		outcome.step_run_id = input->step_run_id;
		outcome.not_run = true;
		pga_shm_write_outcome(seg, &outcome);
		return false;
	}
	pga_messages_reset();
	return true;
}

/*
 * pga_step_worker_main is the entry point of a step worker; main_arg is
 * the handle of its segment.
 */
void
pga_step_worker_main(Datum main_arg)
{
	dsm_segment *seg;
	PgaStepInput input;
	MemoryContext step_context;
	char		database[NAMEDATALEN];
	char		run_as[NAMEDATALEN];
	bool		have_input;

	/* SIGINT (pg_cancel_backend) cancels the statement, SIGTERM ends */
	pqsignal(SIGTERM, die);
	pqsignal(SIGINT, StatementCancelHandler);
	pqsignal(SIGHUP, SignalHandlerForConfigReload);
	BackgroundWorkerUnblockSignals();

	seg = dsm_attach(DatumGetUInt32(main_arg));
	if (seg == NULL)
	{
		/* the launcher that made it has gone; nobody waits for an outcome */
		ereport(LOG,
				(errmsg("pgautomator step worker: its launcher has exited, nothing to run")));
		proc_exit(0);
	}
	pga_shm_worker_attached(seg);
	pga_shm_read_session(seg, database, run_as);
	pga_step_segment = seg;
	before_shmem_exit(pga_step_worker_exit, (Datum) 0);
	pga_messages_start();

	/*
	 * A first step run, when it has one, is taken up before connecting: a
	 * FATAL error there is its outcome.  A spare has none yet.
	 */
	MemoryContextSwitchTo(TopMemoryContext);
	have_input = pga_shm_pending(seg);
	if (have_input)
		pga_shm_read_input(seg, &input);

	BackgroundWorkerInitializeConnection(database, run_as, 0);
	pga_messages_raise_level();
	pga_self_settle = strcmp(database, pga_database) == 0;
	pga_handout_worker_init();

	/*
	 * A spare (started ahead of a due instant) has the time to rehearse,
	 * unless its first step came while it connected.  (One held for a
	 * prepared claim is released within milliseconds: it would only make
	 * its first step wait for the rehearsal.)
	 */
	if (pga_self_settle && !have_input && !pga_shm_pending(seg))
		pga_settle_rehearse();
	if (!pga_step_worker_wait_release(seg))
	{
		/* its claim was rolled back: nothing ran, nothing to report */
		pga_step_segment = NULL;
		proc_exit(0);
	}

	step_context = AllocSetContextCreate(TopMemoryContext, "pgautomator step worker",
										 ALLOCSET_DEFAULT_SIZES);
	for (;;)
	{
		PgaStepOutcome outcome;
		PgaStepInput next;
		PgaInStepSettle in_step;
		bool		claimed;

		/* (the code of an input is in TopMemoryContext) */
		MemoryContextSwitchTo(TopMemoryContext);
		if (!have_input && !pga_step_worker_next(seg, &input))
			break;
		have_input = false;
		MemoryContextSwitchTo(step_context);
		/* a busy worker sees pgautomator.enabled = off before it claims */
		if (ConfigReloadPending)
		{
			ConfigReloadPending = false;
			ProcessConfigFile(PGC_SIGHUP);
		}
		memset(&in_step, 0, sizeof(in_step));
		in_step.seg = seg;
		pga_step_worker_run(&input, &outcome,
							pga_self_settle && pga_in_step_settle ? &in_step : NULL);
		claimed = pga_step_worker_settle(seg, &outcome, &in_step, &next);
		/* a busy worker sends its statistics at most once a second */
		pgstat_report_stat(false);
		MemoryContextSwitchTo(TopMemoryContext);
		MemoryContextReset(step_context);
		pfree(input.code);
		if (claimed)
		{
			input = next;
			have_input = true;
			pga_messages_reset();
		}
	}
	proc_exit(0);
}

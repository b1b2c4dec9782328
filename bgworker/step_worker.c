/*-------------------------------------------------------------------------
 *
 * step_worker.c
 *	  The dynamic background worker that runs one step run.
 *
 * It reads its inputs from the segment whose handle the launcher passed,
 * connects to the step's database AS the job's run-as role (the session
 * user from connection time: the code cannot switch back to anything
 * more privileged), runs the code and writes its outcome into the segment.
 * If it ends any other way (a FATAL error: the role may not log in, the
 * worker was terminated) an exit callback writes that as the outcome.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "mb/pg_wchar.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "postmaster/interrupt.h"
#include "storage/ipc.h"
#include "tcop/tcopprot.h"
#include "utils/guc.h"

#include "pgautomator.h"

static dsm_segment *pga_step_segment = NULL;

/*
 * pga_step_worker_exit writes an outcome when the worker ends without
 * having written one: the FATAL error that ended it, if any was seen.
 */
static void
pga_step_worker_exit(int code, Datum arg)
{
	PgaStepOutcome outcome;
	char		sqlstate[6];
	char	   *message;

	if (pga_step_segment == NULL || pga_shm_outcome_written(pga_step_segment))
		return;
	memset(&outcome, 0, sizeof(outcome));
	outcome.succeeded = false;
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
 * pga_step_worker_main is the entry point of a step worker; main_arg is
 * the handle of the step run's segment.
 */
void
pga_step_worker_main(Datum main_arg)
{
	dsm_segment *seg;
	PgaStepInput input;
	PgaStepOutcome outcome;
	char		appname[NAMEDATALEN];

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
	pga_shm_read_input(seg, &input);
	pga_step_segment = seg;
	before_shmem_exit(pga_step_worker_exit, (Datum) 0);
	pga_messages_start();

	BackgroundWorkerInitializeConnection(input.database, input.run_as, 0);

	snprintf(appname, sizeof(appname), "pgautomator step " INT64_FORMAT, input.step_run_id);
	SetConfigOption("application_name", appname, PGC_USERSET, PGC_S_SESSION);
	pga_messages_raise_level();
	pgstat_report_activity(STATE_RUNNING, input.code);

	memset(&outcome, 0, sizeof(outcome));
	pga_exec_step(&input, &outcome);
	outcome.messages = pga_messages_finish();
	outcome.encoding = GetDatabaseEncoding();
	pga_shm_write_outcome(seg, &outcome);
	pgstat_report_activity(STATE_IDLE, NULL);
	proc_exit(0);
}

/*-------------------------------------------------------------------------
 *
 * mailer.c
 *	  The mailer process: sends the notification outbox.
 *
 * Finishing a run or a step queues its e-mail in pgautomator.mail and
 * notifies the channel pgautomator_mail.  Sending takes network round
 * trips to an SMTP server that may be slow or down, so it happens here, in
 * a background worker of its own, never in the launcher's dispatcher pass.
 * The sending itself is pgautomator._send_mail() (PL/Python, smtplib); this
 * process only calls it when notified, and every mailer_interval for the
 * retries of messages that could not be sent.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xact.h"
#include "commands/async.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "postmaster/interrupt.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "tcop/tcopprot.h"
#include "utils/guc.h"
#include "utils/snapmgr.h"

#include "pgautomator.h"

/*
 * Messages per call, each call its own transaction: one, so that a message
 * the server accepted is marked sent before the next is tried (a batch
 * rolled back by an error or a crash resent every message it had sent).
 * A call that handled a full batch means: call again at once.
 */
#define PGA_MAIL_BATCH 1

typedef struct PgaMailPass
{
	bool		ready;			/* the extension and _send_mail exist */
	int			handled;		/* messages sent or attempted */
} PgaMailPass;

/* the table _send_mail reads and then writes (see table_locks.c) */
static const char *const pga_mailer_tables[] = {"mail"};

/*
 * pga_mailer_call runs the sending function, if the extension is installed
 * in this database, and records how many messages it handled.
 */
static void
pga_mailer_call(void *arg)
{
	PgaMailPass *pass = (PgaMailPass *) arg;
	bool		isnull;
	bool		queued = false;
	int			rc;

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	PushActiveSnapshot(GetTransactionSnapshot());
	rc = SPI_execute("SELECT pg_catalog.to_regprocedure('pgautomator._send_mail(integer)') IS NOT NULL",
					 true, 1);
	if (rc != SPI_OK_SELECT || SPI_processed != 1)
		elog(ERROR, "looking up pgautomator._send_mail failed");
	pass->ready = DatumGetBool(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));

	/*
	 * Every NOTIFY in this database wakes the mailer, the launcher's too (a
	 * listener learns the channel only by reading the queue): an index probe
	 * first, so that a burst of fires does not pay for a call of the
	 * sending function each time.
	 */
	if (pass->ready)
	{
		pga_lock_tables(pga_mailer_tables, lengthof(pga_mailer_tables));
		rc = SPI_execute("SELECT EXISTS (SELECT FROM pgautomator.mail m WHERE m.state OPERATOR(pg_catalog.=) 'queued'"
						 " AND m.next_attempt_at OPERATOR(pg_catalog.<=) pg_catalog.now())", true, 1);
		if (rc != SPI_OK_SELECT || SPI_processed != 1)
			elog(ERROR, "looking for queued e-mails failed");
		queued = DatumGetBool(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
	}
	if (queued)
	{
		rc = SPI_execute("SELECT pgautomator._send_mail(" CppAsString2(PGA_MAIL_BATCH) ")", false, 1);
		if (rc != SPI_OK_SELECT || SPI_processed != 1)
			elog(ERROR, "pgautomator._send_mail returned SPI code %d", rc);
		pass->handled = DatumGetInt32(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
	}
	PopActiveSnapshot();
	SPI_finish();
}

/*
 * pga_mailer_pass sends one batch in a transaction of its own; an error is
 * logged and the mailer lives on.  Returns the pass's result.
 */
static PgaMailPass
pga_mailer_pass(void)
{
	PgaMailPass pass = {false, 0};

	SetCurrentStatementStartTimestamp();
	StartTransactionCommand();
	pgstat_report_activity(STATE_RUNNING, "sending notification e-mails");
	(void) pga_subxact(pga_mailer_call, &pass, "sending notification e-mails");
	CommitTransactionCommand();
	pgstat_report_stat(false);
	return pass;
}

/*
 * pga_mailer_main is the entry point of the mailer.
 */
void
pga_mailer_main(Datum main_arg)
{
	pqsignal(SIGHUP, SignalHandlerForConfigReload);
	pqsignal(SIGTERM, die);
	BackgroundWorkerUnblockSignals();

	BackgroundWorkerInitializeConnection(pga_database, NULL, 0);
	SetConfigOption("application_name", "pgautomator mailer", PGC_USERSET, PGC_S_SESSION);

	StartTransactionCommand();
	Async_Listen("pgautomator_mail");
	CommitTransactionCommand();

	for (;;)
	{
		PgaMailPass pass;
		long		sleep_ms = pga_mailer_interval * 1000L;

		/* idle, a cancel has nothing to cancel (and would end the mailer) */
		QueryCancelPending = false;
		CHECK_FOR_INTERRUPTS();
		if (ConfigReloadPending)
		{
			ConfigReloadPending = false;
			ProcessConfigFile(PGC_SIGHUP);
		}
		if (notifyInterruptPending)
			ProcessNotifyInterrupt(false);

		pass = pga_mailer_pass();
		if (pass.ready && pass.handled >= PGA_MAIL_BATCH)
			continue;			/* more may be waiting */
		if (!pass.ready)
			sleep_ms = Max(sleep_ms, 60 * 1000L);	/* no extension here yet */

		pgstat_report_activity(STATE_IDLE, "waiting for NOTIFY pgautomator_mail");
		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
						 sleep_ms, PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
	}
}

/*
 * pga_register_mailer registers the mailer as a static background worker;
 * called from _PG_init.
 */
void
pga_register_mailer(void)
{
	BackgroundWorker worker;

	memset(&worker, 0, sizeof(worker));
	worker.bgw_flags = BGWORKER_SHMEM_ACCESS | BGWORKER_BACKEND_DATABASE_CONNECTION;
	worker.bgw_start_time = BgWorkerStart_RecoveryFinished;
	worker.bgw_restart_time = 10;
	snprintf(worker.bgw_library_name, BGW_MAXLEN, "pgautomator");
	snprintf(worker.bgw_function_name, BGW_MAXLEN, "pga_mailer_main");
	snprintf(worker.bgw_name, BGW_MAXLEN, "pgautomator mailer");
	snprintf(worker.bgw_type, BGW_MAXLEN, "pgautomator mailer");
	RegisterBackgroundWorker(&worker);
}

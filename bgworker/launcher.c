/*-------------------------------------------------------------------------
 *
 * launcher.c
 *	  The launcher process: connection, signals, and the wait between
 *	  dispatcher passes.
 *
 * It connects to pgautomator.database as the bootstrap superuser and
 * listens on the channel pgautomator_wake (through Async_Listen: SQL
 * LISTEN is refused in a background worker).  Its latch is set by a NOTIFY
 * on that channel, by the postmaster when one of its step workers starts
 * or stops, by SIGHUP and SIGTERM; otherwise it sleeps until the next due
 * instant the dispatcher returned, at most pgautomator.max_sleep.
 *
 * SIGINT (pg_cancel_backend) cancels what a pass runs; between passes it
 * is dropped.  SIGTERM ends it (the postmaster restarts it after a few seconds unless
 * the server is shutting down); on exit it stops its step workers, so the
 * next launcher can mark what they left running as crashed.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xact.h"
#include "commands/async.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "postmaster/interrupt.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "storage/proc.h"
#include "tcop/tcopprot.h"
#include "utils/guc.h"

#include "pgautomator.h"

/*
 * pga_launcher_exit stops the step workers of an exiting launcher.
 */
static void
pga_launcher_exit(int code, Datum arg)
{
	pga_handout_reset(-1);
	pga_slots_terminate_all();
}

/*
 * pga_launcher_listen subscribes to the wake-up channel.
 */
static void
pga_launcher_listen(void)
{
	StartTransactionCommand();
	Async_Listen("pgautomator_wake");
	CommitTransactionCommand();
}

/*
 * pga_launcher_show_idle tells pg_stat_activity what the launcher waits for.
 */
static void
pga_launcher_show_idle(long sleep_ms)
{
	char		activity[128];

	if (!pga_enabled)
		snprintf(activity, sizeof(activity),
				 "disabled (pgautomator.enabled = off), %d step workers running",
				 pga_slots_running());
	else
		snprintf(activity, sizeof(activity),
				 "waiting up to %ld ms for NOTIFY pgautomator_wake or a step worker, %d running",
				 sleep_ms, pga_slots_running());
	pgstat_report_activity(STATE_IDLE, activity);
}

/*
 * pga_launcher_main is the entry point of the launcher.
 */
void
pga_launcher_main(Datum main_arg)
{
	bool		notified = true;

	pqsignal(SIGHUP, SignalHandlerForConfigReload);
	pqsignal(SIGTERM, die);
	BackgroundWorkerUnblockSignals();

	BackgroundWorkerInitializeConnection(pga_database, NULL, 0);
	SetConfigOption("application_name", "pgautomator launcher", PGC_USERSET, PGC_S_SESSION);

	pga_slots_init();
	pga_handout_reset(PGA_MY_PROCNO);
	before_shmem_exit(pga_launcher_exit, (Datum) 0);
	pga_launcher_listen();

	for (;;)
	{
		long		sleep_ms;

		/*
		 * Between passes a cancel (pg_cancel_backend: the launcher shows as
		 * idle) has nothing to cancel, as for a client's idle backend; with
		 * no error handler out here it would end the launcher and its steps.
		 * A pass catches the cancels that reach it as errors.
		 */
		QueryCancelPending = false;
		CHECK_FOR_INTERRUPTS();
		if (ConfigReloadPending)
		{
			ConfigReloadPending = false;
			ProcessConfigFile(PGC_SIGHUP);
			notified = true;
		}
		if (notifyInterruptPending)
		{
			/* reads (and drops) the queued notifications */
			ProcessNotifyInterrupt(false);
			notified = true;
		}

		(void) pga_slots_collect();
		sleep_ms = pga_launcher_pass(notified);
		notified = false;

		/*
		 * Table statistics of the dispatcher's changes, at most once a
		 * second: autovacuum needs them to keep the queue tables small.
		 */
		pgstat_report_stat(false);

		/* a NOTIFY during the pass (perhaps its own) means: look again */
		if (notifyInterruptPending || sleep_ms <= 0)
			continue;

		/* a due instant nearer: workers for its steps connect meanwhile */
		pga_launcher_spares(&sleep_ms);

		/* a due instant near: prepare it, commit it at the instant */
		if (pga_launcher_prefire(&sleep_ms))
		{
			notified = true;
			continue;
		}

		pga_launcher_show_idle(sleep_ms);
		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
						 sleep_ms, PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
	}
}

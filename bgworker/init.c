/*-------------------------------------------------------------------------
 *
 * init.c
 *	  Settings of pgautomator and registration of the launcher.
 *
 * Everything here happens in the postmaster while it loads
 * shared_preload_libraries; loaded any other way the library does nothing.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "fmgr.h"
#include "miscadmin.h"
#include "postmaster/bgworker.h"
#include "utils/guc.h"

#include "pgautomator.h"

PG_MODULE_MAGIC;

void		_PG_init(void);

char	   *pga_database = NULL;
int			pga_max_workers = 8;
bool		pga_enabled = true;
int			pga_max_sleep = 10;
int			pga_worker_idle_time = 5;
int			pga_mailer_interval = 30;

/*
 * _PG_init defines the settings and registers the launcher and the mailer
 * as static background workers.  They start once recovery has finished, so
 * a standby runs nothing until it is promoted, and the postmaster restarts
 * them a few seconds after they exit with an error or crash.
 */
void
_PG_init(void)
{
	BackgroundWorker worker;

	if (!process_shared_preload_libraries_in_progress)
		return;

	DefineCustomStringVariable("pgautomator.database",
							   "Database in which the pgautomator extension is installed.",
							   "The launcher connects to it and runs the dispatcher there.",
							   &pga_database,
							   "postgres",
							   PGC_POSTMASTER,
							   0,
							   NULL, NULL, NULL);

	DefineCustomIntVariable("pgautomator.max_workers",
							"Most step workers running at once.",
							"Each takes one of max_worker_processes; ready steps beyond it wait their turn.",
							&pga_max_workers,
							8, 1, 1000,
							PGC_SIGHUP,
							0,
							NULL, NULL, NULL);

	DefineCustomBoolVariable("pgautomator.enabled",
							 "Whether the launcher starts runs and steps.",
							 "When off, the launcher idles; running steps finish.",
							 &pga_enabled,
							 true,
							 PGC_SIGHUP,
							 0,
							 NULL, NULL, NULL);

	DefineCustomIntVariable("pgautomator.max_sleep",
							"Longest time the launcher sleeps between dispatcher passes.",
							"It also wakes at the next due instant and on NOTIFY pgautomator_wake.",
							&pga_max_sleep,
							10, 1, 3600,
							PGC_SIGHUP,
							GUC_UNIT_S,
							NULL, NULL, NULL);

	DefineCustomIntVariable("pgautomator.worker_idle_time",
							"How long a step worker stays connected for more steps of its role and database.",
							"0 ends each worker after one step.  Idle workers keep their connection "
							"(a database with one cannot be dropped without FORCE).",
							&pga_worker_idle_time,
							5, 0, 3600,
							PGC_SIGHUP,
							GUC_UNIT_S,
							NULL, NULL, NULL);

	DefineCustomIntVariable("pgautomator.mailer_interval",
							"How often the mailer looks for notification e-mails to retry.",
							"New e-mails are sent at once (NOTIFY pgautomator_mail); this paces retries.",
							&pga_mailer_interval,
							30, 1, 3600,
							PGC_SIGHUP,
							GUC_UNIT_S,
							NULL, NULL, NULL);

	MarkGUCPrefixReserved("pgautomator");

	pga_handout_request_shmem();

	memset(&worker, 0, sizeof(worker));
	worker.bgw_flags = BGWORKER_SHMEM_ACCESS | BGWORKER_BACKEND_DATABASE_CONNECTION;
	worker.bgw_start_time = BgWorkerStart_RecoveryFinished;
	worker.bgw_restart_time = 5;
	snprintf(worker.bgw_library_name, BGW_MAXLEN, "pgautomator");
	snprintf(worker.bgw_function_name, BGW_MAXLEN, "pga_launcher_main");
	snprintf(worker.bgw_name, BGW_MAXLEN, "pgautomator launcher");
	snprintf(worker.bgw_type, BGW_MAXLEN, "pgautomator launcher");
	worker.bgw_main_arg = (Datum) 0;
	worker.bgw_notify_pid = 0;
	RegisterBackgroundWorker(&worker);

	pga_register_mailer();
}

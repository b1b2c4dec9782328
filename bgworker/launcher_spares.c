/*-------------------------------------------------------------------------
 *
 * launcher_spares.c
 *	  Idle step workers started ahead of a due instant (spares).
 *
 * A burst of steps due at one instant that finds no idle worker of its
 * role and database pays, at the instant, for starting each worker,
 * connecting it and compiling and planning its bookkeeping: tens of
 * milliseconds on a small machine, all of it before the first steps can
 * start.  So a while before each due instant (the lead, well within
 * pgautomator.worker_idle_time, after which an idle worker exits), the
 * launcher asks which sessions the instant's first steps need and starts
 * idle workers of those, as many as the steps and its free room allow,
 * less the workers each session already has.  They connect meanwhile and,
 * in the extension's database, rehearse their bookkeeping (_worker_rehearse),
 * and the preparation of the instant hands them its steps as it does to
 * any idle worker.  A spare nobody needs after all ends after the idle
 * time.  Spares only fill free room: they never make an idle worker exit.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xact.h"
#include "pgstat.h"
#include "utils/memutils.h"

#include "pgautomator.h"

#define PGA_SPARES_LEAD_MS	1000

static MemoryContext pga_spares_context = NULL;
static PgaSessions pga_spares_due;

/*
 * pga_spares_lead_ms returns how long before a due instant spares start:
 * 0 (none) when idle workers exit at once.
 */
long
pga_spares_lead_ms(void)
{
	return Min((long) PGA_SPARES_LEAD_MS, (long) pga_worker_idle_time * 1000L / 2);
}

/*
 * pga_spares_call is pga_call_sessions_due for pga_subxact.
 */
static void
pga_spares_call(void *arg)
{
	pga_spares_due = pga_call_sessions_due(*(TimestampTz *) arg);
}

/*
 * pga_spares_start starts the spares the steps due by the instant at need:
 * for each session, its steps (at most pgautomator.max_workers) less the
 * workers it has, while there is room.
 */
void
pga_spares_start(TimestampTz at)
{
	MemoryContext old;
	int			room = pga_slots_room();
	int			i;

	if (room <= 0)
		return;
	if (pga_spares_context == NULL)
		pga_spares_context = AllocSetContextCreate(TopMemoryContext, "pgautomator spares",
												   ALLOCSET_SMALL_SIZES);
	MemoryContextReset(pga_spares_context);
	pga_spares_due.count = 0;

	pgstat_report_activity(STATE_RUNNING, "starting step workers for a due instant");
	SetCurrentStatementStartTimestamp();
	StartTransactionCommand();
	old = MemoryContextSwitchTo(pga_spares_context);
	if (!pga_subxact(pga_spares_call, &at, "_launcher_sessions_due"))
		pga_spares_due.count = 0;
	MemoryContextSwitchTo(old);
	CommitTransactionCommand();

	for (i = 0; i < pga_spares_due.count && room > 0; i++)
	{
		PgaSession *session = &pga_spares_due.items[i];
		int			wanted = Min(session->steps, pga_max_workers) -
			pga_slots_of(session->database, session->run_as);

		for (; wanted > 0 && room > 0; wanted--, room--)
			if (!pga_slots_start_spare(session->database, session->run_as))
				return;			/* no background worker slot: try no more */
	}
}

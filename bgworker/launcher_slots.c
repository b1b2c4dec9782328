/*-------------------------------------------------------------------------
 *
 * launcher_slots.c
 *	  The launcher's table of step workers: starting them, noticing their
 *	  pids and their exits, and reporting to the dispatcher.
 *
 * A slot is taken when a claimed step run gets a segment and a dynamic
 * background worker, and is freed once its outcome is reported.  When the
 * postmaster has no free background worker slot (max_worker_processes too
 * low) the claim is given back (_launcher_release) and the launcher claims
 * no more than it has running until one of its workers exits: ready steps
 * wait in SQL, nothing is dropped.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <limits.h>

#include "mb/pg_wchar.h"
#include "miscadmin.h"
#include "postmaster/bgworker.h"
#include "storage/ipc.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"

#include "pgautomator.h"

#define PGA_MAX_SLOTS		1000	/* the maximum of pgautomator.max_workers */
#define PGA_REPORT_TRIES	5

typedef struct PgaSlot
{
	bool		in_use;
	int64		step_run_id;
	dsm_segment *seg;
	BackgroundWorkerHandle *handle;
	pid_t		pid;			/* 0 until the postmaster has started it */
	bool		pid_recorded;
	bool		exited;			/* outcome read, waiting to be reported */
	int			report_tries;
	MemoryContext context;		/* holds the outcome's texts */
	PgaStepOutcome outcome;
} PgaSlot;

static PgaSlot *pga_slots = NULL;
static int	pga_in_use = 0;
static int	pga_cap = INT_MAX;	/* lowered while worker slots are short */
static TimestampTz pga_cap_since = 0;
static int64 *pga_unstarted = NULL;	/* claimed but not started: release */
static int	pga_unstarted_count = 0;

/*
 * pga_slots_init allocates the table.
 */
void
pga_slots_init(void)
{
	pga_slots = MemoryContextAllocZero(TopMemoryContext, sizeof(PgaSlot) * PGA_MAX_SLOTS);
	pga_unstarted = MemoryContextAllocZero(TopMemoryContext, sizeof(int64) * PGA_MAX_SLOTS);
}

/*
 * pga_slots_running returns how many slots are taken.
 */
int
pga_slots_running(void)
{
	return pga_in_use;
}

/*
 * pga_slots_free returns how many more step runs the launcher may claim.
 */
int
pga_slots_free(void)
{
	int			limit;

	/* slots may have come free outside pgautomator: retry each second */
	if (pga_cap != INT_MAX &&
		TimestampDifferenceExceeds(pga_cap_since, GetCurrentTimestamp(), 1000))
		pga_cap = INT_MAX;
	limit = Min(Min(pga_max_workers, pga_cap), PGA_MAX_SLOTS);

	return Max(limit - pga_in_use - pga_unstarted_count, 0);
}

/*
 * pga_slots_capped tells whether the launcher holds back for lack of
 * background worker slots (it then retries within a second).
 */
bool
pga_slots_capped(void)
{
	return pga_cap != INT_MAX || pga_unstarted_count > 0;
}

/*
 * pga_slot_unstarted remembers a claimed step run no worker could take.
 */
static void
pga_slot_unstarted(int64 step_run_id)
{
	if (pga_unstarted_count < PGA_MAX_SLOTS)
		pga_unstarted[pga_unstarted_count++] = step_run_id;
}

/*
 * pga_slots_start starts a step worker for a claimed step run; false (and
 * the step run kept for release) when none can be started now.
 */
bool
pga_slots_start(const PgaStepInput *input)
{
	BackgroundWorker worker;
	PgaSlot    *slot = NULL;
	MemoryContext old;
	int			i;

	for (i = 0; i < PGA_MAX_SLOTS && slot == NULL; i++)
		if (!pga_slots[i].in_use)
			slot = &pga_slots[i];
	if (slot == NULL)
	{
		pga_slot_unstarted(input->step_run_id);
		return false;
	}

	memset(slot, 0, sizeof(PgaSlot));
	slot->seg = pga_shm_create(input);
	if (slot->seg == NULL)
	{
		pga_slot_unstarted(input->step_run_id);
		return false;
	}

	memset(&worker, 0, sizeof(worker));
	worker.bgw_flags = BGWORKER_SHMEM_ACCESS | BGWORKER_BACKEND_DATABASE_CONNECTION;
	worker.bgw_start_time = BgWorkerStart_ConsistentState;
	worker.bgw_restart_time = BGW_NEVER_RESTART;
	snprintf(worker.bgw_library_name, BGW_MAXLEN, "pgautomator");
	snprintf(worker.bgw_function_name, BGW_MAXLEN, "pga_step_worker_main");
	snprintf(worker.bgw_name, BGW_MAXLEN, "pgautomator step " INT64_FORMAT, input->step_run_id);
	snprintf(worker.bgw_type, BGW_MAXLEN, "pgautomator step");
	worker.bgw_main_arg = UInt32GetDatum(dsm_segment_handle(slot->seg));
	worker.bgw_notify_pid = MyProcPid;

	old = MemoryContextSwitchTo(TopMemoryContext);
	if (!RegisterDynamicBackgroundWorker(&worker, &slot->handle))
	{
		MemoryContextSwitchTo(old);
		dsm_detach(slot->seg);
		slot->seg = NULL;
		if (pga_cap == INT_MAX)
			ereport(WARNING,
					(errcode(ERRCODE_CONFIGURATION_LIMIT_EXCEEDED),
					 errmsg("pgautomator launcher: no free background worker slot for a step worker, %d running",
							pga_in_use),
					 errhint("Raise max_worker_processes above pgautomator.max_workers plus other background workers.")));
		pga_cap = pga_in_use;
		pga_cap_since = GetCurrentTimestamp();
		pga_slot_unstarted(input->step_run_id);
		return false;
	}
	MemoryContextSwitchTo(old);
	slot->in_use = true;
	slot->step_run_id = input->step_run_id;
	slot->context = AllocSetContextCreate(TopMemoryContext, "pgautomator slot",
										  ALLOCSET_SMALL_SIZES);
	pga_in_use++;
	return true;
}

/*
 * pga_slot_exited reads the outcome of a worker that has stopped and lets
 * go of its segment and handle.
 */
static void
pga_slot_exited(PgaSlot *slot)
{
	MemoryContext old = MemoryContextSwitchTo(slot->context);

	if (!pga_shm_read_outcome(slot->seg, &slot->outcome))
	{
		memset(&slot->outcome, 0, sizeof(slot->outcome));
		slot->outcome.succeeded = false;
		strlcpy(slot->outcome.sqlstate, "XX000", sizeof(slot->outcome.sqlstate));
		slot->outcome.error = pstrdup("worker crashed: the step worker exited without reporting an outcome");
		slot->outcome.encoding = GetDatabaseEncoding();
	}
	MemoryContextSwitchTo(old);
	dsm_detach(slot->seg);
	slot->seg = NULL;
	pfree(slot->handle);
	slot->handle = NULL;
	slot->exited = true;
	/* a slot came free: try the full number again */
	pga_cap = INT_MAX;
}

/*
 * pga_slots_collect notes the pids of started workers and the outcomes of
 * stopped ones; true if anything changed.  Runs outside transactions.
 */
bool
pga_slots_collect(void)
{
	bool		changed = false;
	int			i;

	for (i = 0; i < PGA_MAX_SLOTS; i++)
	{
		PgaSlot    *slot = &pga_slots[i];
		pid_t		pid;

		if (!slot->in_use || slot->exited)
			continue;
		switch (GetBackgroundWorkerPid(slot->handle, &pid))
		{
			case BGWH_STARTED:
				if (slot->pid == 0)
				{
					slot->pid = pid;
					changed = true;
				}
				break;
			case BGWH_STOPPED:
				pga_slot_exited(slot);
				changed = true;
				break;
			case BGWH_NOT_YET_STARTED:
				break;
			case BGWH_POSTMASTER_DIED:
				proc_exit(1);
				break;
		}
	}
	return changed;
}

/*
 * pga_slot_free returns a slot to the table.
 */
static void
pga_slot_free(PgaSlot *slot)
{
	MemoryContextDelete(slot->context);
	memset(slot, 0, sizeof(PgaSlot));
	pga_in_use--;
}

/*
 * pga_slot_record_pid is pga_call_started for one slot, for pga_subxact.
 */
static void
pga_slot_record_pid(void *arg)
{
	PgaSlot    *slot = arg;

	pga_call_started(slot->step_run_id, slot->pid);
}

/*
 * pga_slot_report is pga_call_report for one slot, for pga_subxact.
 */
static void
pga_slot_report(void *arg)
{
	PgaSlot    *slot = arg;

	pga_call_report(slot->step_run_id, &slot->outcome);
}

/*
 * pga_slot_release is pga_call_release (or, without it, a failed report
 * that says why) for one unstarted step run, for pga_subxact.
 */
static void
pga_slot_release(void *arg)
{
	int64		step_run_id = *(int64 *) arg;
	PgaStepOutcome outcome;

	if (pga_have_release)
	{
		pga_call_release(step_run_id);
		return;
	}
	memset(&outcome, 0, sizeof(outcome));
	strlcpy(outcome.sqlstate, "53000", sizeof(outcome.sqlstate));
	outcome.error = "could not start a step worker: no free background worker slot (raise max_worker_processes)";
	outcome.encoding = GetDatabaseEncoding();
	pga_call_report(step_run_id, &outcome);
}

/*
 * pga_slots_sync tells the dispatcher, inside the caller's transaction,
 * the pids of new workers, the outcomes of finished ones and the step runs
 * no worker could take.  Returns how many outcomes were reported.
 */
int
pga_slots_sync(void)
{
	int			reported = 0;
	int			i;

	for (i = 0; i < PGA_MAX_SLOTS; i++)
	{
		PgaSlot    *slot = &pga_slots[i];

		if (!slot->in_use)
			continue;
		if (slot->exited)
		{
			if (pga_subxact(pga_slot_report, slot, "report of a step run"))
				reported++;
			else if (++slot->report_tries < PGA_REPORT_TRIES)
				continue;
			else
				ereport(WARNING,
						(errmsg("pgautomator launcher: gave up reporting step run " INT64_FORMAT
								"; it ends as crashed when the launcher restarts", slot->step_run_id)));
			pga_slot_free(slot);
		}
		else if (slot->pid != 0 && !slot->pid_recorded)
		{
			(void) pga_subxact(pga_slot_record_pid, slot, "record of a step worker's pid");
			slot->pid_recorded = true;
		}
	}
	for (i = 0; i < pga_unstarted_count; i++)
		(void) pga_subxact(pga_slot_release, &pga_unstarted[i], "release of an unstarted step run");
	pga_unstarted_count = 0;
	return reported;
}

/*
 * pga_slots_terminate_all asks the postmaster to stop every step worker of
 * this launcher; called when the launcher exits, so that the next one can
 * treat what is left running as crashed.
 */
void
pga_slots_terminate_all(void)
{
	int			i;

	if (pga_slots == NULL)
		return;
	for (i = 0; i < PGA_MAX_SLOTS; i++)
		if (pga_slots[i].in_use && pga_slots[i].handle != NULL)
			TerminateBackgroundWorker(pga_slots[i].handle);
}

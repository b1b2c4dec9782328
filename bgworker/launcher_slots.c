/*-------------------------------------------------------------------------
 *
 * launcher_slots.c
 *	  The launcher's table of step workers: starting them or handing a
 *	  claimed step run to an idle one, noticing their pids, outcomes and
 *	  exits, and reporting to the dispatcher.
 *
 * A slot's life: RUNNING (a step run assigned) -> DONE (outcome read, to
 * be reported, unless the worker recorded it itself) -> IDLE (the worker
 * waits, connected, for another step run of its role and database) ->
 * RUNNING ... until the worker exits, when the slot is freed.  A spare
 * (launcher_spares.c) starts IDLE, with no step run.  An idle worker
 * counts against pgautomator.max_workers; when a step needs a new worker
 * and the table is full of idle ones, the longest idle is asked to exit.
 *
 * When the postmaster has no free background worker slot (max_worker_
 * processes too low) the claim is given back (_launcher_release) and the
 * launcher claims no more than it has running until one of its workers
 * exits or a second has passed: ready steps wait in SQL, nothing is dropped.
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

typedef enum PgaSlotState
{
	PGA_SLOT_FREE = 0,
	PGA_SLOT_RUNNING,
	PGA_SLOT_DONE,
	PGA_SLOT_IDLE
} PgaSlotState;

typedef struct PgaSlot
{
	PgaSlotState state;
	int64		step_run_id;
	char		database[NAMEDATALEN];
	char		run_as[NAMEDATALEN];
	dsm_segment *seg;
	BackgroundWorkerHandle *handle;
	pid_t		pid;			/* 0 until the postmaster has started it */
	bool		pid_recorded;	/* for the current step run */
	bool		exited;			/* the worker process is gone */
	bool		reserved;		/* picked for a step run of this pass */
	bool		quitting;		/* asked to exit */
	bool		held;			/* started before its claim committed */
	bool		abandoned;		/* that claim was rolled back: let it go */
	int			report_tries;
	TimestampTz idle_since;
	MemoryContext context;		/* holds the outcome's texts */
	PgaStepOutcome outcome;
} PgaSlot;

static PgaSlot *pga_slots = NULL;
static int	pga_cap = INT_MAX;	/* lowered while worker slots are short */
static TimestampTz pga_cap_since = 0;
/* a claimed step run no worker took: to release */
typedef struct PgaUnstarted
{
	int64		step_run_id;
	pid_t		pid;			/* the idle worker reserved for it, or 0 */
	int			tries;
} PgaUnstarted;

static PgaUnstarted *pga_unstarted = NULL;
static int	pga_unstarted_count = 0;

/*
 * pga_slots_init allocates the table.
 */
void
pga_slots_init(void)
{
	pga_slots = MemoryContextAllocZero(TopMemoryContext, sizeof(PgaSlot) * PGA_MAX_SLOTS);
	pga_unstarted = MemoryContextAllocZero(TopMemoryContext, sizeof(PgaUnstarted) * PGA_MAX_SLOTS);
}

/*
 * pga_slots_count returns how many slots are in the given state (all
 * taken ones for PGA_SLOT_FREE).
 */
static int
pga_slots_count(PgaSlotState state)
{
	int			n = 0;
	int			i;

	for (i = 0; i < PGA_MAX_SLOTS; i++)
		if (state == PGA_SLOT_FREE ? pga_slots[i].state != PGA_SLOT_FREE
			: pga_slots[i].state == state)
			n++;
	return n;
}

/*
 * pga_slots_running returns how many step runs are being executed or
 * waiting to be reported.
 */
int
pga_slots_running(void)
{
	return pga_slots_count(PGA_SLOT_RUNNING) + pga_slots_count(PGA_SLOT_DONE);
}

/*
 * pga_slots_limit returns how many workers may run at once now.
 */
static int
pga_slots_limit(void)
{
	return Min(Min(pga_max_workers, pga_cap), PGA_MAX_SLOTS);
}

/*
 * pga_slot_serves tells whether a slot's worker is of the given database
 * and run-as role.
 */
static bool
pga_slot_serves(const PgaSlot *slot, const char *database, const char *run_as)
{
	return strcmp(slot->database, database) == 0 && strcmp(slot->run_as, run_as) == 0;
}

/*
 * pga_slots_free returns how many more step runs the launcher may claim;
 * idle workers do not count (they take new step runs or make room).
 */
int
pga_slots_free(void)
{
	/* slots may have come free outside pgautomator: retry each second */
	if (pga_cap != INT_MAX &&
		TimestampDifferenceExceeds(pga_cap_since, GetCurrentTimestamp(), 1000))
		pga_cap = INT_MAX;
	return Max(pga_slots_limit() - pga_slots_running() - pga_unstarted_count, 0);
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
pga_slot_unstarted(int64 step_run_id, pid_t pid)
{
	if (pga_unstarted_count < PGA_MAX_SLOTS)
	{
		PgaUnstarted *u = &pga_unstarted[pga_unstarted_count++];

		u->step_run_id = step_run_id;
		u->pid = pid;
		u->tries = 0;
	}
}

/*
 * pga_slots_reserve picks an idle worker of the step's role and database,
 * whose segment holds the step's code, for a claimed step run, so that its
 * pid can be recorded in the claiming transaction; returns the slot number
 * or -1.
 */
int
pga_slots_reserve(const PgaStepInput *input)
{
	int			i;

	for (i = 0; i < PGA_MAX_SLOTS; i++)
	{
		PgaSlot    *slot = &pga_slots[i];

		if (slot->state == PGA_SLOT_IDLE && !slot->reserved && !slot->quitting &&
			!slot->exited && slot->pid != 0 &&
			pga_slot_serves(slot, input->database, input->run_as) &&
			pga_shm_fits(slot->seg, input))
		{
			slot->reserved = true;
			slot->pid_recorded = false;	/* until pga_slots_reserved_recorded */
			return i;
		}
	}
	return -1;
}

/*
 * pga_slots_reserved_pid returns the pid of a reserved slot's worker.
 */
int
pga_slots_reserved_pid(int slotno)
{
	return (int) pga_slots[slotno].pid;
}

/*
 * pga_slots_reserved_recorded notes that the pid of a reserved slot's
 * worker was recorded with the claim; otherwise pga_slots_sync records it
 * once the worker runs the step run.
 */
void
pga_slots_reserved_recorded(int slotno)
{
	pga_slots[slotno].pid_recorded = true;
}

/*
 * pga_slots_make_room asks the longest idle worker to exit when running
 * and idle workers fill pgautomator.max_workers.
 */
static void
pga_slots_make_room(void)
{
	PgaSlot    *oldest = NULL;
	int			taken = 0;
	int			i;

	for (i = 0; i < PGA_MAX_SLOTS; i++)
	{
		PgaSlot    *slot = &pga_slots[i];

		if (slot->state == PGA_SLOT_FREE || slot->quitting)
			continue;
		taken++;
		if (slot->state == PGA_SLOT_IDLE && !slot->reserved &&
			(oldest == NULL || slot->idle_since < oldest->idle_since))
			oldest = slot;
	}
	if (taken >= pga_max_workers && oldest != NULL)
	{
		pga_shm_quit(oldest->seg);
		oldest->quitting = true;
	}
}

/*
 * pga_slot_assign hands a claimed step run to a reserved idle worker.
 */
static bool
pga_slot_assign(PgaSlot *slot, const PgaStepInput *input)
{
	slot->reserved = false;
	if (slot->exited || !pga_shm_assign(slot->seg, input))
		return false;
	slot->state = PGA_SLOT_RUNNING;
	slot->step_run_id = input->step_run_id;
	/* (pid_recorded: whether recording it with the claim succeeded) */
	slot->report_tries = 0;
	return true;
}

/*
 * pga_slot_clear lets go of a slot whose worker was not registered.
 */
static void
pga_slot_clear(PgaSlot *slot)
{
	if (slot->seg)
		dsm_detach(slot->seg);
	if (slot->context)
		MemoryContextDelete(slot->context);
	memset(slot, 0, sizeof(PgaSlot));
}

/*
 * pga_slot_register starts a new worker for a claimed step run (held: not
 * to run it before pga_slots_release_held), or a spare for none
 * (step_run_id 0).
 */
static bool
pga_slot_register(const PgaStepInput *input, bool held)
{
	BackgroundWorker worker;
	PgaSlot    *slot = NULL;
	MemoryContext old;
	int			i;

	pga_slots_make_room();
	for (i = 0; i < PGA_MAX_SLOTS && slot == NULL; i++)
		if (pga_slots[i].state == PGA_SLOT_FREE)
			slot = &pga_slots[i];
	if (slot == NULL)
		return false;

	/*
	 * What may fail (out of memory; a full /dev/shm fails dsm_create with
	 * an ERROR) comes before the worker is registered: on an error the slot
	 * is let go and nothing runs the step run, which the caller gives back.
	 */
	memset(slot, 0, sizeof(PgaSlot));
	PG_TRY();
	{
		slot->context = AllocSetContextCreate(TopMemoryContext, "pgautomator slot",
											  ALLOCSET_SMALL_SIZES);
		slot->seg = pga_shm_create(input);
	}
	PG_CATCH();
	{
		pga_slot_clear(slot);
		PG_RE_THROW();
	}
	PG_END_TRY();
	if (slot->seg == NULL)
	{
		pga_slot_clear(slot);
		return false;
	}
	if (held)
		pga_shm_hold(slot->seg);
	slot->held = held;

	memset(&worker, 0, sizeof(worker));
	worker.bgw_flags = BGWORKER_SHMEM_ACCESS | BGWORKER_BACKEND_DATABASE_CONNECTION;
	worker.bgw_start_time = BgWorkerStart_ConsistentState;
	worker.bgw_restart_time = BGW_NEVER_RESTART;
	snprintf(worker.bgw_library_name, BGW_MAXLEN, "pgautomator");
	snprintf(worker.bgw_function_name, BGW_MAXLEN, "pga_step_worker_main");
	snprintf(worker.bgw_name, BGW_MAXLEN, "pgautomator step worker");
	snprintf(worker.bgw_type, BGW_MAXLEN, "pgautomator step");
	worker.bgw_main_arg = UInt32GetDatum(dsm_segment_handle(slot->seg));
	worker.bgw_notify_pid = MyProcPid;

	old = MemoryContextSwitchTo(TopMemoryContext);
	if (!RegisterDynamicBackgroundWorker(&worker, &slot->handle))
	{
		MemoryContextSwitchTo(old);
		pga_slot_clear(slot);
		/* a spare is only a head start: no step waits for it */
		if (input->step_run_id == 0)
			return false;
		if (pga_cap == INT_MAX)
			ereport(WARNING,
					(errcode(ERRCODE_CONFIGURATION_LIMIT_EXCEEDED),
					 errmsg("pgautomator launcher: no free background worker slot for a step worker, %d running",
							pga_slots_running()),
					 errhint("Raise max_worker_processes above pgautomator.max_workers plus other background workers.")));
		pga_cap = pga_slots_running();
		pga_cap_since = GetCurrentTimestamp();
		return false;
	}
	MemoryContextSwitchTo(old);
	/* a spare (no step run) waits, idle, for its first one */
	slot->state = input->step_run_id == 0 ? PGA_SLOT_IDLE : PGA_SLOT_RUNNING;
	slot->idle_since = GetCurrentTimestamp();
	slot->step_run_id = input->step_run_id;
	strlcpy(slot->database, input->database, NAMEDATALEN);
	strlcpy(slot->run_as, input->run_as, NAMEDATALEN);
	return true;
}

/*
 * pga_slots_start runs a claimed step run: on the slot reserved for it
 * (-1: none) or a new worker; otherwise it is kept for release.  Called
 * after the claim committed, outside a transaction: an error (no shared
 * memory for a segment) is logged and the step run given back, rather
 * than end the launcher and, with it, the steps of its other workers.
 */
bool
pga_slots_start(const PgaStepInput *input, int slotno)
{
	MemoryContext caller = CurrentMemoryContext;
	volatile bool started = false;

	PG_TRY();
	{
		if (slotno >= 0)
			started = pga_slot_assign(&pga_slots[slotno], input);
		else
			started = pga_slot_register(input, false);
	}
	PG_CATCH();
	{
		pga_log_caught("start of a step worker");
		started = false;
	}
	PG_END_TRY();
	MemoryContextSwitchTo(caller);
	if (!started)
		pga_slot_unstarted(input->step_run_id, slotno >= 0 ? pga_slots[slotno].pid : 0);
	return started;
}

/*
 * pga_slots_start_held starts a new worker for a step run whose claim is
 * not committed yet (a prepared fire instant): it connects meanwhile and
 * waits.  False when no worker could be started now.
 */
bool
pga_slots_start_held(const PgaStepInput *input)
{
	return pga_slot_register(input, true);
}

/*
 * pga_slots_room returns how many more workers may be started without
 * asking an idle one to exit.
 */
int
pga_slots_room(void)
{
	return Max(pga_slots_limit() - pga_slots_count(PGA_SLOT_FREE) - pga_unstarted_count, 0);
}

/*
 * pga_slots_of returns how many workers of a role and database there are,
 * idle or busy (a busy one is usually free again by the next instant).
 */
int
pga_slots_of(const char *database, const char *run_as)
{
	int			n = 0;
	int			i;

	for (i = 0; i < PGA_MAX_SLOTS; i++)
	{
		PgaSlot    *slot = &pga_slots[i];

		if (slot->state != PGA_SLOT_FREE && !slot->quitting && !slot->exited &&
			!slot->abandoned && pga_slot_serves(slot, database, run_as))
			n++;
	}
	return n;
}

/*
 * pga_slots_start_spare starts an idle worker of a role and database with
 * no step run yet: it connects and rehearses its bookkeeping while the
 * launcher prepares the instant whose steps will need it.  False when no
 * worker could be started now.
 */
bool
pga_slots_start_spare(const char *database, const char *run_as)
{
	PgaStepInput input;

	memset(&input, 0, sizeof(input));
	strlcpy(input.database, database, NAMEDATALEN);
	strlcpy(input.run_as, run_as, NAMEDATALEN);
	input.code = "";
	return pga_slot_register(&input, false);
}


/*
 * pga_slots_release_held lets the held workers run once their claims
 * committed, or asks them to exit when the claims were rolled back.
 */
void
pga_slots_release_held(bool committed)
{
	int			i;

	for (i = 0; i < PGA_MAX_SLOTS; i++)
	{
		PgaSlot    *slot = &pga_slots[i];

		if (slot->state == PGA_SLOT_FREE || !slot->held)
			continue;
		slot->held = false;
		if (committed)
			pga_shm_release(slot->seg);
		else
		{
			pga_shm_quit(slot->seg);
			slot->abandoned = true;
		}
	}
}

/*
 * pga_slots_unreserve drops the reservations of a pass whose claims were
 * rolled back.
 */
void
pga_slots_unreserve(void)
{
	int			i;

	for (i = 0; i < PGA_MAX_SLOTS; i++)
		pga_slots[i].reserved = false;
}

/*
 * pga_slot_read_outcome reads the outcome of the slot's step run; a worker
 * that exited without writing one (terminated, killed) leaves it "lost".
 */
static void
pga_slot_read_outcome(PgaSlot *slot)
{
	MemoryContext old = MemoryContextSwitchTo(slot->context);

	MemoryContextReset(slot->context);
	if (!pga_shm_read_outcome(slot->seg, &slot->outcome))
	{
		memset(&slot->outcome, 0, sizeof(slot->outcome));
		slot->outcome.lost = true;
		slot->outcome.step_run_id = pga_shm_current(slot->seg);
	}
	MemoryContextSwitchTo(old);
	/* a worker that settles its own step runs may be on a later one */
	if (slot->outcome.step_run_id != 0 && slot->outcome.step_run_id != slot->step_run_id)
	{
		slot->step_run_id = slot->outcome.step_run_id;
		slot->pid_recorded = true;	/* its own claim recorded it */
	}
	slot->state = PGA_SLOT_DONE;
}

/*
 * pga_slot_free lets go of a slot whose worker has exited.
 */
static void
pga_slot_free(PgaSlot *slot)
{
	if (slot->seg)
		dsm_detach(slot->seg);
	if (slot->handle)
		pfree(slot->handle);
	if (slot->context)
		MemoryContextDelete(slot->context);
	memset(slot, 0, sizeof(PgaSlot));
	/* a background worker slot came free: try the full number again */
	pga_cap = INT_MAX;
}

/*
 * pga_slots_collect notes the pids of started workers, the outcomes of
 * finished step runs and the exits of workers; true if anything changed.
 * Runs outside transactions.
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

		if (slot->state == PGA_SLOT_FREE || (slot->exited && !slot->abandoned))
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
				slot->exited = true;
				changed = true;
				break;
			case BGWH_NOT_YET_STARTED:
				break;
			case BGWH_POSTMASTER_DIED:
				proc_exit(1);
				break;
		}
		if (slot->abandoned)
		{
			if (slot->exited)
				pga_slot_free(slot);
			continue;
		}
		if (slot->state == PGA_SLOT_RUNNING &&
			(slot->exited || pga_shm_outcome_written(slot->seg)))
		{
			pga_slot_read_outcome(slot);
			changed = true;
		}
		if (slot->state == PGA_SLOT_IDLE && slot->exited)
			pga_slot_free(slot);
	}
	return changed;
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
 * pga_slot_report is pga_call_report (or pga_call_release, for a step run
 * the worker could not take) for one slot, for pga_subxact.
 */
static void
pga_slot_report(void *arg)
{
	PgaSlot    *slot = arg;

	if (slot->outcome.not_run)
	{
		/* its pid was recorded when it was handed over: no worker runs it */
		pga_call_started(slot->step_run_id, 0);
		pga_call_release(slot->step_run_id);
	}
	else
	{
		/*
		 * A quick step may end before its pid was recorded: record it for
		 * the history, and so that a lost one is seen as gone.
		 */
		if (slot->pid != 0 && !slot->pid_recorded)
			pga_call_started(slot->step_run_id, slot->pid);
		if (!slot->outcome.lost)
			pga_call_report(slot->step_run_id, &slot->outcome);
	}
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
		/* the pid of an idle worker reserved for it may have been recorded */
		pga_call_started(step_run_id, 0);
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
 * pga_slot_reported moves a reported slot on: idle if its worker lives
 * on, free otherwise.
 */
static void
pga_slot_reported(PgaSlot *slot)
{
	if (slot->exited || slot->outcome.not_run)
	{
		/* a worker that could not take a step run is exiting */
		if (slot->exited)
			pga_slot_free(slot);
		else
		{
			slot->state = PGA_SLOT_IDLE;
			slot->quitting = true;
		}
		return;
	}
	slot->state = PGA_SLOT_IDLE;
	slot->idle_since = GetCurrentTimestamp();
	slot->report_tries = 0;
}

/*
 * pga_slot_quit_pid asks the worker with the given pid (0: none) to exit
 * once idle, after the launcher gave up reporting or giving back its step
 * run: that step run stays running with the worker's pid, and only the
 * worker's exit lets the dispatcher see it lost and end it as crashed.
 * Alive and idle, the worker would keep it running for good, and a stop
 * or timeout of it would cancel whatever step the worker ran next.
 */
static void
pga_slot_quit_pid(pid_t pid)
{
	int			i;

	if (pid == 0)
		return;
	for (i = 0; i < PGA_MAX_SLOTS; i++)
	{
		PgaSlot    *slot = &pga_slots[i];

		if (slot->state != PGA_SLOT_FREE && slot->pid == pid && !slot->exited)
		{
			pga_shm_quit(slot->seg);
			slot->quitting = true;
			slot->reserved = false;
		}
	}
}

/*
 * pga_slots_sync tells the dispatcher, inside the caller's transaction,
 * the pids of new workers, the outcomes of finished step runs and the step
 * runs no worker could take.  Returns how many outcomes were reported.
 */
int
pga_slots_sync(void)
{
	int			reported = 0;
	int			kept;
	int			i;

	for (i = 0; i < PGA_MAX_SLOTS; i++)
	{
		PgaSlot    *slot = &pga_slots[i];

		/* (an abandoned slot's step run is not, or no longer, this one's) */
		if (slot->abandoned)
			continue;
		if (slot->state == PGA_SLOT_DONE && slot->outcome.self_reported)
		{
			/*
			 * The worker recorded it and is now idle.  No tick for it: what
			 * the report queued for later woke the launcher (_step_report),
			 * and a tick per idle worker would cost a busy launcher dearly.
			 */
			pga_slot_reported(slot);
		}
		else if (slot->state == PGA_SLOT_DONE)
		{
			/* the dispatcher sees the worker gone and ends the run crashed */
			if (slot->outcome.lost)
				ereport(LOG,
						(errmsg("pgautomator launcher: the worker of step run " INT64_FORMAT
								" (pid %d) ended without an outcome; the run ends as crashed",
								slot->step_run_id, (int) slot->pid)));
			if (pga_subxact(pga_slot_report, slot, "report of a step run"))
				reported++;
			else if (++slot->report_tries < PGA_REPORT_TRIES)
				continue;
			else
			{
				ereport(WARNING,
						(errmsg("pgautomator launcher: gave up reporting step run " INT64_FORMAT
								"; its worker (pid %d) is asked to exit, and the run ends as crashed",
								slot->step_run_id, (int) slot->pid)));
				pga_slot_quit_pid(slot->pid);
			}
			pga_slot_reported(slot);
		}
		else if (slot->state == PGA_SLOT_RUNNING && slot->pid != 0 && !slot->pid_recorded)
		{
			/*
			 * Noted only once recorded: a step run without its worker's pid
			 * would be taken for lost (and crashed, maybe retried, while it
			 * still runs), and could not be cancelled.  The next pass tries
			 * again.
			 */
			if (pga_subxact(pga_slot_record_pid, slot, "record of a step worker's pid"))
				slot->pid_recorded = true;
		}
	}
	/* kept until released, as outcomes are until reported */
	kept = 0;
	for (i = 0; i < pga_unstarted_count; i++)
	{
		PgaUnstarted *u = &pga_unstarted[i];

		if (pga_subxact(pga_slot_release, &u->step_run_id, "release of an unstarted step run"))
			continue;
		if (++u->tries < PGA_REPORT_TRIES)
		{
			pga_unstarted[kept++] = *u;
			continue;
		}
		ereport(WARNING,
				(errmsg("pgautomator launcher: gave up giving back step run " INT64_FORMAT
						"; the run ends as crashed", u->step_run_id)));
		pga_slot_quit_pid(u->pid);
	}
	pga_unstarted_count = kept;
	return reported;
}

/*
 * pga_slots_abandon_all lets go of every worker, when the extension was
 * dropped and created again: the step runs they run, or whose outcomes
 * wait, were dropped with it, and their ids, given again by the new
 * installation, now name other step runs.  Nothing of them is reported;
 * they are stopped (a worker that records its own step runs would record
 * it there) and their slots freed as they exit.
 */
void
pga_slots_abandon_all(void)
{
	int			i;
	int			n = 0;

	for (i = 0; i < PGA_MAX_SLOTS; i++)
	{
		PgaSlot    *slot = &pga_slots[i];

		if (slot->state == PGA_SLOT_FREE || slot->abandoned)
			continue;
		pga_shm_quit(slot->seg);
		if (slot->handle != NULL)
			TerminateBackgroundWorker(slot->handle);
		slot->quitting = true;
		slot->abandoned = true;
		slot->reserved = false;
		slot->held = false;
		n++;
	}
	pga_unstarted_count = 0;
	if (n > 0)
		ereport(LOG,
				(errmsg("pgautomator launcher: the extension was created again; stopping the %d step workers of the one before",
						n)));
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
		if (pga_slots[i].state != PGA_SLOT_FREE && pga_slots[i].handle != NULL)
			TerminateBackgroundWorker(pga_slots[i].handle);
}

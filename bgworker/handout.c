/*-------------------------------------------------------------------------
 *
 * handout.c
 *	  The launcher's hand-out queue: step runs it claimed for a fire instant
 *	  and had no idle worker for, which busy workers take as their next.
 *
 * At a due instant the launcher claims the first steps of what fires ahead
 * of the instant, in the transaction that commits at it (launcher_pass.c).
 * It hands as many as it has workers for to those workers; the rest it
 * puts here once that transaction has committed.  A worker in the
 * extension's database that finishes a step takes the oldest one of its
 * own database and role as its next step (step_settle.c), without a claim
 * of its own, and defers the outcome of the step it finished
 * (55_deferred_outcomes.sql): that is what lets a burst start at the pace
 * of its steps.  What no worker takes, the launcher starts on the worker
 * slots that free up, as it would its own claims.
 *
 * The queue lives in the main shared memory (the library is preloaded),
 * sized at compile time; a burst larger than it, or with more code than
 * its text area holds, goes the ordinary way (workers claim) for the rest.
 * The launcher fills it only when no step run in it waits or is being
 * taken, so its entries and texts are written once per fill.  An entry
 * goes READY (waiting) -> HELD (a worker's bookkeeping transaction has
 * taken it) -> DONE (that transaction committed), or back to READY when
 * that transaction aborted.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xact.h"
#include "miscadmin.h"
#include "port/atomics.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "storage/proc.h"
#include "storage/shmem.h"
#include "storage/spin.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"

#include "pgautomator.h"

#define PGA_HANDOUT_ENTRIES		256
#define PGA_HANDOUT_TEXT_SIZE	(512 * 1024)

typedef enum PgaEntryState
{
	PGA_ENTRY_READY = 1,
	PGA_ENTRY_HELD,
	PGA_ENTRY_DONE
} PgaEntryState;

typedef struct PgaHandoutEntry
{
	PgaEntryState state;
	int64		step_run_id;
	char		database[NAMEDATALEN];
	char		run_as[NAMEDATALEN];
	bool		single_transaction;
	int64		timeout_ms;
	Size		code_offset;	/* in text, NUL-terminated */
} PgaHandoutEntry;

typedef struct PgaHandout
{
	slock_t		mutex;
	uint64		fill;			/* counts fills and resets: a held entry of an
								 * older fill is gone */
	int			count;			/* entries of the current fill */
	int			first_ready;	/* no READY entry before it */
	int			waiting;		/* READY or HELD entries */
	int			launcher_procno;	/* -1: no launcher */
	TimestampTz filled_at;		/* when the current fill was made */
	pg_atomic_uint32 deferred;	/* outcomes deferred since the launcher looked */
	PgaHandoutEntry entries[PGA_HANDOUT_ENTRIES];
	char		text[PGA_HANDOUT_TEXT_SIZE];
} PgaHandout;

static PgaHandout *pga_handout = NULL;

#if PG_VERSION_NUM >= 150000
static shmem_request_hook_type pga_prev_shmem_request_hook = NULL;
#endif
static shmem_startup_hook_type pga_prev_shmem_startup_hook = NULL;

static void pga_handout_give_back(void);

/* the entry this process's bookkeeping transaction holds */
static int	pga_held_entry = -1;
static uint64 pga_held_fill = 0;
static bool pga_held_keep = false;	/* on commit: taken for good (else READY) */
static bool pga_xact_deferred = false;	/* this transaction deferred an outcome */

#if PG_VERSION_NUM >= 150000
static void
pga_handout_shmem_request(void)
{
	if (pga_prev_shmem_request_hook)
		pga_prev_shmem_request_hook();
	RequestAddinShmemSpace(MAXALIGN(sizeof(PgaHandout)));
}
#endif

static void
pga_handout_shmem_startup(void)
{
	bool		found;

	if (pga_prev_shmem_startup_hook)
		pga_prev_shmem_startup_hook();
	LWLockAcquire(AddinShmemInitLock, LW_EXCLUSIVE);
	pga_handout = ShmemInitStruct("pgautomator hand-out queue", sizeof(PgaHandout), &found);
	if (!found)
	{
		memset(pga_handout, 0, offsetof(PgaHandout, entries));
		SpinLockInit(&pga_handout->mutex);
		pga_handout->launcher_procno = -1;
		pg_atomic_init_u32(&pga_handout->deferred, 0);
	}
	LWLockRelease(AddinShmemInitLock);
}

/*
 * pga_handout_request_shmem asks for the queue's shared memory; from
 * _PG_init, while shared_preload_libraries load.
 */
void
pga_handout_request_shmem(void)
{
#if PG_VERSION_NUM >= 150000
	pga_prev_shmem_request_hook = shmem_request_hook;
	shmem_request_hook = pga_handout_shmem_request;
#else
	RequestAddinShmemSpace(MAXALIGN(sizeof(PgaHandout)));
#endif
	pga_prev_shmem_startup_hook = shmem_startup_hook;
	shmem_startup_hook = pga_handout_shmem_startup;
}

/*
 * pga_handout_reset empties the queue and names the launcher to wake
 * (procno -1: none).  What it held was claimed by a launcher that is gone
 * or whose installation is: its step runs end as that launcher's others.
 */
void
pga_handout_reset(int launcher_procno)
{
	if (pga_handout == NULL)
		return;
	SpinLockAcquire(&pga_handout->mutex);
	pga_handout->fill++;
	pga_handout->count = 0;
	pga_handout->first_ready = 0;
	pga_handout->waiting = 0;
	pga_handout->launcher_procno = launcher_procno;
	SpinLockRelease(&pga_handout->mutex);
}

/*
 * pga_handout_room tells how many step runs the launcher may put in the
 * queue now: all of it when nothing waits in it, else none.
 */
int
pga_handout_room(void)
{
	int			waiting;

	if (pga_handout == NULL)
		return 0;
	SpinLockAcquire(&pga_handout->mutex);
	waiting = pga_handout->waiting;
	SpinLockRelease(&pga_handout->mutex);
	return waiting == 0 ? PGA_HANDOUT_ENTRIES : 0;
}

/*
 * pga_handout_fits tells whether the step runs steps[0..n) fit in an empty
 * queue: how many of them, in order, do.
 */
int
pga_handout_fits(const PgaStepInput *steps, int n)
{
	Size		used = 0;
	int			i;

	for (i = 0; i < n && i < PGA_HANDOUT_ENTRIES; i++)
	{
		used += strlen(steps[i].code) + 1;
		if (used > PGA_HANDOUT_TEXT_SIZE)
			break;
	}
	return i;
}

/*
 * pga_handout_fill puts steps[0..n) (claimed and committed; n from
 * pga_handout_fits) in the queue, which must be empty of waiting entries.
 */
void
pga_handout_fill(const PgaStepInput *steps, int n)
{
	Size		used = 0;
	int			i;

	Assert(n <= PGA_HANDOUT_ENTRIES);
	SpinLockAcquire(&pga_handout->mutex);
	if (pga_handout->waiting != 0)
	{
		/* (only the launcher fills, after finding it empty: never here) */
		SpinLockRelease(&pga_handout->mutex);
		elog(WARNING, "pgautomator launcher: the hand-out queue is not empty; %d claimed step runs wait for the crash check", n);
		return;
	}
	/*
	 * Emptied first, written unlocked (a few hundred kilobytes at most):
	 * no worker reads past count, and none of the last fill's entries is
	 * READY or HELD.  The lock taken again publishes them.
	 */
	pga_handout->fill++;
	pga_handout->count = 0;
	pga_handout->first_ready = 0;
	SpinLockRelease(&pga_handout->mutex);
	for (i = 0; i < n; i++)
	{
		PgaHandoutEntry *entry = &pga_handout->entries[i];
		Size		len = strlen(steps[i].code) + 1;

		entry->step_run_id = steps[i].step_run_id;
		strlcpy(entry->database, steps[i].database, NAMEDATALEN);
		strlcpy(entry->run_as, steps[i].run_as, NAMEDATALEN);
		entry->single_transaction = steps[i].single_transaction;
		entry->timeout_ms = steps[i].timeout_ms;
		entry->code_offset = used;
		memcpy(pga_handout->text + used, steps[i].code, len);
		used += len;
		entry->state = PGA_ENTRY_READY;
	}
	SpinLockAcquire(&pga_handout->mutex);
	pga_handout->count = n;
	pga_handout->first_ready = 0;
	pga_handout->waiting = n;
	pga_handout->filled_at = GetCurrentTimestamp();
	SpinLockRelease(&pga_handout->mutex);
}

/*
 * pga_handout_copy fills input from entry i, its code allocated in
 * context.  The entry is HELD or just taken: no one writes it meanwhile.
 */
static void
pga_handout_copy(int i, PgaStepInput *input, MemoryContext context)
{
	PgaHandoutEntry *entry = &pga_handout->entries[i];

	memset(input, 0, sizeof(PgaStepInput));
	input->step_run_id = entry->step_run_id;
	strlcpy(input->database, entry->database, NAMEDATALEN);
	strlcpy(input->run_as, entry->run_as, NAMEDATALEN);
	input->single_transaction = entry->single_transaction;
	input->timeout_ms = entry->timeout_ms;
	input->code = MemoryContextStrdup(context, pga_handout->text + entry->code_offset);
}

/*
 * pga_handout_take_mine takes, for this worker's bookkeeping transaction,
 * the oldest waiting step run of its database and role into input (code in
 * TopMemoryContext): HELD until that transaction ends (see
 * pga_handout_xact_end).  False when there is none.
 */
bool
pga_handout_take_mine(const char *database, const char *run_as, PgaStepInput *input)
{
	int			i;
	int			found = -1;
	uint64		fill = 0;

	if (pga_handout == NULL || pga_held_entry >= 0)
		return false;
	SpinLockAcquire(&pga_handout->mutex);
	for (i = pga_handout->first_ready; i < pga_handout->count; i++)
	{
		PgaHandoutEntry *entry = &pga_handout->entries[i];

		if (entry->state != PGA_ENTRY_READY)
		{
			if (i == pga_handout->first_ready)
				pga_handout->first_ready++;
			continue;
		}
		if (strcmp(entry->database, database) == 0 && strcmp(entry->run_as, run_as) == 0)
		{
			entry->state = PGA_ENTRY_HELD;
			found = i;
			fill = pga_handout->fill;
			break;
		}
	}
	SpinLockRelease(&pga_handout->mutex);
	if (found < 0)
		return false;
	pga_held_entry = found;
	pga_held_fill = fill;
	pga_held_keep = false;
	pga_handout_copy(found, input, TopMemoryContext);
	/* (copied unlocked: only a reset and a new fill meanwhile could change it) */
	SpinLockAcquire(&pga_handout->mutex);
	if (pga_handout->fill != fill)
		found = -1;
	SpinLockRelease(&pga_handout->mutex);
	if (found < 0)
	{
		pga_held_entry = -1;
		pfree(input->code);
		input->code = NULL;
		return false;
	}
	return true;
}

/*
 * pga_handout_settle_held says what the end of the bookkeeping transaction
 * makes of the entry it holds: keep (it ran, or was given back to the
 * ready queue, in that transaction) once it commits, or READY again at
 * once (busy: nothing was changed about it).  deferred: the transaction
 * deferred an outcome, for the launcher to apply.
 */
void
pga_handout_settle_held(bool keep, bool deferred)
{
	pga_xact_deferred = deferred;
	if (keep)
		pga_held_keep = true;
	else
		pga_handout_give_back();
}

/*
 * pga_handout_give_back ends the hold of this process's entry at once:
 * READY again for another worker or the launcher.
 */
static void
pga_handout_give_back(void)
{
	bool		deferred = pga_xact_deferred;

	/* (what the transaction deferred still counts at its commit) */
	pga_handout_xact_end(false);
	pga_xact_deferred = deferred;
}

/*
 * pga_handout_xact_end ends the hold of this process's entry: taken for
 * good when its transaction committed and it was to be kept, else READY
 * again for another worker or the launcher; and counts an outcome the
 * transaction deferred for the launcher.  From the worker's transaction
 * callback and its exit; never fails.
 */
void
pga_handout_xact_end(bool committed)
{
	PgaHandoutEntry *entry;
	bool		wake = false;
	int			procno = -1;

	if (pga_handout == NULL)
		return;
	if (committed && pga_xact_deferred)
		pg_atomic_fetch_add_u32(&pga_handout->deferred, 1);
	pga_xact_deferred = false;
	if (pga_held_entry < 0)
		return;
	SpinLockAcquire(&pga_handout->mutex);
	entry = &pga_handout->entries[pga_held_entry];
	if (pga_handout->fill == pga_held_fill && entry->state == PGA_ENTRY_HELD)
	{
		if (committed && pga_held_keep)
		{
			entry->state = PGA_ENTRY_DONE;
			pga_handout->waiting--;
			/* the last of a fill: the launcher may apply what was deferred */
			wake = pga_handout->waiting == 0;
		}
		else
		{
			entry->state = PGA_ENTRY_READY;
			pga_handout->first_ready = Min(pga_handout->first_ready, pga_held_entry);
		}
	}
	procno = pga_handout->launcher_procno;
	SpinLockRelease(&pga_handout->mutex);
	pga_held_entry = -1;
	pga_held_keep = false;
	if (wake && procno >= 0)
		SetLatch(&ProcGlobal->allProcs[procno].procLatch);
}

/*
 * pga_handout_xact_callback ends the hold when the bookkeeping transaction
 * (or, in the step's own transaction, the step) commits or aborts.
 */
static void
pga_handout_xact_callback(XactEvent event, void *arg)
{
	if (event == XACT_EVENT_COMMIT)
		pga_handout_xact_end(true);
	else if (event == XACT_EVENT_ABORT || event == XACT_EVENT_PREPARE)
		pga_handout_xact_end(false);
}

/*
 * pga_handout_worker_init registers the transaction callback of a step
 * worker.
 */
void
pga_handout_worker_init(void)
{
	RegisterXactCallback(pga_handout_xact_callback, NULL);
}

/*
 * pga_handout_take_any takes, for the launcher, the oldest waiting step run
 * of any database and role into input (code in context), for good: the
 * launcher starts it as one of its own claims.  False when there is none.
 */
bool
pga_handout_take_any(PgaStepInput *input, MemoryContext context)
{
	int			i;
	int			found = -1;

	if (pga_handout == NULL)
		return false;
	SpinLockAcquire(&pga_handout->mutex);
	for (i = pga_handout->first_ready; i < pga_handout->count; i++)
	{
		if (pga_handout->entries[i].state == PGA_ENTRY_READY)
		{
			/* (HELD while copied: no fill comes while an entry is held) */
			pga_handout->entries[i].state = PGA_ENTRY_HELD;
			found = i;
			break;
		}
		if (i == pga_handout->first_ready)
			pga_handout->first_ready++;
	}
	SpinLockRelease(&pga_handout->mutex);
	if (found < 0)
		return false;
	PG_TRY();
	{
		pga_handout_copy(found, input, context);
	}
	PG_CATCH();
	{
		/* (out of memory) it waits on, rather than stay held for good */
		SpinLockAcquire(&pga_handout->mutex);
		pga_handout->entries[found].state = PGA_ENTRY_READY;
		pga_handout->first_ready = Min(pga_handout->first_ready, found);
		SpinLockRelease(&pga_handout->mutex);
		PG_RE_THROW();
	}
	PG_END_TRY();
	SpinLockAcquire(&pga_handout->mutex);
	pga_handout->entries[found].state = PGA_ENTRY_DONE;
	pga_handout->waiting--;
	SpinLockRelease(&pga_handout->mutex);
	return true;
}

/*
 * pga_handout_take_deferred tells the launcher whether outcomes were
 * deferred since it last asked.
 */
bool
pga_handout_take_deferred(void)
{
	if (pga_handout == NULL)
		return false;
	return pg_atomic_exchange_u32(&pga_handout->deferred, 0) > 0;
}

/*
 * pga_handout_ready_ids returns the ids of the step runs waiting (READY) in
 * the queue, allocated in context, their number in *n, and when the queue
 * was filled in *filled_at.
 */
int64 *
pga_handout_ready_ids(MemoryContext context, int *n, TimestampTz *filled_at)
{
	int64	   *ids = MemoryContextAlloc(context, sizeof(int64) * PGA_HANDOUT_ENTRIES);
	int			i;

	*n = 0;
	*filled_at = 0;
	if (pga_handout == NULL)
		return ids;
	SpinLockAcquire(&pga_handout->mutex);
	for (i = pga_handout->first_ready; i < pga_handout->count; i++)
		if (pga_handout->entries[i].state == PGA_ENTRY_READY)
			ids[(*n)++] = pga_handout->entries[i].step_run_id;
	*filled_at = pga_handout->filled_at;
	SpinLockRelease(&pga_handout->mutex);
	return ids;
}

/*
 * pga_handout_take_id takes the waiting step run step_run_id out of the
 * queue, for the launcher; false when it no longer waits there.
 */
bool
pga_handout_take_id(int64 step_run_id)
{
	bool		taken = false;
	int			i;

	if (pga_handout == NULL)
		return false;
	SpinLockAcquire(&pga_handout->mutex);
	for (i = pga_handout->first_ready; i < pga_handout->count; i++)
	{
		PgaHandoutEntry *entry = &pga_handout->entries[i];

		if (entry->state == PGA_ENTRY_READY && entry->step_run_id == step_run_id)
		{
			entry->state = PGA_ENTRY_DONE;
			pga_handout->waiting--;
			taken = true;
			break;
		}
	}
	SpinLockRelease(&pga_handout->mutex);
	return taken;
}

/*
 * pga_handout_has_ready tells whether a step run waits in the queue for a
 * worker (one held by a worker's bookkeeping does not count).
 */
bool
pga_handout_has_ready(void)
{
	bool		ready = false;
	int			i;

	if (pga_handout == NULL)
		return false;
	SpinLockAcquire(&pga_handout->mutex);
	for (i = pga_handout->first_ready; i < pga_handout->count && !ready; i++)
		ready = pga_handout->entries[i].state == PGA_ENTRY_READY;
	SpinLockRelease(&pga_handout->mutex);
	return ready;
}

/*
 * pga_handout_put_back puts a step run the launcher took out of the queue
 * (pga_handout_take_id, pga_handout_take_any) back: giving it back to the
 * ready queue failed.  Nothing when the queue was filled or reset since.
 */
void
pga_handout_put_back(int64 step_run_id)
{
	int			i;

	if (pga_handout == NULL)
		return;
	SpinLockAcquire(&pga_handout->mutex);
	for (i = 0; i < pga_handout->count; i++)
	{
		PgaHandoutEntry *entry = &pga_handout->entries[i];

		if (entry->state == PGA_ENTRY_DONE && entry->step_run_id == step_run_id)
		{
			entry->state = PGA_ENTRY_READY;
			pga_handout->waiting++;
			pga_handout->first_ready = Min(pga_handout->first_ready, i);
			break;
		}
	}
	SpinLockRelease(&pga_handout->mutex);
}

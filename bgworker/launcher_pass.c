/*-------------------------------------------------------------------------
 *
 * launcher_pass.c
 *	  One pass of the launcher: a single transaction that reports what the
 *	  step workers did, runs the dispatcher's tick when something may be
 *	  due, and claims ready step runs; then it starts their workers.
 *
 * The tick runs on the first pass, after a NOTIFY, after outcomes were
 * reported (a finished run may let a queued one start), and when the
 * instant it returned last time has come; never less often than
 * pgautomator.max_sleep, which also keeps the database agent's heartbeat
 * fresh.  Grouping a pass into one commit keeps the launcher's durable
 * commits per step run low.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xact.h"
#include "access/xlog.h"
#include "commands/dbcommands.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "storage/latch.h"
#include "storage/proc.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"

#include "pgautomator.h"

#define PGA_NOT_READY_POLL_MS	1000
#define PGA_FIRST_BACKOFF_MS	1000
#define PGA_TICK_GAP_MS			10	/* between ticks a NOTIFY or a report asks for */

/*
 * After a prepared instant that fired everything due by it, the next tick
 * waits this long: the steps it started need the CPU more than the tick's
 * other work (stops, timeouts, crashes, retries, admissions, retention),
 * which this delays by as much.
 */
#define PGA_PREFIRE_TICK_GAP_MS	50

/*
 * How long before a due instant the launcher prepares it: first guess,
 * then twice what the longest recent preparation took, counted from when
 * its lead began (a late wake-up counts), plus a margin, within bounds
 * (the longer, the longer it holds the locks of the jobs it fires).
 * "Recent": the lead shrinks by an eighth per prepared instant at most, so
 * one preparation slower than the last does not start its burst late
 * (seen here, by 1.5 times the last one's: 23 ms, then 37 ms begun 2 ms
 * into a lead of 39 ms, the same 200 jobs).
 */
#define PGA_PREFIRE_FIRST_LEAD_MS	50
#define PGA_PREFIRE_MIN_LEAD_MS		10
#define PGA_PREFIRE_MAX_LEAD_MS		200
#define PGA_PREFIRE_MARGIN_MS		5

/* the longest a step run waits in the hand-out queue (see pga_pass_prune_handout) */
#define PGA_HANDOUT_MAX_WAIT_MS		5000

bool		pga_have_release = false;
static bool pga_have_spares = false;	/* _launcher_sessions_due is there */

static bool pga_started = false;	/* _launcher_start done since ready */
static bool pga_waiting_logged = false;
static TimestampTz pga_next_tick = 0;
static TimestampTz pga_last_tick = 0;
static TimestampTz pga_tick_not_before = 0;	/* see PGA_PREFIRE_TICK_GAP_MS */
static TimestampTz pga_ready_at = 0;	/* when the extension was last seen */
static Oid	pga_extension_oid = InvalidOid; /* the installation started with */
static long pga_backoff_ms = PGA_FIRST_BACKOFF_MS;
static MemoryContext pga_pass_context = NULL;
static PgaClaimed pga_claimed;
static TimestampTz pga_claim_at = 0;	/* instant of the claim; 0: now */
static int	pga_prefire_due = 0;
static bool pga_prefire_all_fired = false;
static TimestampTz pga_prefire_tried = 0;	/* the last instant prepared */
static TimestampTz pga_spares_tried = 0;	/* the last instant given spares */
static bool pga_pass_ready = true;	/* the extension was there */
static long pga_prefire_lead_ms = PGA_PREFIRE_FIRST_LEAD_MS;
/* the tables a pass reads and then writes (see table_locks.c) */
static const char *const pga_pass_tables[] = {"agent", "job_schedule", "run", "step_run", "step_outcome"};
static PgaClaimed pga_staged;	/* claims for the hand-out queue, once committed */
static int64 *pga_released = NULL;	/* taken out of it and given back in this pass */
static int	pga_released_count = 0;
static bool pga_outcomes_pending = false;	/* deferred outcomes to apply */
static int *pga_claimed_slots = NULL;	/* idle worker reserved, or: */
#define PGA_NO_SLOT			(-1)	/* a new worker starts after the commit */
#define PGA_STARTED_HELD	(-2)	/* a new worker started, held until then */

/*
 * pga_pass_start is _launcher_start for pga_subxact.
 */
static void
pga_pass_start(void *arg)
{
	(void) pga_call_start();
}

/*
 * pga_pass_tick is _launcher_tick for pga_subxact; it stores the next due
 * instant.
 */
static void
pga_pass_tick(void *arg)
{
	*(TimestampTz *) arg = pga_call_tick();
}

/*
 * pga_pass_claim is _launcher_claim for pga_subxact.
 */
static void
pga_pass_claim(void *arg)
{
	pga_claimed = pga_call_claim(*(int *) arg, pga_claim_at);
}

/*
 * pga_pass_prefire is _launcher_prefire for pga_subxact.
 */
static void
pga_pass_prefire(void *arg)
{
	pga_prefire_due = pga_call_prefire(*(TimestampTz *) arg, &pga_prefire_all_fired);
}

/*
 * pga_pass_started is _launcher_started for a claimed step run given to an
 * idle worker, for pga_subxact.
 */
static void
pga_pass_started(void *arg)
{
	int			i = *(int *) arg;

	pga_call_started(pga_claimed.steps[i].step_run_id,
					 pga_slots_reserved_pid(pga_claimed_slots[i]));
}

/*
 * pga_pass_reserve picks idle workers for the claimed step runs and
 * records their pids with the claim.
 */
static void
pga_pass_reserve(void)
{
	int			i;

	pga_claimed_slots = MemoryContextAlloc(pga_pass_context, sizeof(int) * Max(pga_claimed.count, 1));
	for (i = 0; i < pga_claimed.count; i++)
	{
		pga_claimed_slots[i] = pga_slots_reserve(&pga_claimed.steps[i]);
		/* not recorded: pga_slots_sync records it in a later pass */
		if (pga_claimed_slots[i] >= 0 &&
			pga_subxact(pga_pass_started, &i, "record of a step worker's pid"))
			pga_slots_reserved_recorded(pga_claimed_slots[i]);
	}
}

/*
 * pga_pass_release_one is _launcher_release of one step run, for
 * pga_subxact.
 */
static void
pga_pass_release_one(void *arg)
{
	pga_call_release(*(int64 *) arg);
}

/*
 * pga_pass_give_back gives a step run the launcher took out of the hand-out
 * queue back to the ready queue (_launcher_release), inside the pass's
 * transaction; it goes back into the hand-out queue if that fails now or
 * the pass does not commit (pga_pass_run).
 */
static void
pga_pass_give_back(int64 step_run_id)
{
	if (pga_released == NULL)
		pga_released = MemoryContextAlloc(TopMemoryContext, sizeof(int64) * 1024);
	if (pga_released_count >= 1024 ||
		!pga_subxact(pga_pass_release_one, &step_run_id, "_launcher_release"))
	{
		pga_handout_put_back(step_run_id);
		return;
	}
	pga_released[pga_released_count++] = step_run_id;
}

/*
 * pga_pass_release_handout gives the step runs waiting in the hand-out
 * queue back to the ready queue (pgautomator.enabled is off: no worker
 * takes them).  Inside the pass's transaction.
 */
static void
pga_pass_release_handout(void)
{
	PgaStepInput input;

	if (!pga_have_release)
		return;
	while (pga_handout_take_any(&input, pga_pass_context))
		pga_pass_give_back(input.step_run_id);
}

/*
 * pga_pass_handout_stale is pga_call_handout_stale for pga_subxact.
 */
typedef struct PgaStaleArgs
{
	int64	   *ids;
	int			n;
	bool	   *stale;
} PgaStaleArgs;

static void
pga_pass_handout_stale(void *arg)
{
	PgaStaleArgs *args = arg;

	pga_call_handout_stale(args->ids, args->n, args->stale);
}

/*
 * pga_pass_prune_handout gives back to the ready queue the step runs
 * waiting in the hand-out queue that no worker is to take any more (their
 * runs stopped, their time up: the dispatcher then ends them), and all of
 * them once they have waited PGA_HANDOUT_MAX_WAIT_MS (the workers are busy
 * with long steps: in the ready queue they wait as any, where a step run
 * claimed without a worker would count as lost).  Inside the pass's
 * transaction, after its tick.
 */
static void
pga_pass_prune_handout(void)
{
	PgaStaleArgs args;
	TimestampTz filled_at;
	bool		all;
	int			i;

	if (!pga_have_release || !pga_handout_has_ready())
		return;
	args.ids = pga_handout_ready_ids(pga_pass_context, &args.n, &filled_at);
	if (args.n == 0)
		return;
	args.stale = MemoryContextAllocZero(pga_pass_context, sizeof(bool) * args.n);
	all = TimestampDifferenceExceeds(filled_at, GetCurrentTimestamp(), PGA_HANDOUT_MAX_WAIT_MS);
	if (!all && !pga_subxact(pga_pass_handout_stale, &args, "_launcher_handout_stale"))
		return;
	for (i = 0; i < args.n; i++)
		if ((all || args.stale[i]) && pga_handout_take_id(args.ids[i]))
			pga_pass_give_back(args.ids[i]);
}

/*
 * pga_pass_stage_handout keeps, of the claims of a prepared instant, those
 * beyond the workers it has (free_slots) for the hand-out queue, to be put
 * there once the claims commit; those that do not fit are given back to
 * the ready queue.  Inside the preparing transaction.
 */
static void
pga_pass_stage_handout(int free_slots)
{
	int			extra = pga_claimed.count - free_slots;
	int			fit;
	int			i;

	pga_staged.count = 0;
	if (extra <= 0)
		return;
	pga_staged.steps = &pga_claimed.steps[free_slots];
	pga_claimed.count = free_slots;
	fit = pga_handout_fits(pga_staged.steps, extra);
	for (i = fit; i < extra; i++)
		(void) pga_subxact(pga_pass_release_one, &pga_staged.steps[i].step_run_id, "_launcher_release");
	pga_staged.count = fit;
}

/*
 * pga_pass_start_handed_out starts, on the worker slots that are free, the
 * step runs that wait in the hand-out queue (oldest first), as it starts
 * its own claims.  After the pass's commit.
 */
static void
pga_pass_start_handed_out(void)
{
	int			free_slots = pga_slots_free();
	PgaStepInput input;

	while (free_slots-- > 0 && pga_handout_take_any(&input, pga_pass_context))
		(void) pga_slots_start(&input, pga_slots_reserve(&input));
}

/*
 * pga_pass_failed schedules the next try of a failed start or tick, later
 * each time, at most max_sleep apart.
 */
static void
pga_pass_failed(TimestampTz now)
{
	pga_next_tick = TimestampTzPlusMilliseconds(now, pga_backoff_ms);
	pga_backoff_ms = Min(pga_backoff_ms * 2, (long) pga_max_sleep * 1000L);
}

/*
 * pga_pass_work does the calls of a pass inside its transaction; false if
 * the extension is not (or no longer) there.
 */
static bool
pga_pass_work(bool notified)
{
	TimestampTz now = GetCurrentTimestamp();
	bool		must_tick = notified;
	int			free_slots;

	/* looked up again each second: a busy launcher makes many passes */
	if (!pga_started || now >= TimestampTzPlusMilliseconds(pga_ready_at, 1000))
	{
		Oid			extension_oid;

		if (!pga_extension_ready(&pga_have_release, &pga_have_spares, &extension_oid))
		{
			if (!pga_waiting_logged)
				ereport(LOG,
						(errmsg("pgautomator launcher: waiting for the pgautomator extension and its launcher functions in database \"%s\"",
								get_database_name(MyDatabaseId)),
						 errhint("Run CREATE EXTENSION pgautomator there, or set pgautomator.database.")));
			pga_waiting_logged = true;
			pga_started = false;
			pga_next_tick = 0;
			return false;
		}
		pga_ready_at = now;
		pga_waiting_logged = false;
		if (extension_oid != pga_extension_oid)
		{
			/*
			 * Installed afresh: register the database agent again.  What
			 * the workers of the one before run is not this one's.
			 */
			if (OidIsValid(pga_extension_oid))
			{
				pga_slots_abandon_all();
				pga_handout_reset(PGA_MY_PROCNO);
			}
			pga_extension_oid = extension_oid;
			pga_started = false;
			pga_next_tick = 0;
			pga_backoff_ms = PGA_FIRST_BACKOFF_MS;
		}
	}

	if (!pga_started)
	{
		if (now < pga_next_tick)
			return true;
		if (!pga_subxact(pga_pass_start, NULL, "_launcher_start"))
		{
			pga_pass_failed(now);
			return true;
		}
		pga_started = true;
		must_tick = true;
	}

	if (pga_slots_sync() > 0)
		must_tick = true;

	if (!pga_enabled)
	{
		pga_pass_release_handout();
		return true;
	}

	/* outcomes the workers deferred in a burst: the tick applies them */
	if (pga_handout_take_deferred())
		pga_outcomes_pending = true;
	if (pga_outcomes_pending)
	{
		must_tick = true;
		/* (a tick held back below comes at the earliest allowed instant) */
		pga_next_tick = Min(pga_next_tick, pga_tick_not_before);
	}

	/*
	 * Under load every report NOTIFYs: tick at most every PGA_TICK_GAP_MS
	 * for those (fires are timed by the instant the tick returned, and
	 * claims need no tick), so the launcher's time goes to claims.
	 */
	if (must_tick && now < TimestampTzPlusMilliseconds(pga_last_tick, PGA_TICK_GAP_MS))
	{
		pga_next_tick = Min(pga_next_tick, TimestampTzPlusMilliseconds(pga_last_tick, PGA_TICK_GAP_MS));
		must_tick = false;
	}

	if (now >= pga_tick_not_before && (must_tick || now >= pga_next_tick))
	{
		TimestampTz next = 0;

		pga_last_tick = now;

		if (pga_subxact(pga_pass_tick, &next, "_launcher_tick"))
		{
			TimestampTz latest = TimestampTzPlusMilliseconds(now, (int64) pga_max_sleep * 1000);

			pga_next_tick = (next == 0 || next > latest) ? latest : next;
			pga_backoff_ms = PGA_FIRST_BACKOFF_MS;
			pga_outcomes_pending = false;
		}
		else
			pga_pass_failed(now);
		pga_pass_prune_handout();
		/* while step runs wait there, they are looked at each second */
		if (pga_handout_has_ready())
			pga_next_tick = Min(pga_next_tick, TimestampTzPlusMilliseconds(now, 1000));
	}

	/*
	 * Step runs waiting in the hand-out queue were claimed before any the
	 * claim would take: free slots go to them first, after the commit.
	 */
	free_slots = pga_slots_free();
	if (free_slots > 0 && !pga_handout_has_ready())
	{
		MemoryContext old = MemoryContextSwitchTo(pga_pass_context);

		(void) pga_subxact(pga_pass_claim, &free_slots, "_launcher_claim");
		MemoryContextSwitchTo(old);
		pga_pass_reserve();
	}
	return true;
}

/*
 * pga_pass_sleep_ms returns how long the launcher may sleep after a pass.
 */
static long
pga_pass_sleep_ms(bool ready)
{
	long		max_ms = (long) pga_max_sleep * 1000L;
	long		until_tick;
	TimestampTz now = GetCurrentTimestamp();
	TimestampTz tick_at;

	if (!ready)
		return PGA_NOT_READY_POLL_MS;
	if (pga_slots_capped())
		max_ms = Min(max_ms, 1000L);
	if (!pga_enabled)
		return max_ms;
	tick_at = Max(pga_next_tick, pga_tick_not_before);
	if (tick_at <= now)
		return 0;
	until_tick = (long) ((tick_at - now + 999) / 1000);
	return Min(until_tick, max_ms);
}

static bool pga_prefire_work(void *arg);

/*
 * pga_pass_run runs work(arg) in one transaction (a failed pass is rolled
 * back and logged), then starts the workers of what it claimed; returns
 * what work returned (false after a failure).
 */
static bool
pga_pass_run(bool (*work) (void *), void *arg, const char *activity)
{
	volatile bool result = false;
	int			i;

	if (pga_pass_context == NULL)
		pga_pass_context = AllocSetContextCreate(TopMemoryContext, "pgautomator pass",
												 ALLOCSET_DEFAULT_SIZES);
	MemoryContextReset(pga_pass_context);
	pga_claimed.count = 0;
	pga_claimed.steps = NULL;
	pga_claimed_slots = NULL;
	pga_staged.count = 0;
	pga_staged.steps = NULL;
	pga_released_count = 0;

	pgstat_report_activity(STATE_RUNNING, activity);
	SetCurrentStatementStartTimestamp();
	StartTransactionCommand();
	PG_TRY();
	{
		pga_lock_tables(pga_pass_tables, lengthof(pga_pass_tables));
		result = work(arg);
		CommitTransactionCommand();
	}
	PG_CATCH();
	{
		ErrorData  *edata;

		MemoryContextSwitchTo(pga_pass_context);
		edata = CopyErrorData();
		FlushErrorState();
		AbortCurrentTransaction();
		ereport(WARNING,
				(errcode(edata->sqlerrcode),
				 errmsg("pgautomator launcher: %s failed: %s", activity, edata->message)));
		pga_claimed.count = 0;
		pga_staged.count = 0;
		/* what it gave back from the hand-out queue was not given back */
		for (i = 0; i < pga_released_count; i++)
			pga_handout_put_back(pga_released[i]);
		pga_released_count = 0;
		pga_slots_unreserve();
		pga_slots_release_held(false);
		/* a failed preparation leaves the instant to the ordinary pass */
		if (work != pga_prefire_work)
			pga_pass_failed(GetCurrentTimestamp());
		result = false;
	}
	PG_END_TRY();
	pga_claim_at = 0;

	/* committed claims: start their workers (or keep them for release) */
	pga_slots_release_held(true);
	for (i = 0; i < pga_claimed.count; i++)
		if (pga_claimed_slots[i] != PGA_STARTED_HELD)
			(void) pga_slots_start(&pga_claimed.steps[i], pga_claimed_slots[i]);
	/* the rest of a prepared instant's claims, for busy workers to take */
	if (pga_staged.count > 0)
		pga_handout_fill(pga_staged.steps, pga_staged.count);
	if (pga_enabled)
		pga_pass_start_handed_out();
	return result;
}

/*
 * pga_pass_work_fn is pga_pass_work for pga_pass_run.
 */
static bool
pga_pass_work_fn(void *arg)
{
	pga_pass_ready = pga_pass_work(*(bool *) arg);
	return pga_pass_ready;
}

/*
 * pga_launcher_pass runs one pass and returns how long to sleep.
 */
long
pga_launcher_pass(bool notified)
{
	/* a pass that failed counts as ready: it retries after its backoff */
	pga_pass_ready = true;
	(void) pga_pass_run(pga_pass_work_fn, &notified, "dispatcher pass");
	return pga_pass_sleep_ms(pga_pass_ready);
}

/*
 * pga_wait_until waits, inside the preparing transaction, until the
 * instant at.  Latch events meanwhile are not lost: the pass that follows
 * looks at the workers and notifications again.  The last one or two
 * milliseconds are slept (pg_usleep): a latch wait counts whole
 * milliseconds, and rounding up would start every step of the instant up
 * to 1 ms late.
 */
static void
pga_wait_until(TimestampTz at)
{
	for (;;)
	{
		TimestampTz now = GetCurrentTimestamp();

		if (now >= at)
			return;
		if (at - now < 2000)
		{
			pg_usleep((long) (at - now));
			continue;
		}
		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
						 (long) ((at - now) / 1000) - 1, PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
		CHECK_FOR_INTERRUPTS();
	}
}

/*
 * pga_prefire_start_workers starts, held, the new workers the prepared
 * claims need (no idle worker of their role and database), so that their
 * start and connection happen before the instant; they run their steps
 * when the claims commit.
 */
static void
pga_prefire_start_workers(void)
{
	int			i;

	for (i = 0; i < pga_claimed.count; i++)
		if (pga_claimed_slots[i] == PGA_NO_SLOT &&
			pga_slots_start_held(&pga_claimed.steps[i]))
			pga_claimed_slots[i] = PGA_STARTED_HELD;
}

/*
 * pga_prefire_work prepares the instant *arg: fires what is due by then,
 * claims the first steps as of then, reserves idle workers for them, and
 * waits for the instant before its transaction commits.
 */
static bool
pga_prefire_work(void *arg)
{
	TimestampTz at = *(TimestampTz *) arg;
	TimestampTz prepared;
	int			free_slots;
	int			room;
	long		took_ms;

	pga_prefire_due = 0;
	pga_prefire_all_fired = false;
	if (!pga_subxact(pga_pass_prefire, &at, "_launcher_prefire") || pga_prefire_due == 0)
		return false;
	/*
	 * The first steps as of the instant: for the workers it has, and for
	 * the hand-out queue (when it is empty), which busy workers take from
	 * without a claim of their own: a burst then starts at the pace of its
	 * steps (handout.c).
	 */
	free_slots = pga_slots_free();
	room = pga_handout_room();
	if (free_slots + room > 0)
	{
		MemoryContext old = MemoryContextSwitchTo(pga_pass_context);
		int			claim = free_slots + room;

		pga_claim_at = at;
		(void) pga_subxact(pga_pass_claim, &claim, "_launcher_claim");
		MemoryContextSwitchTo(old);
		pga_pass_stage_handout(free_slots);
		pga_pass_reserve();
		pga_prefire_start_workers();
	}

	/*
	 * The preparation's WAL is made durable before the instant, so that the
	 * commit at the instant flushes little more than its own record.
	 */
	if (!XLogRecPtrIsInvalid(XactLastRecEnd))
		XLogFlush(XactLastRecEnd);
	prepared = GetCurrentTimestamp();
	/* from the start of the lead: a late wake-up counts as preparation */
	took_ms = (long) ((prepared - TimestampTzPlusMilliseconds(at, -pga_prefire_lead_ms)) / 1000);
	if (prepared > at)
		ereport(DEBUG1,
				(errmsg_internal("pgautomator launcher: preparing a due instant took %ld ms, its lead was %ld ms: its steps start %ld ms late",
								 took_ms, pga_prefire_lead_ms, (long) ((prepared - at) / 1000))));
	pga_prefire_lead_ms = Max(PGA_PREFIRE_MIN_LEAD_MS,
							  Min(PGA_PREFIRE_MAX_LEAD_MS,
								  Max(took_ms * 2 + PGA_PREFIRE_MARGIN_MS,
									  pga_prefire_lead_ms - pga_prefire_lead_ms / 8)));
	pga_wait_until(at);
	return true;
}

/*
 * pga_instant_in_lead tells whether the next due instant has come within
 * lead_ms of now and was not tried yet (it then records it in *tried);
 * when it is further ahead it shortens *sleep_ms to wake as the lead
 * starts.  Once per instant: one that had nothing to do, or failed, waits.
 */
static bool
pga_instant_in_lead(TimestampTz now, long lead_ms, TimestampTz *tried, long *sleep_ms)
{
	TimestampTz at = pga_next_tick;
	TimestampTz lead_start;

	if (!pga_started || !pga_enabled || at <= now || at == *tried || pga_slots_capped())
		return false;
	lead_start = TimestampTzPlusMilliseconds(at, -lead_ms);
	if (now < lead_start)
	{
		*sleep_ms = Min(*sleep_ms, (long) ((lead_start - now + 999) / 1000));
		return false;
	}
	*tried = at;
	return true;
}

/*
 * pga_launcher_prefire is called instead of sleeping sleep_ms.  When the
 * next due instant is near (within the lead) it prepares that instant and
 * returns true once it has come and the preparation is committed (false
 * when there was nothing to fire); otherwise it shortens *sleep_ms to wake
 * at the start of the lead.
 */
bool
pga_launcher_prefire(long *sleep_ms)
{
	TimestampTz at = pga_next_tick;

	if (!pga_instant_in_lead(GetCurrentTimestamp(), pga_prefire_lead_ms, &pga_prefire_tried, sleep_ms))
		return false;
	if (!pga_pass_run(pga_prefire_work, &at, "preparing a due instant"))
		return false;
	/* committed: the pass that follows claims; its tick may come later */
	if (pga_prefire_all_fired)
		pga_tick_not_before = TimestampTzPlusMilliseconds(GetCurrentTimestamp(), PGA_PREFIRE_TICK_GAP_MS);
	return true;
}

/*
 * pga_launcher_spares is called, like pga_launcher_prefire, instead of
 * sleeping sleep_ms.  When the next due instant is within the spares' lead
 * it starts, once per instant, idle workers of the sessions its steps need
 * (launcher_spares.c); otherwise it shortens *sleep_ms to wake then.
 */
void
pga_launcher_spares(long *sleep_ms)
{
	TimestampTz now = GetCurrentTimestamp();
	TimestampTz at = pga_next_tick;
	long		lead_ms = pga_spares_lead_ms();

	if (!pga_have_spares || lead_ms <= 0 ||
		!pga_instant_in_lead(now, lead_ms, &pga_spares_tried, sleep_ms))
		return;
	/* too late: the preparation starts the workers it needs itself */
	if (at - now <= (TimestampTz) pga_prefire_lead_ms * 1000)
		return;

	/* an error (no shared memory for a segment) costs only the head start */
	PG_TRY();
	{
		pga_spares_start(at);
	}
	PG_CATCH();
	{
		pga_log_caught("start of spare step workers");
		AbortOutOfAnyTransaction();
	}
	PG_END_TRY();
}

/*-------------------------------------------------------------------------
 *
 * pgautomator.h
 *	  Declarations shared by the launcher and the step workers.
 *
 * The launcher (one static background worker) runs the dispatcher's SQL
 * functions and starts one dynamic background worker per claimed step run.
 * They talk through a dynamic shared memory segment per step run: the
 * launcher writes the inputs, the worker writes its outcome.
 *
 *-------------------------------------------------------------------------
 */
#ifndef PGAUTOMATOR_H
#define PGAUTOMATOR_H

#include "postgres.h"

#include "access/htup.h"
#include "access/tupdesc.h"
#include "datatype/timestamp.h"
#include "lib/stringinfo.h"
#include "storage/dsm.h"

/*
 * The number of this process's PGPROC, by which other processes find its
 * latch: PostgreSQL 17 dropped PGPROC.pgprocno for MyProcNumber (declared
 * in storage/procnumber.h, which storage/proc.h includes).
 */
#if PG_VERSION_NUM >= 170000
#define PGA_MY_PROCNO	MyProcNumber
#else
#define PGA_MY_PROCNO	(MyProc->pgprocno)
#endif

/* settings (init.c) */
extern char *pga_database;
extern int	pga_max_workers;
extern bool pga_enabled;
extern int	pga_max_sleep;
extern int	pga_worker_idle_time;
extern int	pga_mailer_interval;

/*
 * Bounds of what a step worker sends back, in bytes.  Output matches the
 * dispatcher's default output_limit (characters), so that a cut made here
 * is the only one and its mark, in the dispatcher's format, is exact.
 */
#define PGA_ERROR_MAX		8192
#define PGA_MESSAGES_MAX	32768
#define PGA_OUTPUT_MAX		65536

/* inputs of one step run, as _launcher_claim returns them */
typedef struct PgaStepInput
{
	int64		step_run_id;
	char		database[NAMEDATALEN];
	char		run_as[NAMEDATALEN];
	char	   *code;
	bool		single_transaction;
	int64		timeout_ms;		/* 0: none */
} PgaStepInput;

/* what a step worker reports */
typedef struct PgaStepOutcome
{
	int64		step_run_id;	/* the step run it is the outcome of */
	bool		self_reported;	/* settled by the worker itself: nothing to report */
	bool		recorded_with_step; /* committed in the step's own transaction */
	bool		not_run;		/* the worker could not take it: give it back */
	bool		lost;			/* the worker ended without an outcome */
	bool		succeeded;
	char		sqlstate[6];	/* empty when succeeded */
	char	   *error;			/* NULL when succeeded */
	char	   *messages;		/* NOTICE/WARNING/INFO lines, bounded */
	int64		rows;
	char	   *output;			/* rows returned, bounded */
	int			encoding;		/* of the texts: the step database's */
} PgaStepOutcome;

/* a bounded text buffer that keeps the tail (step_text.c) */
typedef struct PgaTailBuffer
{
	StringInfoData buf;
	Size		limit;
	bool		truncated;
	Size		cut_chars;		/* characters dropped from the head */
} PgaTailBuffer;

extern void pga_tail_init(PgaTailBuffer *tb, Size limit);
extern void pga_tail_append(PgaTailBuffer *tb, const char *data, Size len);
extern char *pga_tail_finish(PgaTailBuffer *tb);
extern char *pga_clip_text(const char *text, Size limit);

/* the shared segment of one step worker (step_shm.c) */
extern dsm_segment *pga_shm_create(const PgaStepInput *input);
extern bool pga_shm_fits(dsm_segment *seg, const PgaStepInput *input);
extern bool pga_shm_assign(dsm_segment *seg, const PgaStepInput *input);
extern void pga_shm_read_session(dsm_segment *seg, char *database, char *run_as);
extern void pga_shm_worker_attached(dsm_segment *seg);
extern void pga_shm_quit(dsm_segment *seg);
extern void pga_shm_hold(dsm_segment *seg);
extern void pga_shm_release(dsm_segment *seg);
extern bool pga_shm_held(dsm_segment *seg);
extern bool pga_shm_quitting(dsm_segment *seg);
extern bool pga_shm_pending(dsm_segment *seg);
extern void pga_shm_read_input(dsm_segment *seg, PgaStepInput *input);
extern void pga_shm_set_current(dsm_segment *seg, int64 step_run_id);
extern int64 pga_shm_current(dsm_segment *seg);
extern bool pga_shm_outcome_written(dsm_segment *seg);
extern bool pga_shm_taken(dsm_segment *seg);
extern void pga_shm_write_outcome(dsm_segment *seg, const PgaStepOutcome *outcome);
extern bool pga_shm_read_outcome(dsm_segment *seg, PgaStepOutcome *outcome);

/* capture of messages in a step worker (step_messages.c) */
extern void pga_messages_start(void);
extern void pga_messages_raise_level(void);
extern void pga_messages_reset(void);
extern char *pga_messages_finish(void);
extern bool pga_messages_last_fatal(char *sqlstate, char **message);

/*
 * running the code of a step (step_exec.c); before_commit, when given, may
 * record the outcome of a step that succeeded in the step's last
 * transaction, just before it commits (step_settle.c)
 */
typedef bool (*PgaBeforeCommit) (const PgaStepOutcome *outcome, void *arg);

extern void pga_exec_step(const PgaStepInput *input, PgaStepOutcome *outcome,
						  PgaBeforeCommit before_commit, void *arg);

/* a step worker settling its own step run (step_settle.c) */
typedef enum PgaSettleResult
{
	PGA_SETTLE_FAILED,			/* nothing recorded: the launcher must report */
	PGA_SETTLE_RETRY_LATER,		/* the same, after an error that may pass */
	PGA_SETTLE_DONE,			/* recorded, no next step run claimed */
	PGA_SETTLE_NEXT				/* recorded, and the next step run claimed */
} PgaSettleResult;

/* what recording an outcome in the step's own transaction asks and gives */
typedef struct PgaInStepSettle
{
	dsm_segment *seg;			/* the worker's: no claim when asked to quit */
	bool		claimed;		/* it did: next is valid once committed */
	PgaStepInput next;
	int			failed_code;	/* the bookkeeping failed, and the step (0: no) */
} PgaInStepSettle;

extern bool pga_session_reset(bool keep_cancel);
extern void pga_settle_rehearse(void);
extern bool pga_settle_error_may_pass(int sqlerrcode);
extern PgaSettleResult pga_settle_step(const PgaStepOutcome *outcome, bool claim, PgaStepInput *next);
extern bool pga_settle_in_step(const PgaStepOutcome *outcome, void *arg);

/* deferring an outcome and taking the next step run (step_defer.c) */
extern void pga_defer_pin_search_path(int action);
extern int	pga_defer_execute(Datum *values, const char *nulls);

/* the output receiver of a step (step_output.c) */
extern struct _DestReceiver *pga_output_receiver(PgaTailBuffer *output);

/* entry points of the background workers */
extern PGDLLEXPORT void pga_launcher_main(Datum main_arg);
extern PGDLLEXPORT void pga_step_worker_main(Datum main_arg);
extern PGDLLEXPORT void pga_mailer_main(Datum main_arg);

/* the notification mailer (mailer.c) */
extern void pga_register_mailer(void);

/* the SQL contract the launcher calls (launcher_calls.c) */
extern void pga_spi_run(const char *sql, int nargs, Oid *types, Datum *values, const char *nulls);
extern void pga_spi_done(void);
typedef struct PgaClaimed
{
	int			count;
	PgaStepInput *steps;
} PgaClaimed;

/* the sessions (database, run-as role) the steps of a due instant need */
typedef struct PgaSession
{
	char		database[NAMEDATALEN];
	char		run_as[NAMEDATALEN];
	int			steps;
} PgaSession;

typedef struct PgaSessions
{
	int			count;
	PgaSession *items;
} PgaSessions;

extern bool pga_extension_ready(bool *has_release, bool *has_spares, Oid *extension_oid);
extern int64 pga_call_start(void);
extern TimestampTz pga_call_tick(void);
extern int	pga_call_prefire(TimestampTz at, bool *all_fired);
extern PgaClaimed pga_call_claim(int max_steps, TimestampTz at);
extern PgaSessions pga_call_sessions_due(TimestampTz at);
extern void pga_call_started(int64 step_run_id, int pid);
extern void pga_call_report(int64 step_run_id, const PgaStepOutcome *outcome);
extern void pga_call_release(int64 step_run_id);
extern void pga_call_handout_stale(const int64 *ids, int n, bool *stale);
extern char *pga_server_text(const char *text, int encoding);
extern Datum pga_text_datum(const char *text, int encoding, char *null);
extern void pga_read_local_step(HeapTuple tuple, TupleDesc desc, PgaStepInput *step,
								MemoryContext context);

/* the launcher's table of running step workers (launcher_slots.c) */
extern void pga_slots_init(void);
extern int	pga_slots_free(void);
extern int	pga_slots_running(void);
extern int	pga_slots_reserve(const PgaStepInput *input);
extern int	pga_slots_reserved_pid(int slotno);
extern void pga_slots_reserved_recorded(int slotno);
extern void pga_slots_unreserve(void);
extern bool pga_slots_start(const PgaStepInput *input, int slotno);
extern bool pga_slots_start_held(const PgaStepInput *input);
extern int	pga_slots_room(void);
extern int	pga_slots_of(const char *database, const char *run_as);
extern bool pga_slots_start_spare(const char *database, const char *run_as);
extern void pga_slots_release_held(bool committed);
extern bool pga_slots_collect(void);
extern int	pga_slots_sync(void);
extern bool pga_slots_capped(void);
extern void pga_slots_abandon_all(void);
extern void pga_slots_terminate_all(void);

/* the launcher's hand-out queue of claimed step runs (handout.c) */
extern void pga_handout_request_shmem(void);
extern void pga_handout_reset(int launcher_procno);
extern int	pga_handout_room(void);
extern int	pga_handout_fits(const PgaStepInput *steps, int n);
extern void pga_handout_fill(const PgaStepInput *steps, int n);
extern bool pga_handout_take_mine(const char *database, const char *run_as, PgaStepInput *input);
extern void pga_handout_settle_held(bool keep, bool deferred);
extern void pga_handout_xact_end(bool committed);
extern void pga_handout_worker_init(void);
extern bool pga_handout_take_any(PgaStepInput *input, MemoryContext context);
extern bool pga_handout_take_deferred(void);
extern int64 *pga_handout_ready_ids(MemoryContext context, int *n, TimestampTz *filled_at);
extern bool pga_handout_take_id(int64 step_run_id);
extern bool pga_handout_has_ready(void);
extern void pga_handout_put_back(int64 step_run_id);

/* the tables a bookkeeping transaction uses, locked first (table_locks.c) */
extern void pga_lock_tables(const char *const *tables, int count);

/* subtransactions of a dispatcher pass (launcher_xact.c) */
extern bool pga_subxact(void (*fn) (void *), void *arg, const char *what);
extern void pga_log_caught(const char *what);

/* one dispatcher pass (launcher_pass.c) */
extern bool pga_have_release;
extern long pga_launcher_pass(bool notified);
extern bool pga_launcher_prefire(long *sleep_ms);
extern void pga_launcher_spares(long *sleep_ms);

/* idle workers started ahead of a due instant (launcher_spares.c) */
extern long pga_spares_lead_ms(void);
extern void pga_spares_start(TimestampTz at);

#endif							/* PGAUTOMATOR_H */

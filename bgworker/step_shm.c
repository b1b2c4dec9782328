/*-------------------------------------------------------------------------
 *
 * step_shm.c
 *	  The dynamic shared memory segment of one step worker.
 *
 * The launcher creates it with the first step run's inputs (a spare's with
 * only its database and role) and passes its handle to the worker.  Each assignment is numbered: the launcher writes
 * the inputs and then raises assigned_seq; the worker writes the outcome
 * and then raises done_seq to match, and each sets the other's latch.  A
 * worker that stays connected for more steps of the same role and database
 * gets its next assignment through the same segment.  Text areas have
 * fixed bounds, so the segment never grows; code larger than the area
 * needs a new worker.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "mb/pg_wchar.h"
#include "port/atomics.h"
#include "storage/latch.h"
#include "storage/proc.h"
#include "storage/shm_toc.h"

#include "pgautomator.h"

#define PGA_SHM_MAGIC		0x70676175	/* "pgau" */
#define PGA_KEY_HEADER		1
#define PGA_KEY_CODE		2
#define PGA_KEY_ERROR		3
#define PGA_KEY_MESSAGES	4
#define PGA_KEY_OUTPUT		5
#define PGA_TEXT_SLACK		64		/* room for a truncation mark */
#define PGA_CODE_MIN		16384	/* code area of a segment, at least */

typedef struct PgaShmHeader
{
	/* set when the segment is made */
	int			launcher_procno;
	Size		code_capacity;

	/* set by the worker when it starts; -1 before */
	pg_atomic_uint32 worker_procno;
	/* set by the launcher to make an idle worker exit */
	pg_atomic_uint32 quit;
	/* set while the claim of its first step run is not committed yet */
	pg_atomic_uint32 hold;

	/* the current assignment, written by the launcher before assigned_seq */
	int64		step_run_id;
	int64		timeout_ms;
	bool		single_transaction;
	char		database[NAMEDATALEN];
	char		run_as[NAMEDATALEN];
	pg_atomic_uint64 assigned_seq;
	/* the assignment the worker has taken up (read its inputs) */
	pg_atomic_uint64 taken_seq;
	/* the step run it executes: the assigned one, or one it claimed itself */
	pg_atomic_uint64 current_step_run_id;

	/* its outcome, written by the worker before done_seq */
	int64		outcome_step_run_id;
	bool		self_reported;	/* the worker reported it itself */
	bool		not_run;
	bool		succeeded;
	char		sqlstate[6];
	int			encoding;
	int64		rows;
	pg_atomic_uint64 done_seq;
} PgaShmHeader;

/*
 * pga_shm_estimate adds the chunks of the segment to an estimator.
 */
static void
pga_shm_estimate(shm_toc_estimator *e, Size code_capacity)
{
	shm_toc_initialize_estimator(e);
	shm_toc_estimate_chunk(e, sizeof(PgaShmHeader));
	shm_toc_estimate_chunk(e, code_capacity);
	shm_toc_estimate_chunk(e, PGA_ERROR_MAX + PGA_TEXT_SLACK);
	shm_toc_estimate_chunk(e, PGA_MESSAGES_MAX + PGA_TEXT_SLACK);
	shm_toc_estimate_chunk(e, PGA_OUTPUT_MAX + PGA_TEXT_SLACK);
	shm_toc_estimate_keys(e, 5);
}

/*
 * pga_shm_text_area allocates a zeroed text area of the segment.
 */
static void
pga_shm_text_area(shm_toc *toc, uint64 key, Size size)
{
	char	   *area = shm_toc_allocate(toc, size);

	memset(area, 0, size);
	shm_toc_insert(toc, key, area);
}

/*
 * pga_shm_toc returns the table of contents of a segment made by
 * pga_shm_create, or raises an error for anything else.
 */
static shm_toc *
pga_shm_toc(dsm_segment *seg)
{
	shm_toc    *toc = shm_toc_attach(PGA_SHM_MAGIC, dsm_segment_address(seg));

	if (toc == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("pgautomator step segment has a bad magic number")));
	return toc;
}

/*
 * pga_shm_header returns the header of a segment.
 */
static PgaShmHeader *
pga_shm_header(dsm_segment *seg)
{
	return shm_toc_lookup(pga_shm_toc(seg), PGA_KEY_HEADER, false);
}

/*
 * pga_shm_set_latch wakes the process with the given PGPROC number.
 */
static void
pga_shm_set_latch(int procno)
{
	if (procno >= 0)
		SetLatch(&GetPGProcByNumber(procno)->procLatch);
}

/*
 * pga_shm_create makes the segment of a new worker, holding its first
 * assignment (none for a spare: step_run_id 0).  The mapping stays until the caller detaches it, whatever
 * resource owner is current.  NULL when no segment can be made now.
 */
dsm_segment *
pga_shm_create(const PgaStepInput *input)
{
	Size		code_capacity = Max(PGA_CODE_MIN, strlen(input->code) + 1);
	shm_toc_estimator e;
	Size		size;
	dsm_segment *seg;
	shm_toc    *toc;
	PgaShmHeader *header;

	pga_shm_estimate(&e, code_capacity);
	size = shm_toc_estimate(&e);
	seg = dsm_create(size, DSM_CREATE_NULL_IF_MAXSEGMENTS);
	if (seg == NULL)
		return NULL;
	dsm_pin_mapping(seg);
	toc = shm_toc_create(PGA_SHM_MAGIC, dsm_segment_address(seg), size);

	header = shm_toc_allocate(toc, sizeof(PgaShmHeader));
	memset(header, 0, sizeof(PgaShmHeader));
	header->launcher_procno = PGA_MY_PROCNO;
	header->code_capacity = code_capacity;
	pg_atomic_init_u32(&header->worker_procno, (uint32) -1);
	pg_atomic_init_u32(&header->quit, 0);
	pg_atomic_init_u32(&header->hold, 0);
	pg_atomic_init_u64(&header->assigned_seq, 0);
	pg_atomic_init_u64(&header->taken_seq, 0);
	pg_atomic_init_u64(&header->done_seq, 0);
	pg_atomic_init_u64(&header->current_step_run_id, 0);
	shm_toc_insert(toc, PGA_KEY_HEADER, header);

	pga_shm_text_area(toc, PGA_KEY_CODE, code_capacity);
	pga_shm_text_area(toc, PGA_KEY_ERROR, PGA_ERROR_MAX + PGA_TEXT_SLACK);
	pga_shm_text_area(toc, PGA_KEY_MESSAGES, PGA_MESSAGES_MAX + PGA_TEXT_SLACK);
	pga_shm_text_area(toc, PGA_KEY_OUTPUT, PGA_OUTPUT_MAX + PGA_TEXT_SLACK);

	if (input->step_run_id != 0)
		(void) pga_shm_assign(seg, input);
	else
	{
		/* a spare: whom to connect as, until its first assignment */
		strlcpy(header->database, input->database, NAMEDATALEN);
		strlcpy(header->run_as, input->run_as, NAMEDATALEN);
	}
	return seg;
}

/*
 * pga_shm_read_session copies, in a new worker, the database and role to
 * connect as: its first assignment's, or a spare's.
 */
void
pga_shm_read_session(dsm_segment *seg, char *database, char *run_as)
{
	PgaShmHeader *header = pga_shm_header(seg);

	pg_read_barrier();
	strlcpy(database, header->database, NAMEDATALEN);
	strlcpy(run_as, header->run_as, NAMEDATALEN);
}

/*
 * pga_shm_fits tells whether a step run's code fits the segment.
 */
bool
pga_shm_fits(dsm_segment *seg, const PgaStepInput *input)
{
	return strlen(input->code) + 1 <= pga_shm_header(seg)->code_capacity;
}

/*
 * pga_shm_assign gives the worker its next step run and wakes it; false if
 * the code does not fit the segment.
 */
bool
pga_shm_assign(dsm_segment *seg, const PgaStepInput *input)
{
	shm_toc    *toc = pga_shm_toc(seg);
	PgaShmHeader *header = shm_toc_lookup(toc, PGA_KEY_HEADER, false);
	Size		code_len = strlen(input->code);

	if (code_len + 1 > header->code_capacity)	/* (pga_shm_fits) */
		return false;
	header->step_run_id = input->step_run_id;
	header->timeout_ms = input->timeout_ms;
	header->single_transaction = input->single_transaction;
	strlcpy(header->database, input->database, NAMEDATALEN);
	strlcpy(header->run_as, input->run_as, NAMEDATALEN);
	memcpy(shm_toc_lookup(toc, PGA_KEY_CODE, false), input->code, code_len + 1);
	pg_write_barrier();
	pg_atomic_fetch_add_u64(&header->assigned_seq, 1);
	pga_shm_set_latch((int) pg_atomic_read_u32(&header->worker_procno));
	return true;
}

/*
 * pga_shm_worker_attached records the worker's latch in the segment.
 */
void
pga_shm_worker_attached(dsm_segment *seg)
{
	pg_atomic_write_u32(&pga_shm_header(seg)->worker_procno, (uint32) PGA_MY_PROCNO);
}

/*
 * pga_shm_quit asks an idle worker to exit.
 */
void
pga_shm_quit(dsm_segment *seg)
{
	PgaShmHeader *header = pga_shm_header(seg);

	pg_atomic_write_u32(&header->quit, 1);
	pga_shm_set_latch((int) pg_atomic_read_u32(&header->worker_procno));
}

/*
 * pga_shm_hold keeps a new worker from running its first step run until
 * pga_shm_release: the launcher starts it before the claim commits.
 */
void
pga_shm_hold(dsm_segment *seg)
{
	pg_atomic_write_u32(&pga_shm_header(seg)->hold, 1);
}

/*
 * pga_shm_release lets a held worker run its first step run.
 */
void
pga_shm_release(dsm_segment *seg)
{
	PgaShmHeader *header = pga_shm_header(seg);

	pg_atomic_write_u32(&header->hold, 0);
	pga_shm_set_latch((int) pg_atomic_read_u32(&header->worker_procno));
}

/*
 * pga_shm_held tells a worker whether it must wait before its first step.
 */
bool
pga_shm_held(dsm_segment *seg)
{
	return pg_atomic_read_u32(&pga_shm_header(seg)->hold) != 0;
}

/*
 * pga_shm_quitting tells a worker whether the launcher asked it to exit.
 */
bool
pga_shm_quitting(dsm_segment *seg)
{
	return pg_atomic_read_u32(&pga_shm_header(seg)->quit) != 0;
}

/*
 * pga_shm_pending tells whether an assignment waits for its outcome (or,
 * in the worker, to be taken up).
 */
bool
pga_shm_pending(dsm_segment *seg)
{
	PgaShmHeader *header = pga_shm_header(seg);

	return pg_atomic_read_u64(&header->assigned_seq) > pg_atomic_read_u64(&header->done_seq);
}

/*
 * pga_shm_read_input takes up the current assignment in the worker and
 * copies it (the code is palloc'd in the current memory context).
 */
void
pga_shm_read_input(dsm_segment *seg, PgaStepInput *input)
{
	shm_toc    *toc = pga_shm_toc(seg);
	PgaShmHeader *header = shm_toc_lookup(toc, PGA_KEY_HEADER, false);

	pg_atomic_write_u64(&header->taken_seq, pg_atomic_read_u64(&header->assigned_seq));
	pg_read_barrier();
	input->step_run_id = header->step_run_id;
	pg_atomic_write_u64(&header->current_step_run_id, (uint64) input->step_run_id);
	input->timeout_ms = header->timeout_ms;
	input->single_transaction = header->single_transaction;
	strlcpy(input->database, header->database, NAMEDATALEN);
	strlcpy(input->run_as, header->run_as, NAMEDATALEN);
	input->code = pstrdup(shm_toc_lookup(toc, PGA_KEY_CODE, false));
}

/*
 * pga_shm_set_current records, in the worker, the step run it claimed
 * itself and is about to execute.
 */
void
pga_shm_set_current(dsm_segment *seg, int64 step_run_id)
{
	pg_atomic_write_u64(&pga_shm_header(seg)->current_step_run_id, (uint64) step_run_id);
}

/*
 * pga_shm_current returns the step run the worker executes (or last did).
 */
int64
pga_shm_current(dsm_segment *seg)
{
	return (int64) pg_atomic_read_u64(&pga_shm_header(seg)->current_step_run_id);
}

/*
 * pga_shm_outcome_written tells whether the current assignment's outcome
 * has been written.
 */
bool
pga_shm_outcome_written(dsm_segment *seg)
{
	return !pga_shm_pending(seg);
}

/*
 * pga_shm_taken tells the worker whether it has taken up an assignment
 * that still needs its outcome.
 */
bool
pga_shm_taken(dsm_segment *seg)
{
	PgaShmHeader *header = pga_shm_header(seg);

	return pg_atomic_read_u64(&header->taken_seq) > pg_atomic_read_u64(&header->done_seq);
}

/*
 * pga_shm_put_text copies text (NULL counts as empty) into a text area,
 * clipped to the area.
 */
static void
pga_shm_put_text(shm_toc *toc, uint64 key, Size area_size, const char *text)
{
	char	   *area = shm_toc_lookup(toc, key, false);
	Size		len;

	if (text == NULL)
		text = "";
	len = strlen(text);
	if (len >= area_size)
		len = pg_mbcliplen(text, len, area_size - 1);
	memcpy(area, text, len);
	area[len] = '\0';
}

/*
 * pga_shm_write_outcome records the outcome of the assignment the worker
 * took up, once, and wakes the launcher.
 */
void
pga_shm_write_outcome(dsm_segment *seg, const PgaStepOutcome *outcome)
{
	shm_toc    *toc = pga_shm_toc(seg);
	PgaShmHeader *header = shm_toc_lookup(toc, PGA_KEY_HEADER, false);

	if (!pga_shm_taken(seg))
		return;
	pga_shm_put_text(toc, PGA_KEY_ERROR, PGA_ERROR_MAX + PGA_TEXT_SLACK, outcome->error);
	pga_shm_put_text(toc, PGA_KEY_MESSAGES, PGA_MESSAGES_MAX + PGA_TEXT_SLACK, outcome->messages);
	pga_shm_put_text(toc, PGA_KEY_OUTPUT, PGA_OUTPUT_MAX + PGA_TEXT_SLACK, outcome->output);
	header->outcome_step_run_id = outcome->step_run_id;
	header->self_reported = outcome->self_reported;
	header->not_run = outcome->not_run;
	header->succeeded = outcome->succeeded;
	strlcpy(header->sqlstate, outcome->sqlstate, sizeof(header->sqlstate));
	header->encoding = outcome->encoding;
	header->rows = outcome->rows;
	pg_write_barrier();
	pg_atomic_write_u64(&header->done_seq, pg_atomic_read_u64(&header->taken_seq));
	pga_shm_set_latch(header->launcher_procno);
}

/*
 * pga_shm_get_text returns a palloc'd copy of a text area, NULL if empty.
 */
static char *
pga_shm_get_text(shm_toc *toc, uint64 key, Size area_size)
{
	char	   *area = shm_toc_lookup(toc, key, false);
	Size		len = strnlen(area, area_size - 1);

	return len == 0 ? NULL : pnstrdup(area, len);
}

/*
 * pga_shm_read_outcome copies the outcome into palloc'd memory.  For an
 * exited worker that never took up its assignment (it ended idle just as
 * the assignment came) the outcome is "not run"; false when the worker
 * took it up but wrote nothing.
 */
bool
pga_shm_read_outcome(dsm_segment *seg, PgaStepOutcome *outcome)
{
	shm_toc    *toc = pga_shm_toc(seg);
	PgaShmHeader *header = shm_toc_lookup(toc, PGA_KEY_HEADER, false);

	if (pga_shm_pending(seg))
	{
		if (pg_atomic_read_u64(&header->taken_seq) == pg_atomic_read_u64(&header->assigned_seq))
			return false;
		memset(outcome, 0, sizeof(PgaStepOutcome));
		outcome->not_run = true;
		return true;
	}
	pg_read_barrier();
	outcome->step_run_id = header->outcome_step_run_id;
	outcome->self_reported = header->self_reported;
	outcome->not_run = header->not_run;
	outcome->succeeded = header->succeeded;
	memcpy(outcome->sqlstate, header->sqlstate, sizeof(outcome->sqlstate));
	outcome->sqlstate[sizeof(outcome->sqlstate) - 1] = '\0';
	outcome->encoding = header->encoding;
	outcome->rows = header->rows;
	outcome->error = pga_shm_get_text(toc, PGA_KEY_ERROR, PGA_ERROR_MAX + PGA_TEXT_SLACK);
	outcome->messages = pga_shm_get_text(toc, PGA_KEY_MESSAGES, PGA_MESSAGES_MAX + PGA_TEXT_SLACK);
	outcome->output = pga_shm_get_text(toc, PGA_KEY_OUTPUT, PGA_OUTPUT_MAX + PGA_TEXT_SLACK);
	return true;
}

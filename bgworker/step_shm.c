/*-------------------------------------------------------------------------
 *
 * step_shm.c
 *	  The dynamic shared memory segment of one step run.
 *
 * The launcher creates it with the step's inputs and passes its handle to
 * the step worker; the worker writes its outcome into it once, setting
 * "done" last, and the launcher reads it after the worker has exited.
 * Text areas have fixed bounds, so the segment never grows.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "mb/pg_wchar.h"
#include "port/atomics.h"
#include "storage/shm_toc.h"

#include "pgautomator.h"

#define PGA_SHM_MAGIC		0x70676175	/* "pgau" */
#define PGA_KEY_HEADER		1
#define PGA_KEY_CODE		2
#define PGA_KEY_ERROR		3
#define PGA_KEY_MESSAGES	4
#define PGA_KEY_OUTPUT		5
#define PGA_TEXT_SLACK		64		/* room for a truncation mark */

typedef struct PgaShmHeader
{
	/* inputs, written by the launcher before the worker starts */
	int64		step_run_id;
	int64		timeout_ms;
	bool		single_transaction;
	char		database[NAMEDATALEN];
	char		run_as[NAMEDATALEN];

	/* outcome, written by the worker; done is set last */
	bool		done;
	bool		succeeded;
	char		sqlstate[6];
	int			encoding;
	int64		rows;
} PgaShmHeader;

/*
 * pga_shm_estimate adds the chunks of the segment to an estimator.
 */
static void
pga_shm_estimate(shm_toc_estimator *e, Size code_len)
{
	shm_toc_initialize_estimator(e);
	shm_toc_estimate_chunk(e, sizeof(PgaShmHeader));
	shm_toc_estimate_chunk(e, code_len + 1);
	shm_toc_estimate_chunk(e, PGA_ERROR_MAX + PGA_TEXT_SLACK);
	shm_toc_estimate_chunk(e, PGA_MESSAGES_MAX + PGA_TEXT_SLACK);
	shm_toc_estimate_chunk(e, PGA_OUTPUT_MAX + PGA_TEXT_SLACK);
	shm_toc_estimate_keys(e, 5);
}

/*
 * pga_shm_size returns the size of the segment for the given inputs.
 */
Size
pga_shm_size(const PgaStepInput *input)
{
	shm_toc_estimator e;

	pga_shm_estimate(&e, strlen(input->code));
	return shm_toc_estimate(&e);
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
 * pga_shm_create creates the segment of a step run, filled with its
 * inputs.  The mapping stays until pga_shm_* callers detach it, whatever
 * resource owner is current.
 */
dsm_segment *
pga_shm_create(const PgaStepInput *input)
{
	Size		code_len = strlen(input->code);
	Size		size = pga_shm_size(input);
	dsm_segment *seg;
	shm_toc    *toc;
	PgaShmHeader *header;
	char	   *code;

	seg = dsm_create(size, DSM_CREATE_NULL_IF_MAXSEGMENTS);
	if (seg == NULL)
		return NULL;
	dsm_pin_mapping(seg);
	toc = shm_toc_create(PGA_SHM_MAGIC, dsm_segment_address(seg), size);

	header = shm_toc_allocate(toc, sizeof(PgaShmHeader));
	memset(header, 0, sizeof(PgaShmHeader));
	header->step_run_id = input->step_run_id;
	header->timeout_ms = input->timeout_ms;
	header->single_transaction = input->single_transaction;
	strlcpy(header->database, input->database, NAMEDATALEN);
	strlcpy(header->run_as, input->run_as, NAMEDATALEN);
	shm_toc_insert(toc, PGA_KEY_HEADER, header);

	code = shm_toc_allocate(toc, code_len + 1);
	memcpy(code, input->code, code_len + 1);
	shm_toc_insert(toc, PGA_KEY_CODE, code);

	pga_shm_text_area(toc, PGA_KEY_ERROR, PGA_ERROR_MAX + PGA_TEXT_SLACK);
	pga_shm_text_area(toc, PGA_KEY_MESSAGES, PGA_MESSAGES_MAX + PGA_TEXT_SLACK);
	pga_shm_text_area(toc, PGA_KEY_OUTPUT, PGA_OUTPUT_MAX + PGA_TEXT_SLACK);
	return seg;
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
 * pga_shm_read_input copies the inputs of the step run (the code is
 * palloc'd in the current memory context).
 */
void
pga_shm_read_input(dsm_segment *seg, PgaStepInput *input)
{
	shm_toc    *toc = pga_shm_toc(seg);
	PgaShmHeader *header = shm_toc_lookup(toc, PGA_KEY_HEADER, false);

	input->step_run_id = header->step_run_id;
	input->timeout_ms = header->timeout_ms;
	input->single_transaction = header->single_transaction;
	strlcpy(input->database, header->database, NAMEDATALEN);
	strlcpy(input->run_as, header->run_as, NAMEDATALEN);
	input->code = pstrdup(shm_toc_lookup(toc, PGA_KEY_CODE, false));
}

/*
 * pga_shm_outcome_written tells whether the worker has written its outcome.
 */
bool
pga_shm_outcome_written(dsm_segment *seg)
{
	PgaShmHeader *header = shm_toc_lookup(pga_shm_toc(seg), PGA_KEY_HEADER, false);

	return header->done;
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
 * pga_shm_write_outcome records the outcome of the step run, once.
 */
void
pga_shm_write_outcome(dsm_segment *seg, const PgaStepOutcome *outcome)
{
	shm_toc    *toc = pga_shm_toc(seg);
	PgaShmHeader *header = shm_toc_lookup(toc, PGA_KEY_HEADER, false);

	if (header->done)
		return;
	pga_shm_put_text(toc, PGA_KEY_ERROR, PGA_ERROR_MAX + PGA_TEXT_SLACK, outcome->error);
	pga_shm_put_text(toc, PGA_KEY_MESSAGES, PGA_MESSAGES_MAX + PGA_TEXT_SLACK, outcome->messages);
	pga_shm_put_text(toc, PGA_KEY_OUTPUT, PGA_OUTPUT_MAX + PGA_TEXT_SLACK, outcome->output);
	header->succeeded = outcome->succeeded;
	strlcpy(header->sqlstate, outcome->sqlstate, sizeof(header->sqlstate));
	header->encoding = outcome->encoding;
	header->rows = outcome->rows;
	pg_write_barrier();
	header->done = true;
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
 * pga_shm_read_outcome copies the outcome into palloc'd memory; false when
 * the worker ended without writing one.
 */
bool
pga_shm_read_outcome(dsm_segment *seg, PgaStepOutcome *outcome)
{
	shm_toc    *toc = pga_shm_toc(seg);
	PgaShmHeader *header = shm_toc_lookup(toc, PGA_KEY_HEADER, false);

	if (!header->done)
		return false;
	pg_read_barrier();
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

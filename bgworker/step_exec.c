/*-------------------------------------------------------------------------
 *
 * step_exec.c
 *	  Running a step's SQL at top level, the way a client's query runs.
 *
 * Each statement goes through the portal path of exec_simple_query (parse,
 * analyze and rewrite, plan, CreatePortal, PortalStart, PortalRun with
 * isTopLevel), so VACUUM, REINDEX DATABASE, CREATE INDEX CONCURRENTLY and
 * procedures that COMMIT behave as they do from psql.  Non-atomic SPI is
 * not enough for those (DESIGN.md section 2).
 *
 * Transaction modes:
 *	 autocommit  each statement commits on its own, as psql runs a script;
 *				 BEGIN ... COMMIT in the code groups statements as usual.
 *	 single		 all statements in one implicit transaction, as a multi-
 *				 statement query string sent by a client: all or nothing.
 * The first error stops the step; in autocommit mode what committed before
 * it stays.  A worker in the extension's database records the outcome of
 * a step that succeeded in the step's last transaction (pga_record_in_step).
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xact.h"
#include "commands/trigger.h"
#include "mb/pg_wchar.h"
#include "miscadmin.h"
#include "nodes/parsenodes.h"
#include "parser/analyze.h"
#include "pgstat.h"
#include "tcop/cmdtag.h"
#include "tcop/pquery.h"
#include "tcop/tcopprot.h"
#include "tcop/utility.h"
#include "utils/memutils.h"
#include "utils/portal.h"
#include "utils/ps_status.h"
#include "utils/snapmgr.h"
#include "utils/timeout.h"
#include "utils/timestamp.h"

#include "pgautomator.h"

/* the longest step timeout: 100 years, the SQL API's bound on intervals */
#define PGA_TIMEOUT_MAX_MS	(INT64CONST(36525) * 24 * 3600 * 1000)

static bool pga_xact_started = false;
static MemoryContext pga_step_context = NULL;

/* the step running now, for pga_record_in_step */
static PgaStepOutcome *pga_outcome = NULL;
static PgaTailBuffer *pga_output = NULL;
static PgaBeforeCommit pga_before_commit = NULL;
static void *pga_before_commit_arg = NULL;
static int64 pga_rows_committed = 0;	/* rows of the committed statements */

/*
 * pga_start_xact starts a transaction command unless one is open, like
 * start_xact_command in postgres.c.
 */
static void
pga_start_xact(void)
{
	if (!pga_xact_started)
	{
		StartTransactionCommand();
		pga_xact_started = true;
	}
}

/*
 * pga_finish_xact ends the transaction command, like finish_xact_command:
 * it commits unless an explicit transaction block is open.
 */
static void
pga_finish_xact(void)
{
	if (pga_xact_started)
	{
		CommitTransactionCommand();
		pga_xact_started = false;
	}
}

/*
 * pga_run_statement runs one parsed statement through a portal and adds
 * the rows its command tag counts.
 */
static void
pga_run_statement(RawStmt *parsetree, const char *code, bool implicit_block,
				  PgaTailBuffer *output, int64 *rows)
{
	CommandTag	tag = CreateCommandTag(parsetree->stmt);
	MemoryContext stmt_context;
	MemoryContext old;
	List	   *querytrees;
	List	   *plantrees;
	Portal		portal;
	DestReceiver *receiver;
	QueryCompletion qc;
	bool		snapshot_set = false;
	int16		format = 0;

	set_ps_display(GetCommandTagName(tag));
	SetCurrentStatementStartTimestamp();
	pga_start_xact();
	if (implicit_block)
		BeginImplicitTransactionBlock();
	CHECK_FOR_INTERRUPTS();

	if (analyze_requires_snapshot(parsetree))
	{
		PushActiveSnapshot(GetTransactionSnapshot());
		snapshot_set = true;
	}

	/* outlives the statement's transactions (VACUUM and CALL commit) */
	stmt_context = AllocSetContextCreate(pga_step_context, "pgautomator statement",
										 ALLOCSET_DEFAULT_SIZES);
	old = MemoryContextSwitchTo(stmt_context);
	querytrees = pg_analyze_and_rewrite_fixedparams(parsetree, code, NULL, 0, NULL);
	plantrees = pg_plan_queries(querytrees, code, CURSOR_OPT_PARALLEL_OK, NULL);
	if (snapshot_set)
		PopActiveSnapshot();
	CHECK_FOR_INTERRUPTS();

	portal = CreatePortal("", true, true);
	portal->visible = false;
	PortalDefineQuery(portal, NULL, code, tag, plantrees, NULL);
	PortalStart(portal, NULL, 0, InvalidSnapshot);
	PortalSetResultFormat(portal, 1, &format);
	receiver = pga_output_receiver(output);
	MemoryContextSwitchTo(old);

	(void) PortalRun(portal, FETCH_ALL, true, true, receiver, receiver, &qc);
	receiver->rDestroy(receiver);
	PortalDrop(portal, false);

	if (command_tag_display_rowcount(qc.commandTag))
		*rows += qc.nprocessed;
	MemoryContextDelete(stmt_context);
}

/*
 * pga_may_record_in_step tells whether the transaction of the step's last
 * statement, still open, may also take the step's outcome: one that ran a
 * query or DML statement, or a single-mode block.  Not one that ended its
 * own transactions (VACUUM, CREATE INDEX CONCURRENTLY, CALL of a procedure
 * that commits) or that is transaction control.
 */
static bool
pga_may_record_in_step(RawStmt *parsetree, bool block)
{
	if (pga_before_commit == NULL || !IsTransactionState() || IsTransactionBlock() ||
		IsA(parsetree->stmt, TransactionStmt))
		return false;
	if (block)
		return true;
	switch (nodeTag(parsetree->stmt))
	{
		case T_SelectStmt:
		case T_InsertStmt:
		case T_UpdateStmt:
		case T_DeleteStmt:
		case T_MergeStmt:
			return true;
		default:
			return false;
	}
}

/*
 * pga_record_in_step hands the outcome of the step, which succeeded, to
 * the caller's before_commit: the step's work and its record then commit
 * together, with one WAL flush instead of two.
 */
static void
pga_record_in_step(int64 rows)
{
	MemoryContext old;

	/*
	 * What the commit would run of the step's own code first (deferred
	 * triggers, cursors WITH HOLD to keep), as the commit does: once the
	 * bookkeeping holds its row locks, no user code may run before the
	 * commit, or a stop or a timeout could not reach the step, and the
	 * launcher could wait behind it.
	 */
	for (;;)
	{
		AfterTriggerFireDeferred();
		if (!PreCommit_Portals(false))
			break;
	}
	old = MemoryContextSwitchTo(pga_step_context);
	pga_outcome->succeeded = true;
	pga_outcome->rows = rows;
	pga_outcome->output = pga_output->buf.len > 0 ? pga_tail_finish(pga_output) : NULL;
	pga_outcome->messages = pga_messages_finish();
	pga_outcome->encoding = GetDatabaseEncoding();
	MemoryContextSwitchTo(old);
	pga_outcome->recorded_with_step = pga_before_commit(pga_outcome, pga_before_commit_arg);
}

/*
 * pga_run_code parses the code and runs its statements in the step's
 * transaction mode.
 */
static void
pga_run_code(const PgaStepInput *input, PgaTailBuffer *output, int64 *rows)
{
	List	   *parsetrees;
	ListCell   *lc;
	bool		single;
	MemoryContext old;

	SetCurrentStatementStartTimestamp();
	pga_start_xact();
	old = MemoryContextSwitchTo(pga_step_context);
	parsetrees = pg_parse_query(input->code);
	MemoryContextSwitchTo(old);

	/* one statement needs no block: VACUUM alone works in single mode */
	single = input->single_transaction && list_length(parsetrees) > 1;

	foreach(lc, parsetrees)
	{
		RawStmt    *parsetree = lfirst_node(RawStmt, lc);
		bool		last = (lnext(parsetrees, lc) == NULL);

		pga_run_statement(parsetree, input->code, single, output, rows);

		if (last)
		{
			if (single)
				EndImplicitTransactionBlock();
			if (pga_may_record_in_step(parsetree, single))
				pga_record_in_step(*rows);
			pga_finish_xact();
		}
		else if (!single || IsA(parsetree->stmt, TransactionStmt))
			pga_finish_xact();
		else
			CommandCounterIncrement();
		if (!single && !IsTransactionBlock())
			pga_rows_committed = *rows;
	}
	pga_finish_xact();

	if (IsTransactionOrTransactionBlock())
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_TRANSACTION_TERMINATION),
				 errmsg("the step ended inside a transaction block, which was rolled back"),
				 errhint("End the block with COMMIT.")));
}

/*
 * pga_error_text renders an error as psql would show it: the message, then
 * DETAIL, HINT and CONTEXT lines.
 */
static char *
pga_error_text(ErrorData *edata)
{
	StringInfoData text;

	initStringInfo(&text);
	appendStringInfoString(&text, edata->message ? edata->message : "unknown error");
	if (edata->detail)
		appendStringInfo(&text, "\nDETAIL:  %s", edata->detail);
	if (edata->hint)
		appendStringInfo(&text, "\nHINT:  %s", edata->hint);
	if (edata->context)
		appendStringInfo(&text, "\nCONTEXT:  %s", edata->context);
	return pga_clip_text(text.data, PGA_ERROR_MAX);
}

/*
 * pga_exec_step runs the step's code and fills the outcome (not its
 * messages, which the caller collects); what it allocates lives in a child
 * of the caller's memory context.  A timeout cancels the statement
 * running when it expires, like statement_timeout, but counts for the
 * whole step.
 */
void
pga_exec_step(const PgaStepInput *input, PgaStepOutcome *outcome,
			  PgaBeforeCommit before_commit, void *arg)
{
	MemoryContext step_context = AllocSetContextCreate(CurrentMemoryContext, "pgautomator step",
													   ALLOCSET_DEFAULT_SIZES);
	PgaTailBuffer output;

	pga_step_context = step_context;
	MemoryContextSwitchTo(step_context);
	pga_tail_init(&output, PGA_OUTPUT_MAX);
	pga_outcome = outcome;
	pga_output = &output;
	pga_before_commit = before_commit;
	pga_before_commit_arg = arg;
	outcome->step_run_id = input->step_run_id;
	outcome->recorded_with_step = false;
	outcome->rows = 0;
	pga_rows_committed = 0;
	outcome->error = NULL;
	outcome->sqlstate[0] = '\0';
	debug_query_string = input->code;

	/*
	 * At an instant: enable_timeout_after takes an int of milliseconds, and
	 * a timeout clipped to it (24.8 days) would cancel a longer step early.
	 * (Bounded, as the SQL API bounds timeouts, against an overflow.)
	 */
	if (input->timeout_ms > 0)
		enable_timeout_at(STATEMENT_TIMEOUT,
						  TimestampTzPlusMilliseconds(GetCurrentTimestamp(),
													  Min(input->timeout_ms, PGA_TIMEOUT_MAX_MS)));

	PG_TRY();
	{
		pga_run_code(input, &output, &outcome->rows);
		outcome->succeeded = true;
	}
	PG_CATCH();
	{
		ErrorData  *edata;

		HOLD_INTERRUPTS();
		MemoryContextSwitchTo(step_context);
		edata = CopyErrorData();
		FlushErrorState();
		disable_timeout(STATEMENT_TIMEOUT, false);
		QueryCancelPending = false;
		AbortOutOfAnyTransaction();
		pga_xact_started = false;
		MemoryContextSwitchTo(step_context);
		/* whatever was recorded with the step was rolled back with it */
		outcome->recorded_with_step = false;
		outcome->succeeded = false;
		/*
		 * Only the rows of the statements that committed count (single:
		 * none; autocommit: those before the failing one, or before the
		 * last one when its record failed).
		 */
		outcome->rows = input->single_transaction ? 0 : pga_rows_committed;
		strlcpy(outcome->sqlstate, unpack_sql_state(edata->sqlerrcode), sizeof(outcome->sqlstate));
		outcome->error = pga_error_text(edata);
		RESUME_INTERRUPTS();
	}
	PG_END_TRY();

	/* (a commit leaves TopMemoryContext current: what follows is per step) */
	MemoryContextSwitchTo(step_context);
	disable_timeout(STATEMENT_TIMEOUT, false);
	debug_query_string = NULL;
	pga_before_commit = NULL;
	outcome->output = output.buf.len > 0 ? pga_tail_finish(&output) : NULL;
}

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
 * it stays.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <limits.h>

#include "access/xact.h"
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

#include "pgautomator.h"

static bool pga_xact_started = false;
static MemoryContext pga_step_context = NULL;

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
			pga_finish_xact();
		}
		else if (!single || IsA(parsetree->stmt, TransactionStmt))
			pga_finish_xact();
		else
			CommandCounterIncrement();
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
pga_exec_step(const PgaStepInput *input, PgaStepOutcome *outcome)
{
	MemoryContext step_context = AllocSetContextCreate(CurrentMemoryContext, "pgautomator step",
													   ALLOCSET_DEFAULT_SIZES);
	PgaTailBuffer output;

	pga_step_context = step_context;
	MemoryContextSwitchTo(step_context);
	pga_tail_init(&output, PGA_OUTPUT_MAX);
	outcome->rows = 0;
	outcome->error = NULL;
	outcome->sqlstate[0] = '\0';
	debug_query_string = input->code;

	if (input->timeout_ms > 0)
		enable_timeout_after(STATEMENT_TIMEOUT, (int) Min(input->timeout_ms, INT_MAX));

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
		outcome->succeeded = false;
		/* single: nothing the statements did was kept */
		if (input->single_transaction)
			outcome->rows = 0;
		strlcpy(outcome->sqlstate, unpack_sql_state(edata->sqlerrcode), sizeof(outcome->sqlstate));
		outcome->error = pga_error_text(edata);
		RESUME_INTERRUPTS();
	}
	PG_END_TRY();

	disable_timeout(STATEMENT_TIMEOUT, false);
	debug_query_string = NULL;
	outcome->output = output.buf.len > 0 ? pga_tail_finish(&output) : NULL;
}

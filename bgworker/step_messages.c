/*-------------------------------------------------------------------------
 *
 * step_messages.c
 *	  Capture of what a step says: NOTICE, WARNING and INFO messages, as a
 *	  client would have seen them, and a FATAL error that ends the worker.
 *
 * emit_log_hook only sees messages bound for the server log, so the worker
 * lowers log_min_messages to INFO and the hook keeps the extra messages
 * out of the log again: the server log sees what it saw before.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "utils/elog.h"
#include "utils/guc.h"
#include "utils/memutils.h"

#include "pgautomator.h"

static emit_log_hook_type pga_prev_emit_log_hook = NULL;
static PgaTailBuffer pga_messages;
static int	pga_server_log_min = WARNING;
static bool pga_in_hook = false;
static char pga_fatal_sqlstate[6];
static char *pga_fatal_message = NULL;

/*
 * pga_level_name names a message level as psql prints it.
 */
static const char *
pga_level_name(int elevel)
{
	switch (elevel)
	{
		case INFO:
			return "INFO";
		case NOTICE:
			return "NOTICE";
		default:
			return "WARNING";
	}
}

/*
 * pga_server_logs tells whether the server log wanted the message before
 * the worker lowered log_min_messages (the rule of is_log_level_output).
 */
static bool
pga_server_logs(int elevel)
{
	if (pga_server_log_min == LOG)
		return false;
	return elevel >= pga_server_log_min;
}

/*
 * pga_append_line adds one "LEVEL:  text" line, with DETAIL and HINT.
 */
static void
pga_append_line(ErrorData *edata)
{
	StringInfoData line;
	MemoryContext old = MemoryContextSwitchTo(TopMemoryContext);

	initStringInfo(&line);
	appendStringInfo(&line, "%s:  %s\n", pga_level_name(edata->elevel),
					 edata->message ? edata->message : "");
	if (edata->detail)
		appendStringInfo(&line, "DETAIL:  %s\n", edata->detail);
	if (edata->hint)
		appendStringInfo(&line, "HINT:  %s\n", edata->hint);
	pga_tail_append(&pga_messages, line.data, line.len);
	pfree(line.data);
	MemoryContextSwitchTo(old);
}

/*
 * pga_messages_hook keeps client-level messages and the last FATAL error.
 */
static void
pga_messages_hook(ErrorData *edata)
{
	if (!pga_in_hook)
	{
		pga_in_hook = true;
		if (edata->elevel >= FATAL)
		{
			strlcpy(pga_fatal_sqlstate, unpack_sql_state(edata->sqlerrcode),
					sizeof(pga_fatal_sqlstate));
			if (pga_fatal_message)
				pfree(pga_fatal_message);
			pga_fatal_message = MemoryContextStrdup(TopMemoryContext,
													edata->message ? edata->message : "");
		}
		else if (edata->elevel >= INFO && edata->elevel < ERROR &&
				 (edata->elevel == INFO || edata->elevel >= client_min_messages))
		{
			pga_append_line(edata);
			if (!pga_server_logs(edata->elevel))
				edata->output_to_server = false;
		}
		pga_in_hook = false;
	}
	if (pga_prev_emit_log_hook)
		pga_prev_emit_log_hook(edata);
}

/*
 * pga_messages_start installs the hook; from now on a FATAL error is kept.
 */
void
pga_messages_start(void)
{
	MemoryContext old = MemoryContextSwitchTo(TopMemoryContext);

	pga_tail_init(&pga_messages, PGA_MESSAGES_MAX);
	MemoryContextSwitchTo(old);
	pga_prev_emit_log_hook = emit_log_hook;
	emit_log_hook = pga_messages_hook;
}

/*
 * pga_messages_raise_level lets INFO and NOTICE messages reach the hook;
 * called once connected, after the role's and database's own settings.
 */
void
pga_messages_raise_level(void)
{
	pga_server_log_min = log_min_messages;
	if (log_min_messages == LOG || log_min_messages > INFO)
		SetConfigOption("log_min_messages", "info", PGC_SUSET, PGC_S_OVERRIDE);
}

/*
 * pga_messages_reset forgets the messages of the previous step.
 */
void
pga_messages_reset(void)
{
	resetStringInfo(&pga_messages.buf);
	pga_messages.truncated = false;
	pga_messages.cut_chars = 0;
}

/*
 * pga_messages_finish returns the captured messages (NULL when none).
 */
char *
pga_messages_finish(void)
{
	if (pga_messages.buf.data == NULL || pga_messages.buf.len == 0)
		return NULL;
	return pga_tail_finish(&pga_messages);
}

/*
 * pga_messages_last_fatal returns the FATAL error seen, if any.
 */
bool
pga_messages_last_fatal(char *sqlstate, char **message)
{
	if (pga_fatal_message == NULL)
		return false;
	strlcpy(sqlstate, pga_fatal_sqlstate, 6);
	*message = pga_fatal_message;
	return true;
}

/*-------------------------------------------------------------------------
 *
 * launcher_calls.c
 *	  The launcher's calls of the dispatcher's SQL functions (the contract in
 *	  docs/contracts.md, "Dispatcher and run state machine").
 *
 * Each call runs in the caller's (sub)transaction through SPI with a fresh
 * snapshot; results are copied into the caller's memory context.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/pg_type_d.h"
#include "commands/dbcommands.h"
#include "executor/spi.h"
#include "mb/pg_wchar.h"
#include "miscadmin.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"

#include "pgautomator.h"

/*
 * pga_spi_run executes one statement with arguments; the caller reads
 * SPI_tuptable and then calls pga_spi_done.
 */
void
pga_spi_run(const char *sql, int nargs, Oid *types, Datum *values, const char *nulls)
{
	int			rc;

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	PushActiveSnapshot(GetTransactionSnapshot());
	rc = SPI_execute_with_args(sql, nargs, types, values, nulls, false, 0);
	if (rc != SPI_OK_SELECT)
		elog(ERROR, "\"%s\" returned SPI code %d", sql, rc);
}

/*
 * pga_spi_done ends what pga_spi_run began.
 */
void
pga_spi_done(void)
{
	PopActiveSnapshot();
	SPI_finish();
}

/*
 * pga_extension_ready tells whether the extension and the launcher's
 * functions exist in this database; has_release and has_spares whether the
 * optional _launcher_release and _launcher_sessions_due exist,
 * extension_oid which installation it is (a dropped and re-created
 * extension needs _launcher_start again).
 */
bool
pga_extension_ready(bool *has_release, bool *has_spares, Oid *extension_oid)
{
	bool		ready;
	bool		isnull;
	Datum		oid;

	/* by name: the dispatcher may add parameters with defaults */
	pga_spi_run("SELECT EXISTS (SELECT FROM pg_catalog.pg_extension WHERE extname = 'pgautomator')"
				"   AND pg_catalog.count(DISTINCT p.proname) FILTER (WHERE p.proname NOT IN"
				" ('_launcher_release', '_launcher_sessions_due')) = 6,"
				" pg_catalog.count(*) FILTER (WHERE p.proname = '_launcher_release') > 0,"
				" pg_catalog.count(*) FILTER (WHERE p.proname = '_launcher_sessions_due') > 0,"
				" (SELECT e.oid FROM pg_catalog.pg_extension e WHERE e.extname = 'pgautomator')"
				" FROM pg_catalog.pg_proc p JOIN pg_catalog.pg_namespace n ON n.oid = p.pronamespace"
				" WHERE n.nspname = 'pgautomator' AND p.proname IN ('_launcher_start', '_launcher_tick',"
				" '_launcher_claim', '_launcher_started', '_launcher_report', '_launcher_release',"
				" '_launcher_prefire', '_launcher_sessions_due')",
				0, NULL, NULL, NULL);
	ready = DatumGetBool(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
	*has_release = DatumGetBool(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2, &isnull));
	*has_spares = DatumGetBool(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 3, &isnull));
	oid = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 4, &isnull);
	*extension_oid = isnull ? InvalidOid : DatumGetObjectId(oid);
	pga_spi_done();
	return ready;
}

/*
 * pga_call_start registers the launcher as the database agent and crashes
 * what an earlier launcher left running; returns the agent id.
 */
int64
pga_call_start(void)
{
	Oid			types[1] = {INT4OID};
	Datum		values[1] = {Int32GetDatum(MyProcPid)};
	bool		isnull;
	int64		agent_id;

	pga_spi_run("SELECT pgautomator._launcher_start($1)", 1, types, values, NULL);
	agent_id = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
	pga_spi_done();
	return isnull ? 0 : agent_id;
}

/*
 * pga_call_tick runs one dispatcher pass; returns when the next thing is
 * due (0: nothing scheduled).
 */
TimestampTz
pga_call_tick(void)
{
	bool		isnull;
	TimestampTz next;

	pga_spi_run("SELECT pgautomator._launcher_tick()", 0, NULL, NULL, NULL);
	next = DatumGetTimestampTz(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
	pga_spi_done();
	return isnull ? 0 : next;
}

/*
 * pga_call_prefire fires ahead what is due by the instant at; returns how
 * many (job, schedule) pairs were due, and in *all_fired whether none due
 * by then is left (the preparation may run out of time, or skip a pair
 * someone holds).
 */
int
pga_call_prefire(TimestampTz at, bool *all_fired)
{
	Oid			types[1] = {TIMESTAMPTZOID};
	Datum		values[1] = {TimestampTzGetDatum(at)};
	bool		isnull;
	int			due;

	pga_spi_run("SELECT pgautomator._launcher_prefire($1)", 1, types, values, NULL);
	due = DatumGetInt32(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
	pga_spi_done();
	if (isnull)
		due = 0;
	/* (a statement of its own: it must see what the preparation fired) */
	pga_spi_run("SELECT NOT EXISTS (SELECT FROM pgautomator.job_schedule js"
				" WHERE js.next_fire_at OPERATOR(pg_catalog.<=) $1)", 1, types, values, NULL);
	*all_fired = DatumGetBool(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
	pga_spi_done();
	return due;
}

/*
 * pga_read_local_step fills step from a pgautomator.local_step row read
 * through SPI (columns in its order); the code is allocated in context.
 */
void
pga_read_local_step(HeapTuple tuple, TupleDesc desc, PgaStepInput *step, MemoryContext context)
{
	bool		isnull;
	Datum		d;

	memset(step, 0, sizeof(PgaStepInput));
	step->step_run_id = DatumGetInt64(SPI_getbinval(tuple, desc, 1, &isnull));
	d = SPI_getbinval(tuple, desc, 2, &isnull);
	strlcpy(step->database, isnull ? get_database_name(MyDatabaseId) : NameStr(*DatumGetName(d)),
			NAMEDATALEN);
	d = SPI_getbinval(tuple, desc, 3, &isnull);
	strlcpy(step->run_as, isnull ? "" : NameStr(*DatumGetName(d)), NAMEDATALEN);
	d = SPI_getbinval(tuple, desc, 4, &isnull);
	step->code = MemoryContextStrdup(context, isnull ? "" : TextDatumGetCString(d));
	d = SPI_getbinval(tuple, desc, 5, &isnull);
	step->single_transaction = !isnull && strcmp(TextDatumGetCString(d), "single") == 0;
	d = SPI_getbinval(tuple, desc, 6, &isnull);
	step->timeout_ms = isnull ? 0 : Max(DatumGetInt64(d), 0);
}

/*
 * pga_call_claim claims up to max_steps ready sql step runs, as of the
 * instant at (0: now); the result is allocated in the memory context
 * current at the call.
 */
PgaClaimed
pga_call_claim(int max_steps, TimestampTz at)
{
	MemoryContext caller = CurrentMemoryContext;
	Oid			types[2] = {INT4OID, TIMESTAMPTZOID};
	Datum		values[2] = {Int32GetDatum(max_steps), TimestampTzGetDatum(at)};
	char		nulls[3] = {' ', at == 0 ? 'n' : ' ', '\0'};
	PgaClaimed	claimed = {0, NULL};
	uint64		i;

	pga_spi_run("SELECT step_run_id, database, run_as, code, transaction, timeout_ms"
				" FROM pgautomator._launcher_claim($1, $2)", 2, types, values, nulls);
	claimed.count = (int) SPI_processed;
	claimed.steps = MemoryContextAllocZero(caller, sizeof(PgaStepInput) * Max(claimed.count, 1));
	for (i = 0; i < SPI_processed; i++)
		pga_read_local_step(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, &claimed.steps[i], caller);
	pga_spi_done();
	return claimed;
}

/*
 * pga_call_sessions_due returns, for the steps due by the instant at, how
 * many each database and run-as role will run (most first); allocated in
 * the memory context current at the call.
 */
PgaSessions
pga_call_sessions_due(TimestampTz at)
{
	MemoryContext caller = CurrentMemoryContext;
	Oid			types[1] = {TIMESTAMPTZOID};
	Datum		values[1] = {TimestampTzGetDatum(at)};
	PgaSessions sessions = {0, NULL};
	uint64		i;

	pga_spi_run("SELECT database, run_as, steps FROM pgautomator._launcher_sessions_due($1)",
				1, types, values, NULL);
	sessions.count = (int) SPI_processed;
	sessions.items = MemoryContextAllocZero(caller, sizeof(PgaSession) * Max(sessions.count, 1));
	for (i = 0; i < SPI_processed; i++)
	{
		HeapTuple	tuple = SPI_tuptable->vals[i];
		TupleDesc	desc = SPI_tuptable->tupdesc;
		PgaSession *session = &sessions.items[i];
		bool		isnull;
		Datum		d;

		d = SPI_getbinval(tuple, desc, 1, &isnull);
		strlcpy(session->database, isnull ? "" : NameStr(*DatumGetName(d)), NAMEDATALEN);
		d = SPI_getbinval(tuple, desc, 2, &isnull);
		strlcpy(session->run_as, isnull ? "" : NameStr(*DatumGetName(d)), NAMEDATALEN);
		d = SPI_getbinval(tuple, desc, 3, &isnull);
		session->steps = isnull ? 0 : DatumGetInt32(d);
	}
	pga_spi_done();
	return sessions;
}

/*
 * pga_call_started records the pid of the worker running a step run (0:
 * none, recorded as NULL).
 */
void
pga_call_started(int64 step_run_id, int pid)
{
	Oid			types[2] = {INT8OID, INT4OID};
	Datum		values[2] = {Int64GetDatum(step_run_id), Int32GetDatum(pid)};
	char		nulls[3] = {' ', pid == 0 ? 'n' : ' ', '\0'};

	pga_spi_run("SELECT pgautomator._launcher_started($1, $2)", 2, types, values, nulls);
	pga_spi_done();
}

/*
 * pga_server_text turns a worker's text into valid text of this database:
 * converted from the step database's encoding when they differ, bytes that
 * still do not fit replaced by '?'.
 */
char *
pga_server_text(const char *text, int encoding)
{
	char	   *result;
	int			len;
	int			pos = 0;

	if (text == NULL)
		return NULL;
	result = (char *) text;
	if (encoding != GetDatabaseEncoding() && encoding != PG_SQL_ASCII &&
		GetDatabaseEncoding() != PG_SQL_ASCII && PG_VALID_ENCODING(encoding))
	{
		PG_TRY();
		{
			result = (char *) pg_do_encoding_conversion((unsigned char *) text, strlen(text),
														encoding, GetDatabaseEncoding());
		}
		PG_CATCH();
		{
			FlushErrorState();
			result = (char *) text;
		}
		PG_END_TRY();
	}
	result = pstrdup(result);
	len = strlen(result);
	while (pos < len)
	{
		int			ok = pg_encoding_verifymbstr(GetDatabaseEncoding(), result + pos, len - pos);

		pos += ok;
		if (pos < len)
			result[pos++] = '?';
	}
	return result;
}

/*
 * pga_text_datum makes a text argument of a worker's text, or marks it
 * NULL.
 */
Datum
pga_text_datum(const char *text, int encoding, char *null)
{
	char	   *s = pga_server_text(text, encoding);

	*null = s == NULL ? 'n' : ' ';
	return s == NULL ? (Datum) 0 : CStringGetTextDatum(s);
}

/*
 * pga_call_report records the outcome of a step run and advances its run.
 */
void
pga_call_report(int64 step_run_id, const PgaStepOutcome *outcome)
{
	Oid			types[7] = {INT8OID, BOOLOID, TEXTOID, TEXTOID, TEXTOID, INT8OID, TEXTOID};
	Datum		values[7];
	char		nulls[8] = "       ";

	values[0] = Int64GetDatum(step_run_id);
	values[1] = BoolGetDatum(outcome->succeeded);
	values[2] = pga_text_datum(outcome->sqlstate[0] ? outcome->sqlstate : NULL,
							   PG_SQL_ASCII, &nulls[2]);
	values[3] = pga_text_datum(outcome->error, outcome->encoding, &nulls[3]);
	values[4] = pga_text_datum(outcome->messages, outcome->encoding, &nulls[4]);
	values[5] = Int64GetDatum(outcome->rows);
	values[6] = pga_text_datum(outcome->output, outcome->encoding, &nulls[6]);
	pga_spi_run("SELECT pgautomator._launcher_report($1, $2, $3, $4, $5, $6, $7)",
				7, types, values, nulls);
	pga_spi_done();
}

/*
 * pga_call_release gives back a claimed step run whose worker could not be
 * started, so a later claim takes it again.
 */
void
pga_call_release(int64 step_run_id)
{
	Oid			types[1] = {INT8OID};
	Datum		values[1] = {Int64GetDatum(step_run_id)};

	pga_spi_run("SELECT pgautomator._launcher_release($1)", 1, types, values, NULL);
	pga_spi_done();
}

/*
 * pga_call_handout_stale marks in stale[] which of the step runs ids[0..n)
 * waiting in the hand-out queue no worker is to take any more
 * (_launcher_handout_stale).
 */
void
pga_call_handout_stale(const int64 *ids, int n, bool *stale)
{
	Oid			types[1] = {INT8ARRAYOID};
	Datum	   *elems = palloc(sizeof(Datum) * Max(n, 1));
	Datum		values[1];
	uint64		i;
	int			k;

	for (k = 0; k < n; k++)
	{
		elems[k] = Int64GetDatum(ids[k]);
		stale[k] = false;
	}
	values[0] = PointerGetDatum(construct_array(elems, n, INT8OID, sizeof(int64), FLOAT8PASSBYVAL,
												TYPALIGN_DOUBLE));
	pga_spi_run("SELECT pgautomator._launcher_handout_stale($1)", 1, types, values, NULL);
	for (i = 0; i < SPI_processed; i++)
	{
		bool		isnull;
		int64		id = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 1, &isnull));

		for (k = 0; k < n; k++)
			if (ids[k] == id)
				stale[k] = true;
	}
	pga_spi_done();
	pfree(elems);
}

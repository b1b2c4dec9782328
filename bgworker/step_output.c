/*-------------------------------------------------------------------------
 *
 * step_output.c
 *	  The destination of the rows a step's statements return.
 *
 * Rows become lines of text, columns separated by '|' and NULL shown as
 * nothing (psql's unaligned, tuples-only format), kept in a bounded
 * buffer that keeps the tail.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/tupdesc.h"
#include "executor/tuptable.h"
#include "fmgr.h"
#include "tcop/dest.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"

#include "pgautomator.h"

typedef struct PgaOutputReceiver
{
	DestReceiver pub;
	PgaTailBuffer *output;
	MemoryContext context;		/* lives as long as the receiver */
	MemoryContext row_context;	/* reset for each row */
	int			natts;
	FmgrInfo   *out_funcs;
} PgaOutputReceiver;

/*
 * pga_output_startup looks up the output function of each column.
 */
static void
pga_output_startup(DestReceiver *self, int operation, TupleDesc typeinfo)
{
	PgaOutputReceiver *r = (PgaOutputReceiver *) self;
	MemoryContext old = MemoryContextSwitchTo(r->context);
	int			i;

	r->natts = typeinfo->natts;
	r->out_funcs = palloc0(sizeof(FmgrInfo) * Max(r->natts, 1));
	for (i = 0; i < r->natts; i++)
	{
		Form_pg_attribute att = TupleDescAttr(typeinfo, i);
		Oid			typoutput;
		bool		typisvarlena;

		if (att->attisdropped)
			continue;
		getTypeOutputInfo(att->atttypid, &typoutput, &typisvarlena);
		fmgr_info(typoutput, &r->out_funcs[i]);
	}
	MemoryContextSwitchTo(old);
}

/*
 * pga_output_receive appends one row as a line of text.
 */
static bool
pga_output_receive(TupleTableSlot *slot, DestReceiver *self)
{
	PgaOutputReceiver *r = (PgaOutputReceiver *) self;
	MemoryContext old = MemoryContextSwitchTo(r->row_context);
	StringInfoData line;
	bool		first = true;
	int			i;

	slot_getallattrs(slot);
	initStringInfo(&line);
	for (i = 0; i < r->natts; i++)
	{
		if (TupleDescAttr(slot->tts_tupleDescriptor, i)->attisdropped)
			continue;
		if (!first)
			appendStringInfoChar(&line, '|');
		first = false;
		if (!slot->tts_isnull[i])
			appendStringInfoString(&line,
								   OutputFunctionCall(&r->out_funcs[i], slot->tts_values[i]));
	}
	appendStringInfoChar(&line, '\n');
	pga_tail_append(r->output, line.data, line.len);
	MemoryContextSwitchTo(old);
	MemoryContextReset(r->row_context);
	return true;
}

/*
 * pga_output_shutdown forgets the column functions of the last statement.
 */
static void
pga_output_shutdown(DestReceiver *self)
{
	PgaOutputReceiver *r = (PgaOutputReceiver *) self;

	if (r->out_funcs)
		pfree(r->out_funcs);
	r->out_funcs = NULL;
	r->natts = 0;
}

/*
 * pga_output_destroy frees the receiver.
 */
static void
pga_output_destroy(DestReceiver *self)
{
	PgaOutputReceiver *r = (PgaOutputReceiver *) self;

	MemoryContextDelete(r->context);
}

/*
 * pga_output_receiver returns a receiver that appends rows to output; it
 * lives in a child of the current memory context, which must outlast the
 * transactions of the statement (VACUUM and procedures commit).
 */
DestReceiver *
pga_output_receiver(PgaTailBuffer *output)
{
	MemoryContext context = AllocSetContextCreate(CurrentMemoryContext,
												  "pgautomator step output",
												  ALLOCSET_SMALL_SIZES);
	PgaOutputReceiver *r = MemoryContextAllocZero(context, sizeof(PgaOutputReceiver));

	r->pub.receiveSlot = pga_output_receive;
	r->pub.rStartup = pga_output_startup;
	r->pub.rShutdown = pga_output_shutdown;
	r->pub.rDestroy = pga_output_destroy;
	r->pub.mydest = DestNone;
	r->output = output;
	r->context = context;
	r->row_context = AllocSetContextCreate(context, "pgautomator step row",
										   ALLOCSET_DEFAULT_SIZES);
	return (DestReceiver *) r;
}

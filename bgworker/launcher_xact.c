/*-------------------------------------------------------------------------
 *
 * launcher_xact.c
 *	  Subtransactions that keep one failing call from undoing the others.
 *
 * A dispatcher pass commits once; each call in it (a report, a tick, a
 * claim) runs in its own subtransaction, so an error is logged, that call
 * rolled back, and the rest of the pass still commits.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/xact.h"
#include "postmaster/bgworker.h"
#include "utils/memutils.h"
#include "utils/resowner.h"

#include "pgautomator.h"

/*
 * pga_process_name is what this background worker's messages start with:
 * the launcher's and the mailer's share these helpers.
 */
static const char *
pga_process_name(void)
{
	return MyBgworkerEntry ? MyBgworkerEntry->bgw_type : "pgautomator";
}

/*
 * pga_subxact runs fn(arg) in a subtransaction, in the caller's memory
 * context; on error it logs a WARNING naming what failed and returns false.
 */
bool
pga_subxact(void (*fn) (void *), void *arg, const char *what)
{
	MemoryContext caller_context = CurrentMemoryContext;
	ResourceOwner caller_owner = CurrentResourceOwner;
	bool		ok = true;

	BeginInternalSubTransaction(NULL);
	MemoryContextSwitchTo(caller_context);
	PG_TRY();
	{
		fn(arg);
		ReleaseCurrentSubTransaction();
	}
	PG_CATCH();
	{
		ErrorData  *edata;

		MemoryContextSwitchTo(caller_context);
		edata = CopyErrorData();
		FlushErrorState();
		RollbackAndReleaseCurrentSubTransaction();
		ereport(WARNING,
				(errcode(edata->sqlerrcode),
				 errmsg("%s: %s failed: %s", pga_process_name(), what, edata->message),
				 edata->detail ? errdetail_internal("%s", edata->detail) : 0,
				 edata->context ? errcontext("%s", edata->context) : 0));
		FreeErrorData(edata);
		ok = false;
	}
	PG_END_TRY();
	MemoryContextSwitchTo(caller_context);
	CurrentResourceOwner = caller_owner;
	return ok;
}

/*
 * pga_log_caught logs, as a WARNING naming what failed, the error caught
 * outside a transaction (in a PG_CATCH block), and clears it.
 */
void
pga_log_caught(const char *what)
{
	ErrorData  *edata;

	MemoryContextSwitchTo(TopMemoryContext);
	edata = CopyErrorData();
	FlushErrorState();
	ereport(WARNING,
			(errcode(edata->sqlerrcode),
			 errmsg("%s: %s failed: %s", pga_process_name(), what, edata->message)));
	FreeErrorData(edata);
}

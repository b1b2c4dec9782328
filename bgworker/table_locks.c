/*-------------------------------------------------------------------------
 *
 * table_locks.c
 *	  Locks, first thing in a bookkeeping transaction, the tables it reads
 *	  and then writes.
 *
 * A REINDEX (not CONCURRENTLY) of a table holds it in SHARE mode and locks
 * its indexes one by one, each until it commits.  A transaction that read
 * the table through an index and then writes it closes a cycle with it:
 * the write waits for the table, the REINDEX for the index the read holds.
 * REINDEX DATABASE of pgautomator's database, a maintenance step users
 * schedule, reaches all of its tables, and the deadlock then failed the
 * REINDEX or the steps whose bookkeeping it hit.  ROW EXCLUSIVE, which a
 * SHARE lock waits for, on those tables from the start makes a REINDEX
 * wait for the transaction instead, and the transaction wait for a REINDEX
 * under way, as its first write would have (REINDEX DATABASE and SCHEMA
 * commit after each table, so they hold no other table's lock).  Tables a
 * transaction only reads are left alone: a REINDEX waiting for someone
 * else's lock on one would otherwise hold the scheduler up.  Within a
 * step's own transaction the step may have read them before (a step that
 * reads pgautomator's views): its lock is then an upgrade, as before.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "catalog/namespace.h"
#include "nodes/makefuncs.h"
#include "storage/lmgr.h"

#include "pgautomator.h"

/*
 * pga_lock_tables takes ROW EXCLUSIVE on the given tables of the
 * pgautomator schema, those that exist.  Inside a transaction.
 */
void
pga_lock_tables(const char *const *tables, int count)
{
	int			i;

	for (i = 0; i < count; i++)
	{
		RangeVar   *table = makeRangeVar("pgautomator", unconstify(char *, tables[i]), -1);

		(void) RangeVarGetRelidExtended(table, RowExclusiveLock, RVR_MISSING_OK, NULL, NULL);
	}
}

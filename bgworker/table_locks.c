/*-------------------------------------------------------------------------
 *
 * table_locks.c
 *	  Locks, first thing in a bookkeeping transaction, the tables it uses.
 *
 * A REINDEX (not CONCURRENTLY) of a table holds it in SHARE mode and locks
 * its indexes one by one, each until it commits.  A transaction that reads
 * the table through an index and then writes it, or reads it through a
 * second index, closes a cycle with it: the write waits for the table, or
 * the read for an index the REINDEX already holds, while the REINDEX waits
 * for the index the first read holds.  REINDEX DATABASE of pgautomator's
 * database, a maintenance step users schedule, reaches all of its tables,
 * and the deadlock then fails the REINDEX or the steps whose bookkeeping
 * it hit.  ROW EXCLUSIVE, the weakest mode a SHARE lock waits for, on the
 * tables from the start makes a REINDEX wait for the transaction instead,
 * and the transaction wait for a REINDEX under way (REINDEX DATABASE and
 * SCHEMA commit after each table, so they hold no other table's lock).
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
		(void) RangeVarGetRelidExtended(makeRangeVar("pgautomator", unconstify(char *, tables[i]), -1),
										RowExclusiveLock, RVR_MISSING_OK, NULL, NULL);
}

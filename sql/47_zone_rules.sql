-- Time zone rules change: a country moves or drops its daylight-saving
-- dates, and a tzdata update brings the new rules while the server runs.
-- The engine notices a changed zone file in every session (45_schedule_
-- engine.sql), but the next fire instants already stored in job_schedule
-- were computed with the old rules.  So the rules each zone's instants were
-- computed with are recorded (zone_rules, when a schedule is created or
-- changed), and the launcher compares them with the zone files at its
-- first pass and then once a minute (_launcher_tick), recomputing the
-- instants still to come of a zone whose rules changed; admins can ask for
-- it at once (check_time_zone_rules).
--
-- What is recomputed: links whose next instant lies ahead (a due or late
-- one fires as computed, under the misfire policy), as the first instant
-- after the last fire or after now, whichever is later.  An occurrence that
-- the new rules move from ahead to before now (between the update and the
-- check, at most a minute) is not fired.  The links are locked first, so
-- that what a concurrent transaction changed (computed with either rules)
-- is recomputed too; the check never waits long for them: the launcher's
-- pass must go on, and tries again a minute later.  (A link that a
-- transaction still open adds, computed before the update, is not seen;
-- its instant was computed milliseconds before the file changed.)
--
-- A zone whose file goes away (a zone moved to another package) or breaks
-- keeps firing by the rules recorded here: the engine reads them when it
-- finds no usable file, the check warns once per session and leaves the
-- zone as it was recorded, and saving a schedule in it says so (NOTICE).

CREATE FUNCTION pgautomator._zone_seen(p_zone text)
RETURNS void LANGUAGE plpython3u
SET search_path = pg_catalog, pg_temp
AS $python$
import hashlib

if 'zone_parses' not in GD.get('pgautomator_engine', {}):
    plpy.execute('SELECT pgautomator._instants(NULL, NULL, NULL)')    # (the engine lives there)
E = GD['pgautomator_engine']
rules = E['zone_contents'](p_zone)
if rules is None or not E['zone_parses'](rules):
    # no usable file here: the engine used the rules recorded before
    plpy.notice('time zone "%s" has no usable tzdata file on this server' % p_zone,
                detail='Its schedules fire by the rules recorded when a schedule first used it.',
                hint='Install the zone again (on Debian, tzdata-legacy holds the old names).')
    return
if 'zone_seen_plan' not in SD:
    SD['zone_seen_plan'] = plpy.prepare(
        'INSERT INTO pgautomator.zone_rules (zone, fingerprint, rules) VALUES ($1, $2, $3)'
        ' ON CONFLICT (zone) DO NOTHING', ['text', 'text', 'bytea'])
# (a zone already recorded keeps its rules: if they changed and were not
# checked yet, the check recomputes all its links, this one too)
plpy.execute(SD['zone_seen_plan'], [p_zone, hashlib.sha256(rules).hexdigest(), rules])
$python$;
COMMENT ON FUNCTION pgautomator._zone_seen(text) IS 'Records the tzdata rules of a time zone a schedule uses, the first time it is used (see _zone_rules_check).';

CREATE FUNCTION pgautomator._zone_rules_check(p_all boolean DEFAULT false)
RETURNS TABLE (zone text, links integer) LANGUAGE plpython3u
SET lock_timeout = '200ms'          -- see above: a held link makes it fail, not wait
SET search_path = pg_catalog, pg_temp
AS $python$
import hashlib

if 'zone_parses' not in GD.get('pgautomator_engine', {}):
    plpy.execute('SELECT pgautomator._instants(NULL, NULL, NULL)')    # (the engine lives there)
E = GD['pgautomator_engine']
if 'zone_rules_plans' not in SD:
    SD['zone_rules_plans'] = (
        plpy.prepare('SELECT z.zone, z.fingerprint FROM pgautomator.zone_rules z ORDER BY z.zone'),
        # (only for a zone without a file: schedule has no index on timezone)
        plpy.prepare('SELECT EXISTS (SELECT FROM pgautomator.schedule s WHERE s.timezone = $1) AS used', ['text']),
        # (re-checked on the latest row once locked: of two sessions that
        # both saw the change, only the first recomputes)
        plpy.prepare('UPDATE pgautomator.zone_rules z SET fingerprint = $2, rules = $3, seen_at = pg_catalog.now()'
                     ' WHERE z.zone = $1 AND (z.fingerprint <> $2 OR $4) RETURNING 1',
                     ['text', 'text', 'bytea', 'boolean']),
        plpy.prepare('SELECT FROM pgautomator.job_schedule js JOIN pgautomator.schedule s ON s.id = js.schedule_id'
                     ' WHERE s.timezone = $1 AND js.next_fire_at > pg_catalog.now()'
                     "   AND js.next_fire_at < 'infinity'"
                     ' ORDER BY js.job_id, js.schedule_id FOR UPDATE OF js', ['text']),
        plpy.prepare('''
            WITH links AS (
                SELECT js.job_id, js.schedule_id, greatest(pg_catalog.now(), js.last_fire_at) AS after
                  FROM pgautomator.job_schedule js
                  JOIN pgautomator.schedule s ON s.id = js.schedule_id
                 WHERE s.timezone = $1 AND js.next_fire_at > pg_catalog.now() AND js.next_fire_at < 'infinity'
            ), nxt AS MATERIALIZED (   -- once per schedule and instant, not per link
                SELECT k.schedule_id, k.after, pgautomator._next_fire(k.schedule_id, k.after) AS at
                  FROM (SELECT DISTINCT l.schedule_id, l.after FROM links l) k
            )
            UPDATE pgautomator.job_schedule js SET next_fire_at = n.at
              FROM links l JOIN nxt n ON n.schedule_id = l.schedule_id AND n.after = l.after
             WHERE js.job_id = l.job_id AND js.schedule_id = l.schedule_id
            RETURNING 1''', ['text']))
recorded, in_use, record, lock_links, recompute = SD['zone_rules_plans']

# The table is read, then written: locked first as the launcher's other
# tables are (a REINDEX between the two would close a cycle).
plpy.execute('LOCK TABLE pgautomator.zone_rules IN ROW EXCLUSIVE MODE')
changed = []
warned = SD.setdefault('warned', set())     # (a zone without its file: once per session)
for row in plpy.execute(recorded):
    name = row['zone']
    rules = E['zone_contents'](name)
    if rules is None or not E['zone_parses'](rules):
        if name not in warned and plpy.execute(in_use, [name])[0]['used']:
            warned.add(name)
            plpy.warning('pgautomator: the file of time zone "%s" cannot be read' % name,
                         detail='Its schedules fire by the rules recorded when they were saved.',
                         hint='Install the zone again (on Debian, tzdata-legacy holds the old names).')
        continue
    warned.discard(name)
    fingerprint = hashlib.sha256(rules).hexdigest()
    if fingerprint == row['fingerprint'] and not p_all:
        continue
    if plpy.execute(record, [name, fingerprint, rules, p_all]).nrows() == 0:
        continue        # another session recorded them (and recomputed)
    E['forget_zone'](name)
    plpy.execute(lock_links, [name])
    n = plpy.execute(recompute, [name]).nrows()
    if fingerprint != row['fingerprint']:
        plpy.log('pgautomator: the rules of time zone "%s" changed; the next fire instants of %d job-schedule '
                 'links were recomputed' % (name, n))
    changed.append((name, n))
if changed:
    plpy.execute("SELECT pgautomator._wake('schedule')")   # an instant may have moved earlier
return changed
$python$;
COMMENT ON FUNCTION pgautomator._zone_rules_check(boolean) IS 'Compares the tzdata rules of each recorded time zone with those the stored fire instants were computed with (zone_rules) and recomputes the instants still to come of the zones that changed (of all zones with p_all); returns those zones and how many links each.  Fails with 55P03 rather than wait for a link another transaction holds.';

CREATE FUNCTION pgautomator.check_time_zone_rules(all_zones boolean DEFAULT false)
RETURNS TABLE (zone text, links integer) LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    PERFORM pgautomator._require_admin('check time zone rules');
    RETURN QUERY SELECT c.zone, c.links FROM pgautomator._zone_rules_check(coalesce(all_zones, false)) c;
EXCEPTION WHEN lock_not_available THEN
    RAISE EXCEPTION 'another transaction holds what the check needs (a job-schedule link of a zone whose rules changed, or the zone''s record)'
        USING ERRCODE = '55P03', HINT = 'Try again when it has ended.';
END
$$;
COMMENT ON FUNCTION pgautomator.check_time_zone_rules(boolean) IS 'After a tzdata update (admins): recomputes the next fire instants still to come of the schedules whose time zone rules changed (of every zone with all_zones, e.g. after a restore on another machine), at once instead of at the launcher''s next check (once a minute); returns the zones recomputed and how many job-schedule links each.';

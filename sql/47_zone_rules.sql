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
-- after the last fire or after now, whichever is later, so that nothing
-- fired fires again.  An occurrence that the new rules move from ahead to
-- before now (between the update and the check, at most a minute) is not
-- fired.  Concurrent fires win: a link whose next instant changed meanwhile
-- is left as the fire set it.

CREATE FUNCTION pgautomator._zone_seen(p_zone text)
RETURNS void LANGUAGE plpython3u
SET search_path = pg_catalog, pg_temp
AS $python$
if 'pgautomator_engine' not in GD:   # the engine lives in _instants
    plpy.execute('SELECT pgautomator._instants(NULL, NULL, NULL)')
fingerprint = GD['pgautomator_engine']['zone_fingerprint'](p_zone)
if fingerprint is None:
    return                          # no file: the engine has refused the zone already
if 'zone_seen_plan' not in SD:
    SD['zone_seen_plan'] = plpy.prepare(
        'INSERT INTO pgautomator.zone_rules (zone, fingerprint) VALUES ($1, $2) ON CONFLICT (zone) DO NOTHING',
        ['text', 'text'])
# (a zone already recorded keeps its fingerprint: if its rules changed and
# were not checked yet, the check recomputes all its links, this one too)
plpy.execute(SD['zone_seen_plan'], [p_zone, fingerprint])
$python$;
COMMENT ON FUNCTION pgautomator._zone_seen(text) IS 'Records the tzdata rules of a time zone a schedule uses, the first time it is used (see _zone_rules_check).';

CREATE FUNCTION pgautomator._zone_rules_check(p_now timestamptz DEFAULT pg_catalog.now())
RETURNS TABLE (zone text, links integer) LANGUAGE plpython3u
SET search_path = pg_catalog, pg_temp
AS $python$
if 'pgautomator_engine' not in GD:   # the engine lives in _instants
    plpy.execute('SELECT pgautomator._instants(NULL, NULL, NULL)')
E = GD['pgautomator_engine']
if 'zone_rules_plans' not in SD:
    SD['zone_rules_plans'] = (
        plpy.prepare('SELECT z.zone, z.fingerprint FROM pgautomator.zone_rules z ORDER BY z.zone'),
        # (re-checked on the latest row once locked: of two sessions that
        # both saw the change, only the first recomputes)
        plpy.prepare('UPDATE pgautomator.zone_rules z SET fingerprint = $2, seen_at = $3'
                     ' WHERE z.zone = $1 AND z.fingerprint <> $2 RETURNING 1',
                     ['text', 'text', 'timestamptz']),
        plpy.prepare('''
            WITH links AS (
                SELECT js.job_id, js.schedule_id, js.next_fire_at AS old_next,
                       greatest($2, js.last_fire_at) AS after
                  FROM pgautomator.job_schedule js
                  JOIN pgautomator.schedule s ON s.id = js.schedule_id
                 WHERE s.timezone = $1 AND js.next_fire_at > $2 AND js.next_fire_at < 'infinity'
            ), nxt AS MATERIALIZED (   -- once per schedule and instant, not per link
                SELECT k.schedule_id, k.after, pgautomator._next_fire(k.schedule_id, k.after) AS at
                  FROM (SELECT DISTINCT l.schedule_id, l.after FROM links l) k
            )
            UPDATE pgautomator.job_schedule js SET next_fire_at = n.at
              FROM links l JOIN nxt n ON n.schedule_id = l.schedule_id AND n.after = l.after
             WHERE js.job_id = l.job_id AND js.schedule_id = l.schedule_id
               AND js.next_fire_at = l.old_next
            RETURNING 1''', ['text', 'timestamptz']))
recorded, record, recompute = SD['zone_rules_plans']

changed = []
for row in plpy.execute(recorded):
    name = row['zone']
    try:
        fingerprint = E['zone_fingerprint'](name)
    except OSError as e:
        plpy.warning('pgautomator: could not read the rules of time zone "%s": %s' % (name, e))
        continue
    if fingerprint is None or fingerprint == row['fingerprint']:
        continue        # unchanged, or no file here (the engine reports that where it is used)
    if plpy.execute(record, [name, fingerprint, p_now]).nrows() == 0:
        continue        # another session recorded them (and recomputed)
    E['forget_zone'](name)
    n = plpy.execute(recompute, [name, p_now]).nrows()
    plpy.log('pgautomator: the rules of time zone "%s" changed; the next fire instants of %d job-schedule '
             'links were recomputed' % (name, n))
    changed.append((name, n))
return changed
$python$;
COMMENT ON FUNCTION pgautomator._zone_rules_check(timestamptz) IS 'Compares the tzdata rules of each recorded time zone with those the stored fire instants were computed with (zone_rules) and recomputes the instants still to come of the zones that changed; returns those zones and how many links each.';

CREATE FUNCTION pgautomator.check_time_zone_rules()
RETURNS TABLE (zone text, links integer) LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    PERFORM pgautomator._require_admin('check time zone rules');
    RETURN QUERY SELECT c.zone, c.links FROM pgautomator._zone_rules_check() c;
END
$$;
COMMENT ON FUNCTION pgautomator.check_time_zone_rules() IS 'After a tzdata update (admins): recomputes the next fire instants of the schedules whose time zone rules changed, at once instead of at the launcher''s next check (once a minute); returns the zones that changed and how many job-schedule links each.';

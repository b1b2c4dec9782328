-- Schedules for people: next_runs, next_job_runs, describe_schedule and the
-- schedules view.

-- Previews. next_runs shows a schedule's rule whether or not it is enabled;
-- next_job_runs merges a job's enabled schedules.
-- The arguments of the previews (next_runs, next_job_runs): a user calls,
-- names the object, and asks for 0..100000 instants after a finite instant
-- inside the engine's calendar.
CREATE FUNCTION pgautomator._check_preview(p_what text, p_unnamed boolean, p_after timestamptz, p_n integer)
RETURNS void LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    PERFORM pgautomator._require_user();
    IF p_unnamed THEN
        RAISE EXCEPTION '% must not be NULL', p_what USING ERRCODE = '22004';
    END IF;
    IF p_after IS NULL THEN
        RAISE EXCEPTION 'after must not be NULL' USING ERRCODE = '22004';
    END IF;
    IF NOT isfinite(p_after) THEN
        RAISE EXCEPTION 'after must be a finite instant, not %', p_after USING ERRCODE = '22023';
    END IF;
    IF p_after > '9000-01-01 00:00+00' THEN     -- (as starts_at: the engine's calendar ends in 9999)
        RAISE EXCEPTION 'after must be before 9000-01-01, not %', p_after USING ERRCODE = '22023';
    END IF;
    IF p_n IS NULL THEN
        RAISE EXCEPTION 'n must not be NULL' USING ERRCODE = '22004';
    END IF;
    PERFORM pgautomator._check_range('n', p_n, 0, 100000);
END
$$;
COMMENT ON FUNCTION pgautomator._check_preview(text, boolean, timestamptz, integer) IS 'Checks the arguments of next_runs and next_job_runs: 22004 for NULLs, 22023 naming a bad after or n.';

CREATE FUNCTION pgautomator._next_runs(p_id bigint, p_name text, p_after timestamptz, p_n integer)
RETURNS SETOF timestamptz LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_id bigint := p_id;
BEGIN
    PERFORM pgautomator._check_preview('schedule', p_id IS NULL AND p_name IS NULL, p_after, p_n);
    IF p_name IS NOT NULL THEN
        SELECT s.id INTO v_id FROM pgautomator.schedule s WHERE s.name = p_name;
    END IF;
    IF v_id IS NULL OR NOT EXISTS (SELECT FROM pgautomator.schedule s WHERE s.id = v_id) THEN
        RAISE EXCEPTION 'schedule "%" does not exist', coalesce(p_name, p_id::text, 'NULL') USING ERRCODE = '42704';
    END IF;
    RETURN QUERY SELECT pgautomator._fire_times(v_id, p_after, p_n);
END
$$;
COMMENT ON FUNCTION pgautomator._next_runs(bigint, text, timestamptz, integer) IS 'The next n fire instants of a schedule after an instant (checks arguments).';

CREATE FUNCTION pgautomator.next_runs(schedule bigint, after timestamptz DEFAULT pg_catalog.now(), n integer DEFAULT 10)
RETURNS SETOF timestamptz LANGUAGE sql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$ SELECT pgautomator._next_runs($1, NULL, $2, $3) $$;
COMMENT ON FUNCTION pgautomator.next_runs(bigint, timestamptz, integer) IS 'The next n fire instants of a schedule (by id) strictly after an instant, whether or not it is enabled.';

CREATE FUNCTION pgautomator.next_runs(schedule text, after timestamptz DEFAULT pg_catalog.now(), n integer DEFAULT 10)
RETURNS SETOF timestamptz LANGUAGE sql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$ SELECT pgautomator._next_runs(NULL, $1, $2, $3) $$;
COMMENT ON FUNCTION pgautomator.next_runs(text, timestamptz, integer) IS 'The next n fire instants of a schedule (by name) strictly after an instant, whether or not it is enabled.';

CREATE FUNCTION pgautomator._next_job_runs(p_id bigint, p_name text, p_after timestamptz, p_n integer)
RETURNS TABLE (fire_at timestamptz, schedule text) LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_job pgautomator.job;
BEGIN
    PERFORM pgautomator._check_preview('job', p_id IS NULL AND p_name IS NULL, p_after, p_n);
    SELECT * INTO v_job FROM pgautomator.job j
     WHERE CASE WHEN p_id IS NOT NULL THEN j.id = p_id ELSE j.name = p_name END;
    -- (a job the caller may not see does not exist for it: its name is not
    -- its business, as everywhere in the API)
    IF NOT FOUND OR NOT (pgautomator._may_manage(v_job.owner) OR pgautomator._is_operator()) THEN
        RAISE EXCEPTION 'job "%" does not exist', coalesce(p_name, p_id::text, 'NULL') USING ERRCODE = '42704';
    END IF;
    RETURN QUERY
        SELECT t.at, s.name
          FROM pgautomator.job_schedule js
          JOIN pgautomator.schedule s ON s.id = js.schedule_id AND s.enabled
          CROSS JOIN LATERAL pgautomator._fire_times(s.id, p_after, p_n) AS t(at)
         WHERE js.job_id = v_job.id
         ORDER BY 1, 2
         LIMIT p_n;
END
$$;
COMMENT ON FUNCTION pgautomator._next_job_runs(bigint, text, timestamptz, integer) IS 'The next n fire instants of a job over its enabled schedules (checks arguments and rights).';

CREATE FUNCTION pgautomator.next_job_runs(job bigint, after timestamptz DEFAULT pg_catalog.now(), n integer DEFAULT 10)
RETURNS TABLE (fire_at timestamptz, schedule text) LANGUAGE sql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$ SELECT * FROM pgautomator._next_job_runs($1, NULL, $2, $3) $$;
COMMENT ON FUNCTION pgautomator.next_job_runs(bigint, timestamptz, integer) IS 'The next n instants at which a job (by id) fires, over its enabled schedules, with the schedule that fires it.';

CREATE FUNCTION pgautomator.next_job_runs(job text, after timestamptz DEFAULT pg_catalog.now(), n integer DEFAULT 10)
RETURNS TABLE (fire_at timestamptz, schedule text) LANGUAGE sql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$ SELECT * FROM pgautomator._next_job_runs(NULL, $1, $2, $3) $$;
COMMENT ON FUNCTION pgautomator.next_job_runs(text, timestamptz, integer) IS 'The next n instants at which a job (by name) fires, over its enabled schedules, with the schedule that fires it.';

-- Plain English for a schedule, e.g. "every 15 minutes from 08:00 to 18:00
-- on weekdays, Europe/Berlin".
CREATE FUNCTION pgautomator._hhmm(p_t time)
RETURNS text LANGUAGE sql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$ SELECT pg_catalog.to_char(p_t, CASE WHEN pg_catalog.extract('second', p_t) = 0 THEN 'HH24:MI' ELSE 'HH24:MI:SS' END) $$;
COMMENT ON FUNCTION pgautomator._hhmm(time) IS 'A time of day as HH:MM, with seconds only when they are not zero.';

-- "a", "a and b", "a, b and c".
CREATE FUNCTION pgautomator._and_list(p_items text[])
RETURNS text LANGUAGE sql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT CASE WHEN cardinality(p_items) <= 1 THEN p_items[1]
                ELSE array_to_string(p_items[1:cardinality(p_items) - 1], ', ')
                     || ' and ' || p_items[cardinality(p_items)] END
$$;
COMMENT ON FUNCTION pgautomator._and_list(text[]) IS 'Joins words as an English list: a, b and c.';

CREATE FUNCTION pgautomator._describe(p_s pgautomator.schedule)
RETURNS text LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_names text[] := ARRAY['Monday', 'Tuesday', 'Wednesday', 'Thursday', 'Friday', 'Saturday', 'Sunday'];
    v_time  text;
    v_day   text;
    v_days  text[];
    v_out   text;
BEGIN
    IF p_s.frequency = 'cron' THEN
        v_out := coalesce(pgautomator._describe_cron(p_s.cron) || format(' (cron "%s")', p_s.cron),
                          format('on cron schedule "%s"', p_s.cron));
    ELSE
        IF p_s.every_n IS NOT NULL THEN
            v_time := CASE WHEN p_s.every_n = 1 THEN 'every ' || p_s.every_unit
                           ELSE format('every %s %ss', p_s.every_n, p_s.every_unit) END;
            -- between_end's default is the last microsecond of the day.
            IF p_s.between_end = time '23:59:59.999999' THEN
                IF p_s.between_start <> time '00:00' THEN
                    v_time := v_time || format(' from %s to the end of the day', pgautomator._hhmm(p_s.between_start));
                END IF;
            ELSE
                v_time := v_time || format(' from %s to %s', pgautomator._hhmm(p_s.between_start),
                                           pgautomator._hhmm(p_s.between_end));
            END IF;
        ELSE
            v_time := 'at ' || pgautomator._hhmm(p_s.at_time);
        END IF;
        CASE p_s.frequency
        WHEN 'once' THEN
            v_day := 'on ' || to_char(p_s.on_date, 'YYYY-MM-DD');
        WHEN 'daily' THEN
            v_day := CASE WHEN p_s.every = 1 THEN 'every day' ELSE format('every %s days', p_s.every) END;
        WHEN 'weekly' THEN
            v_day := CASE
                WHEN p_s.weekdays = '{1,2,3,4,5,6,7}' THEN 'every day'
                WHEN p_s.weekdays = '{1,2,3,4,5}' THEN 'on weekdays'
                WHEN p_s.weekdays = '{6,7}' THEN 'on weekends'
                ELSE 'on ' || pgautomator._and_list(ARRAY(SELECT v_names[d] FROM unnest(p_s.weekdays) AS d ORDER BY d))
                END || CASE WHEN p_s.every > 1 THEN format(' every %s weeks', p_s.every) ELSE '' END;
        WHEN 'monthly' THEN
            v_days := ARRAY(SELECT d::text FROM unnest(p_s.month_days) AS d ORDER BY d);
            v_day := CASE WHEN cardinality(v_days) = 0 THEN ''
                          WHEN cardinality(v_days) = 1 THEN 'day ' ELSE 'days ' END;
            IF p_s.month_last THEN
                v_days := v_days || 'the last day'::text;
            END IF;
            v_day := 'on ' || v_day || pgautomator._and_list(v_days) || ' of '
                     || CASE WHEN p_s.every = 1 THEN 'every month' ELSE format('every %s months', p_s.every) END;
        ELSE  -- monthly_relative
            v_day := format('on the %s %s of ', p_s.relative_week,
                            CASE WHEN p_s.relative_day IN ('day', 'weekday') THEN p_s.relative_day
                                 WHEN p_s.relative_day = 'weekend_day' THEN 'weekend day'
                                 ELSE initcap(p_s.relative_day) END)
                     || CASE WHEN p_s.every = 1 THEN 'every month' ELSE format('every %s months', p_s.every) END;
        END CASE;
        v_out := v_time || ' ' || v_day;
    END IF;
    v_out := v_out || ', ' || p_s.timezone;
    IF p_s.ends_at IS NOT NULL THEN
        v_out := v_out || ', until ' || to_char(p_s.ends_at AT TIME ZONE p_s.timezone, 'YYYY-MM-DD HH24:MI');
    END IF;
    IF NOT p_s.enabled THEN
        v_out := v_out || ' (disabled)';
    END IF;
    RETURN v_out;
END
$$;
COMMENT ON FUNCTION pgautomator._describe(pgautomator.schedule) IS 'A schedule in plain English.';

CREATE FUNCTION pgautomator.describe_schedule(schedule bigint)
RETURNS text LANGUAGE plpgsql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_s pgautomator.schedule;
BEGIN
    PERFORM pgautomator._require_user();
    IF describe_schedule.schedule IS NULL THEN
        RAISE EXCEPTION 'schedule must not be NULL' USING ERRCODE = '22004';
    END IF;
    SELECT * INTO v_s FROM pgautomator.schedule s WHERE s.id = describe_schedule.schedule;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'schedule "%" does not exist', coalesce(describe_schedule.schedule::text, 'NULL')
            USING ERRCODE = '42704';
    END IF;
    RETURN pgautomator._describe(v_s);
END
$$;
COMMENT ON FUNCTION pgautomator.describe_schedule(bigint) IS 'A schedule (by id) in plain English, e.g. "every 15 minutes from 08:00 to 18:00 on weekdays, Europe/Berlin".';

CREATE FUNCTION pgautomator.describe_schedule(schedule text)
RETURNS text LANGUAGE plpgsql STABLE SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_s pgautomator.schedule;
BEGIN
    PERFORM pgautomator._require_user();
    IF describe_schedule.schedule IS NULL THEN
        RAISE EXCEPTION 'schedule must not be NULL' USING ERRCODE = '22004';
    END IF;
    SELECT * INTO v_s FROM pgautomator.schedule s WHERE s.name = describe_schedule.schedule;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'schedule "%" does not exist', coalesce(describe_schedule.schedule, 'NULL')
            USING ERRCODE = '42704';
    END IF;
    RETURN pgautomator._describe(v_s);
END
$$;
COMMENT ON FUNCTION pgautomator.describe_schedule(text) IS 'A schedule (by name) in plain English, e.g. "every 15 minutes from 08:00 to 18:00 on weekdays, Europe/Berlin".';

-- Through public functions only: the view runs with the caller's rights.
CREATE VIEW pgautomator.schedules WITH (security_invoker = true) AS
SELECT s.id, s.name, s.frequency, pgautomator.describe_schedule(s.id) AS summary, s.timezone, s.enabled,
       s.owner,
       CASE WHEN s.enabled THEN (SELECT min(t) FROM pgautomator.next_runs(s.id, pg_catalog.now(), 1) AS t) END
           AS next_fire_at,
       (SELECT count(*) FROM pgautomator.job_schedule js WHERE js.schedule_id = s.id) AS jobs,
       (SELECT count(*) FROM pgautomator.exclusion e WHERE e.schedule_id = s.id) AS exclusions,
       s.starts_at, s.ends_at, s.description, s.created_at, s.modified_at
  FROM pgautomator.schedule s;
COMMENT ON VIEW pgautomator.schedules IS 'Schedules in plain English with their next fire instant and how many (visible) jobs use each.';

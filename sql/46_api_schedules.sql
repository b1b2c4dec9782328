-- Schedules: create, alter (NULL leaves a setting unchanged), drop, enable,
-- disable. Schedules are shared: everyone may see and attach any schedule;
-- members of its owner role and admins may change it. Every change
-- recomputes the next fire instant of the schedule's links and wakes the
-- launcher. Links and exclusions: 46_api_schedules_links.sql; previews and
-- English: 46_api_schedules_views.sql; pg_cron's shorthand:
-- 46_api_schedules_pgcron.sql.

-- Resolves a schedule by id or name and locks it; p_manage also checks that
-- the session user may change it.
CREATE FUNCTION pgautomator._schedule_for(p_id bigint, p_name text, p_manage boolean)
RETURNS pgautomator.schedule LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_s pgautomator.schedule;
BEGIN
    PERFORM pgautomator._require_user();
    IF p_id IS NULL AND p_name IS NULL THEN
        RAISE EXCEPTION 'schedule must not be NULL' USING ERRCODE = '22004';
    END IF;
    SELECT * INTO v_s FROM pgautomator.schedule
     WHERE CASE WHEN p_id IS NOT NULL THEN id = p_id ELSE name = p_name END
       FOR UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'schedule "%" does not exist', coalesce(p_name, p_id::text) USING ERRCODE = '42704';
    END IF;
    IF p_manage AND NOT pgautomator._may_manage(v_s.owner) THEN
        RAISE EXCEPTION 'permission denied for schedule "%"', v_s.name
            USING ERRCODE = '42501', HINT = format('Only members of role "%s" and admins may change it.', v_s.owner);
    END IF;
    RETURN v_s;
END
$$;
COMMENT ON FUNCTION pgautomator._schedule_for(bigint, text, boolean) IS 'Resolves and locks a schedule by id or name; checks the right to change it when asked.';

-- Weekday arguments: names (monday, mon), ISO numbers (1 = Monday .. 7),
-- or the groups weekdays and weekend.
CREATE FUNCTION pgautomator._parse_weekdays(p_weekdays text[])
RETURNS smallint[] LANGUAGE plpgsql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_item text;
    v_out  smallint[] := '{}';
    v_pos  integer;
BEGIN
    IF p_weekdays IS NULL THEN
        RETURN NULL;
    END IF;
    FOREACH v_item IN ARRAY p_weekdays LOOP
        v_item := lower(btrim(v_item));
        v_pos := array_position(ARRAY['monday', 'tuesday', 'wednesday', 'thursday', 'friday', 'saturday', 'sunday'],
                                v_item);
        IF v_pos IS NULL THEN
            v_pos := array_position(ARRAY['mon', 'tue', 'wed', 'thu', 'fri', 'sat', 'sun'], v_item);
        END IF;
        IF v_pos IS NOT NULL THEN
            v_out := v_out || v_pos::smallint;
        ELSIF v_item IN ('1', '2', '3', '4', '5', '6', '7') THEN
            v_out := v_out || v_item::smallint;
        ELSIF v_item IN ('weekdays', 'weekday') THEN
            v_out := v_out || '{1,2,3,4,5}'::smallint[];
        ELSIF v_item IN ('weekend', 'weekends') THEN
            v_out := v_out || '{6,7}'::smallint[];
        ELSE
            RAISE EXCEPTION 'invalid weekdays value "%"', coalesce(v_item, 'NULL')
                USING ERRCODE = '22023',
                      HINT = 'Use day names (monday or mon), ISO numbers 1 (Monday) to 7 (Sunday), weekdays or weekend.';
        END IF;
    END LOOP;
    IF cardinality(v_out) = 0 THEN
        RAISE EXCEPTION 'weekdays must list at least one day' USING ERRCODE = '22023';
    END IF;
    RETURN ARRAY(SELECT DISTINCT d FROM unnest(v_out) AS d ORDER BY d);
END
$$;
COMMENT ON FUNCTION pgautomator._parse_weekdays(text[]) IS 'Parses a weekdays argument into ISO day numbers (1 = Monday); 22023 for bad or empty lists.';

-- Month day arguments: numbers 1..31 and "last".
CREATE FUNCTION pgautomator._parse_month_days(p_days text[], OUT days smallint[], OUT last boolean)
LANGUAGE plpgsql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_item text;
BEGIN
    IF p_days IS NULL THEN
        RETURN;
    END IF;
    days := '{}';
    last := false;
    FOREACH v_item IN ARRAY p_days LOOP
        v_item := lower(btrim(v_item));
        IF v_item = 'last' THEN
            last := true;
        ELSIF v_item ~ '^[0-9]{1,9}$' AND v_item::integer BETWEEN 1 AND 31 THEN
            days := days || v_item::smallint;
        ELSE
            RAISE EXCEPTION 'invalid month_days value "%": a day must be between 1 and 31, or last',
                coalesce(v_item, 'NULL') USING ERRCODE = '22023';
        END IF;
    END LOOP;
    IF cardinality(days) = 0 AND NOT last THEN
        RAISE EXCEPTION 'month_days must list at least one day' USING ERRCODE = '22023';
    END IF;
    days := ARRAY(SELECT DISTINCT d FROM unnest(days) AS d ORDER BY d);
END
$$;
COMMENT ON FUNCTION pgautomator._parse_month_days(text[]) IS 'Parses a month_days argument (1..31 and last); 22023 for bad or empty lists.';

-- Raises 22023 naming the field when a setting is given that the frequency
-- does not use.
CREATE FUNCTION pgautomator._reject_field(p_given boolean, p_field text, p_frequency text)
RETURNS void LANGUAGE plpgsql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF p_given THEN
        RAISE EXCEPTION '% does not apply to frequency %', p_field, p_frequency USING ERRCODE = '22023';
    END IF;
END
$$;
COMMENT ON FUNCTION pgautomator._reject_field(boolean, text, text) IS 'Raises 22023 when a schedule setting is given that its frequency does not use.';

-- Validates a complete schedule definition (after merging with the stored
-- one on alter), then runs it through the engine, which checks the time
-- zone and the cron expression. Raises 22023 naming the field; returns the
-- first fire instant (NULL: never fires).
CREATE FUNCTION pgautomator._check_schedule(p_s pgautomator.schedule)
RETURNS timestamptz LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    f      text := p_s.frequency;
    v_msg  text;
    v_hint text;
BEGIN
    PERFORM pgautomator._check_name('schedule', p_s.name);
    PERFORM pgautomator._check_length('description', p_s.description, 10000);
    IF f IS NULL THEN
        RAISE EXCEPTION 'frequency must be given' USING ERRCODE = '22023',
            HINT = 'Use once, daily, weekly, monthly, monthly_relative or cron.';
    END IF;
    PERFORM pgautomator._check_choice('frequency', f,
        ARRAY['once', 'daily', 'weekly', 'monthly', 'monthly_relative', 'cron']);
    PERFORM pgautomator._check_range('every', p_s.every, 1, 1000);
    PERFORM pgautomator._reject_field(f IN ('once', 'cron') AND p_s.every <> 1, 'every', f);
    PERFORM pgautomator._reject_field(f <> 'once' AND p_s.on_date IS NOT NULL, 'on_date', f);
    PERFORM pgautomator._reject_field(f <> 'weekly' AND p_s.weekdays IS NOT NULL, 'weekdays', f);
    PERFORM pgautomator._reject_field(f <> 'monthly' AND (p_s.month_days IS NOT NULL OR p_s.month_last),
                                      'month_days', f);
    PERFORM pgautomator._reject_field(f <> 'monthly_relative' AND p_s.relative_week IS NOT NULL, 'relative_week', f);
    PERFORM pgautomator._reject_field(f <> 'monthly_relative' AND p_s.relative_day IS NOT NULL, 'relative_day', f);
    PERFORM pgautomator._reject_field(f <> 'cron' AND p_s.cron IS NOT NULL, 'cron', f);
    IF f = 'once' AND p_s.on_date IS NULL THEN
        RAISE EXCEPTION 'on_date must be given for frequency once' USING ERRCODE = '22023';
    ELSIF f = 'weekly' AND coalesce(cardinality(p_s.weekdays), 0) = 0 THEN
        RAISE EXCEPTION 'weekdays must list at least one day for frequency weekly' USING ERRCODE = '22023';
    ELSIF f = 'monthly' AND coalesce(cardinality(p_s.month_days), 0) = 0 AND NOT p_s.month_last THEN
        RAISE EXCEPTION 'month_days must list at least one day (1..31 or last) for frequency monthly'
            USING ERRCODE = '22023';
    ELSIF f = 'monthly_relative' AND (p_s.relative_week IS NULL OR p_s.relative_day IS NULL) THEN
        RAISE EXCEPTION 'relative_week and relative_day must be given for frequency monthly_relative'
            USING ERRCODE = '22023', HINT = 'For example relative_week => ''last'', relative_day => ''friday''.';
    ELSIF f = 'cron' AND (p_s.cron IS NULL OR p_s.cron !~ '\S') THEN
        RAISE EXCEPTION 'cron must be given for frequency cron' USING ERRCODE = '22023';
    ELSIF f = 'cron' AND length(p_s.cron) > 1000 THEN     -- (errors quote it)
        RAISE EXCEPTION 'cron must be at most 1000 characters, not %', length(p_s.cron) USING ERRCODE = '22023';
    END IF;
    PERFORM pgautomator._check_choice('relative_week', p_s.relative_week,
        ARRAY['first', 'second', 'third', 'fourth', 'last']);
    PERFORM pgautomator._check_choice('relative_day', p_s.relative_day,
        ARRAY['monday', 'tuesday', 'wednesday', 'thursday', 'friday', 'saturday', 'sunday',
              'day', 'weekday', 'weekend_day']);
    -- Within the day: cron has its own; otherwise at_time or every_n.
    PERFORM pgautomator._reject_field(f = 'cron' AND p_s.at_time IS NOT NULL, 'at_time', f);
    PERFORM pgautomator._reject_field(f = 'cron' AND p_s.every_n IS NOT NULL, 'every_n', f);
    PERFORM pgautomator._reject_field(f = 'cron' AND p_s.every_unit IS NOT NULL, 'every_unit', f);
    PERFORM pgautomator._reject_field(f = 'cron' AND p_s.between_start IS NOT NULL, 'between_start', f);
    PERFORM pgautomator._reject_field(f = 'cron' AND p_s.between_end IS NOT NULL, 'between_end', f);
    IF p_s.at_time IS NOT NULL AND p_s.every_n IS NOT NULL THEN
        RAISE EXCEPTION 'give either at_time or every_n, not both' USING ERRCODE = '22023';
    END IF;
    PERFORM pgautomator._check_range('every_n', p_s.every_n, 1, 86400);
    PERFORM pgautomator._check_choice('every_unit', p_s.every_unit, ARRAY['second', 'minute', 'hour']);
    IF (p_s.every_n IS NULL) <> (p_s.every_unit IS NULL) THEN
        RAISE EXCEPTION 'every_n and every_unit must be given together' USING ERRCODE = '22023',
            HINT = 'For example every_n => 15, every_unit => ''minute''.';
    END IF;
    IF p_s.every_n IS NOT NULL
       AND (p_s.every_n * (CASE p_s.every_unit WHEN 'second' THEN 1 WHEN 'minute' THEN 60 ELSE 3600 END)) > 86400
    THEN
        RAISE EXCEPTION 'every_n % % is longer than a day', p_s.every_n, p_s.every_unit USING ERRCODE = '22023',
            HINT = 'Use the day-level every (every N days) instead.';
    END IF;
    IF p_s.every_n IS NULL AND (p_s.between_start IS NOT NULL OR p_s.between_end IS NOT NULL) THEN
        RAISE EXCEPTION 'between_start and between_end apply only with every_n' USING ERRCODE = '22023';
    END IF;
    IF p_s.between_end < p_s.between_start THEN
        RAISE EXCEPTION 'between_end % is before between_start %', p_s.between_end, p_s.between_start
            USING ERRCODE = '22023';
    END IF;
    IF p_s.timezone IS NULL OR p_s.timezone !~ '\S' THEN
        RAISE EXCEPTION 'timezone must not be empty' USING ERRCODE = '22023';
    END IF;
    -- The engine's calendar runs from year 1 to 9999; keep well inside it.
    IF p_s.starts_at IS NULL OR NOT p_s.starts_at BETWEEN '1900-01-01 00:00+00' AND '9000-01-01 00:00+00' THEN
        RAISE EXCEPTION 'starts_at must be between 1900-01-01 and 9000-01-01, not %',
            coalesce(p_s.starts_at::text, 'NULL') USING ERRCODE = '22023';
    END IF;
    IF p_s.ends_at > '9000-01-01 00:00+00' THEN
        RAISE EXCEPTION 'ends_at must be before 9000-01-01, not %', p_s.ends_at USING ERRCODE = '22023',
            HINT = 'Leave it NULL (or infinity) for no end.';
    END IF;
    IF NOT p_s.on_date BETWEEN '1900-01-01' AND '9000-01-01' THEN
        RAISE EXCEPTION 'on_date must be between 1900-01-01 and 9000-01-01, not %', p_s.on_date
            USING ERRCODE = '22023';
    END IF;
    IF p_s.at_time >= time '24:00' OR p_s.between_start >= time '24:00' OR p_s.between_end >= time '24:00' THEN
        RAISE EXCEPTION 'times of day must be before 24:00' USING ERRCODE = '22023';
    END IF;
    IF p_s.ends_at <= p_s.starts_at THEN
        RAISE EXCEPTION 'ends_at % is not after starts_at %', p_s.ends_at, p_s.starts_at USING ERRCODE = '22023';
    END IF;
    -- The engine checks the zone and the cron expression and computes the
    -- first instant: a definition is stored only if it can be evaluated.
    BEGIN
        RETURN pgautomator._from_us((pgautomator._instants(pgautomator._schedule_def(p_s),
                                                           pgautomator._us(p_s.starts_at) - 1, 1))[1]);
    EXCEPTION WHEN invalid_parameter_value THEN
        -- Re-raised without PL/Python's exception-class prefix and traceback.
        GET STACKED DIAGNOSTICS v_msg = MESSAGE_TEXT, v_hint = PG_EXCEPTION_HINT;
        v_msg := regexp_replace(v_msg, '^plpy\.Error: ', '');
        IF coalesce(v_hint, '') = '' THEN
            RAISE EXCEPTION '%', v_msg USING ERRCODE = '22023';
        END IF;
        RAISE EXCEPTION '%', v_msg USING ERRCODE = '22023', HINT = v_hint;
    END;
END
$$;
COMMENT ON FUNCTION pgautomator._check_schedule(pgautomator.schedule) IS 'Validates a complete schedule definition through the engine; returns its first fire instant.';

-- Normalises an every_unit argument ("minutes" -> "minute").
CREATE FUNCTION pgautomator._unit(p_unit text)
RETURNS text LANGUAGE sql IMMUTABLE
SET search_path = pg_catalog, pg_temp
AS $$ SELECT CASE WHEN lower(p_unit) IN ('seconds', 'minutes', 'hours') THEN rtrim(lower(p_unit), 's')
                  ELSE lower(p_unit) END $$;
COMMENT ON FUNCTION pgautomator._unit(text) IS 'Normalises an every_unit argument to second, minute or hour.';

CREATE FUNCTION pgautomator._schedule_saved(p_s pgautomator.schedule, p_first timestamptz)
RETURNS void LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    IF p_first IS NULL THEN
        RAISE NOTICE 'schedule "%" never fires', p_s.name
            USING DETAIL = 'No instant after starts_at matches the rule (within 400 years) before ends_at.';
    END IF;
    PERFORM pgautomator._zone_seen(p_s.timezone);     -- the rules its instants are computed with
    PERFORM pgautomator._refresh_next_fire(NULL, p_s.id, p_keep_missed => true);
    PERFORM pgautomator._wake('schedule');
END
$$;
COMMENT ON FUNCTION pgautomator._schedule_saved(pgautomator.schedule, timestamptz) IS 'After a schedule changed: warns when it never fires, records the rules of its time zone, recomputes its links, wakes the launcher.';

CREATE FUNCTION pgautomator.create_schedule(
    name            text,
    frequency       text,
    every           integer DEFAULT NULL,
    on_date         date DEFAULT NULL,
    weekdays        text[] DEFAULT NULL,
    month_days      text[] DEFAULT NULL,
    relative_week   text DEFAULT NULL,
    relative_day    text DEFAULT NULL,
    at_time         time DEFAULT NULL,
    every_n         integer DEFAULT NULL,
    every_unit      text DEFAULT NULL,
    between_start   time DEFAULT NULL,
    between_end     time DEFAULT NULL,
    cron            text DEFAULT NULL,
    timezone        text DEFAULT NULL,
    starts_at       timestamptz DEFAULT NULL,
    ends_at         timestamptz DEFAULT NULL,
    description     text DEFAULT '',
    enabled         boolean DEFAULT true,
    owner           text DEFAULT NULL)
RETURNS bigint LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_s     pgautomator.schedule;
    v_md    record := pgautomator._parse_month_days(create_schedule.month_days);
    v_first timestamptz;
BEGIN
    PERFORM pgautomator._require_user();
    v_s.name := create_schedule.name;
    v_s.frequency := lower(create_schedule.frequency);
    v_s.every := coalesce(create_schedule.every, 1);
    v_s.on_date := create_schedule.on_date;
    v_s.weekdays := pgautomator._parse_weekdays(create_schedule.weekdays);
    v_s.month_days := v_md.days;
    v_s.month_last := coalesce(v_md.last, false);
    v_s.relative_week := lower(create_schedule.relative_week);
    v_s.relative_day := replace(lower(create_schedule.relative_day), ' ', '_');
    v_s.every_n := create_schedule.every_n;
    v_s.every_unit := pgautomator._unit(create_schedule.every_unit);
    v_s.between_start := CASE WHEN create_schedule.every_n IS NOT NULL
                              THEN coalesce(create_schedule.between_start, time '00:00') END;
    v_s.between_end := CASE WHEN create_schedule.every_n IS NOT NULL
                            THEN coalesce(create_schedule.between_end, time '23:59:59.999999') END;
    IF create_schedule.every_n IS NULL THEN   -- keep stray values so the check names them
        v_s.between_start := create_schedule.between_start;
        v_s.between_end := create_schedule.between_end;
    END IF;
    -- A day-level rule with no time of day fires at midnight.
    v_s.at_time := CASE WHEN create_schedule.at_time IS NULL AND create_schedule.every_n IS NULL
                             AND v_s.frequency IS DISTINCT FROM 'cron' THEN time '00:00'
                        ELSE create_schedule.at_time END;
    v_s.cron := create_schedule.cron;
    v_s.timezone := coalesce(create_schedule.timezone, current_setting('TimeZone'));
    v_s.starts_at := coalesce(create_schedule.starts_at, pg_catalog.now());
    v_s.ends_at := CASE WHEN create_schedule.ends_at = 'infinity' THEN NULL ELSE create_schedule.ends_at END;
    v_s.description := coalesce(create_schedule.description, '');
    v_s.enabled := coalesce(create_schedule.enabled, true);
    v_s.owner := pgautomator._check_owner(create_schedule.owner);
    v_first := pgautomator._check_schedule(v_s);
    INSERT INTO pgautomator.schedule (name, description, enabled, owner, frequency, every, on_date, weekdays,
                                      month_days, month_last, relative_week, relative_day, at_time, every_n,
                                      every_unit, between_start, between_end, cron, timezone, starts_at, ends_at)
    VALUES (v_s.name, v_s.description, v_s.enabled, v_s.owner, v_s.frequency, v_s.every, v_s.on_date,
            v_s.weekdays, v_s.month_days, v_s.month_last, v_s.relative_week, v_s.relative_day, v_s.at_time,
            v_s.every_n, v_s.every_unit, v_s.between_start, v_s.between_end, v_s.cron, v_s.timezone,
            v_s.starts_at, v_s.ends_at)
    RETURNING * INTO v_s;
    PERFORM pgautomator._schedule_saved(v_s, v_first);
    RETURN v_s.id;
EXCEPTION WHEN unique_violation THEN
    RAISE EXCEPTION 'schedule "%" already exists', create_schedule.name USING ERRCODE = '23505';
END
$$;
COMMENT ON FUNCTION pgautomator.create_schedule(text, text, integer, date, text[], text[], text, text, time, integer, text, time, time, text, text, timestamptz, timestamptz, text, boolean, text)
    IS 'Creates a schedule (once, daily, weekly, monthly, monthly_relative or cron) and returns its id; see README "Schedules".';

CREATE FUNCTION pgautomator._alter_schedule(
    p_old pgautomator.schedule, p_name text, p_frequency text, p_every integer, p_on_date date,
    p_weekdays text[], p_month_days text[], p_relative_week text, p_relative_day text, p_at_time time,
    p_every_n integer, p_every_unit text, p_between_start time, p_between_end time, p_cron text,
    p_timezone text, p_starts_at timestamptz, p_ends_at timestamptz, p_description text,
    p_enabled boolean, p_owner text)
RETURNS void LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_s     pgautomator.schedule := p_old;
    v_md    record := pgautomator._parse_month_days(p_month_days);
    v_first timestamptz;
BEGIN
    -- A new frequency starts from a clean day-level rule.
    IF p_frequency IS NOT NULL AND lower(p_frequency) <> p_old.frequency THEN
        v_s.frequency := lower(p_frequency);
        v_s.every := 1;
        v_s.on_date := NULL; v_s.weekdays := NULL; v_s.month_days := NULL; v_s.month_last := false;
        v_s.relative_week := NULL; v_s.relative_day := NULL; v_s.cron := NULL;
        IF v_s.frequency = 'cron' THEN
            v_s.at_time := NULL; v_s.every_n := NULL; v_s.every_unit := NULL;
            v_s.between_start := NULL; v_s.between_end := NULL;
        ELSIF p_old.frequency = 'cron' THEN
            v_s.at_time := time '00:00';
        END IF;
    END IF;
    v_s.name := coalesce(p_name, v_s.name);
    v_s.every := coalesce(p_every, v_s.every);
    v_s.on_date := coalesce(p_on_date, v_s.on_date);
    v_s.weekdays := coalesce(pgautomator._parse_weekdays(p_weekdays), v_s.weekdays);
    IF p_month_days IS NOT NULL THEN
        v_s.month_days := v_md.days;
        v_s.month_last := v_md.last;
    END IF;
    v_s.relative_week := coalesce(lower(p_relative_week), v_s.relative_week);
    v_s.relative_day := coalesce(replace(lower(p_relative_day), ' ', '_'), v_s.relative_day);
    -- at_time and every_n replace each other.
    IF p_at_time IS NOT NULL THEN
        v_s.at_time := p_at_time;
        v_s.every_n := NULL; v_s.every_unit := NULL; v_s.between_start := NULL; v_s.between_end := NULL;
    END IF;
    IF p_every_n IS NOT NULL OR p_every_unit IS NOT NULL THEN
        IF p_at_time IS NULL THEN
            v_s.at_time := NULL;
        END IF;
        v_s.every_n := coalesce(p_every_n, v_s.every_n);
        v_s.every_unit := coalesce(pgautomator._unit(p_every_unit), v_s.every_unit);
        v_s.between_start := coalesce(p_between_start, v_s.between_start, time '00:00');
        v_s.between_end := coalesce(p_between_end, v_s.between_end, time '23:59:59.999999');
    ELSE
        v_s.between_start := coalesce(p_between_start, v_s.between_start);
        v_s.between_end := coalesce(p_between_end, v_s.between_end);
    END IF;
    v_s.cron := coalesce(p_cron, v_s.cron);
    v_s.timezone := coalesce(p_timezone, v_s.timezone);
    v_s.starts_at := coalesce(p_starts_at, v_s.starts_at);
    -- ends_at => 'infinity' removes the end.
    v_s.ends_at := CASE WHEN p_ends_at IS NULL THEN v_s.ends_at
                        WHEN p_ends_at = 'infinity' THEN NULL ELSE p_ends_at END;
    v_s.description := coalesce(p_description, v_s.description);
    v_s.enabled := coalesce(p_enabled, v_s.enabled);
    IF p_owner IS NOT NULL THEN
        v_s.owner := pgautomator._check_owner(p_owner);
    END IF;
    v_first := pgautomator._check_schedule(v_s);
    UPDATE pgautomator.schedule s SET
        name = v_s.name, description = v_s.description, enabled = v_s.enabled, owner = v_s.owner,
        frequency = v_s.frequency, every = v_s.every, on_date = v_s.on_date, weekdays = v_s.weekdays,
        month_days = v_s.month_days, month_last = v_s.month_last, relative_week = v_s.relative_week,
        relative_day = v_s.relative_day, at_time = v_s.at_time, every_n = v_s.every_n,
        every_unit = v_s.every_unit, between_start = v_s.between_start, between_end = v_s.between_end,
        cron = v_s.cron, timezone = v_s.timezone, starts_at = v_s.starts_at, ends_at = v_s.ends_at,
        modified_at = pg_catalog.now()
     WHERE s.id = p_old.id
    RETURNING * INTO v_s;
    PERFORM pgautomator._schedule_saved(v_s, v_first);
EXCEPTION WHEN unique_violation THEN
    RAISE EXCEPTION 'schedule "%" already exists', p_name USING ERRCODE = '23505';
END
$$;
COMMENT ON FUNCTION pgautomator._alter_schedule(pgautomator.schedule, text, text, integer, date, text[], text[], text, text, time, integer, text, time, time, text, text, timestamptz, timestamptz, text, boolean, text)
    IS 'Merges the given settings into a schedule, validates the result and stores it.';

CREATE FUNCTION pgautomator.alter_schedule(
    schedule bigint, name text DEFAULT NULL, frequency text DEFAULT NULL, every integer DEFAULT NULL,
    on_date date DEFAULT NULL, weekdays text[] DEFAULT NULL, month_days text[] DEFAULT NULL,
    relative_week text DEFAULT NULL, relative_day text DEFAULT NULL, at_time time DEFAULT NULL,
    every_n integer DEFAULT NULL, every_unit text DEFAULT NULL, between_start time DEFAULT NULL,
    between_end time DEFAULT NULL, cron text DEFAULT NULL, timezone text DEFAULT NULL,
    starts_at timestamptz DEFAULT NULL, ends_at timestamptz DEFAULT NULL, description text DEFAULT NULL,
    enabled boolean DEFAULT NULL, owner text DEFAULT NULL)
RETURNS void LANGUAGE sql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT pgautomator._alter_schedule(pgautomator._schedule_for($1, NULL, true), $2, $3, $4, $5, $6, $7, $8,
                                       $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21)
$$;
COMMENT ON FUNCTION pgautomator.alter_schedule(bigint, text, text, integer, date, text[], text[], text, text, time, integer, text, time, time, text, text, timestamptz, timestamptz, text, boolean, text)
    IS 'Changes the given settings of a schedule named by id (NULL leaves a setting unchanged; a new frequency starts a clean day rule; ends_at => infinity removes the end).';

CREATE FUNCTION pgautomator.alter_schedule(
    schedule text, name text DEFAULT NULL, frequency text DEFAULT NULL, every integer DEFAULT NULL,
    on_date date DEFAULT NULL, weekdays text[] DEFAULT NULL, month_days text[] DEFAULT NULL,
    relative_week text DEFAULT NULL, relative_day text DEFAULT NULL, at_time time DEFAULT NULL,
    every_n integer DEFAULT NULL, every_unit text DEFAULT NULL, between_start time DEFAULT NULL,
    between_end time DEFAULT NULL, cron text DEFAULT NULL, timezone text DEFAULT NULL,
    starts_at timestamptz DEFAULT NULL, ends_at timestamptz DEFAULT NULL, description text DEFAULT NULL,
    enabled boolean DEFAULT NULL, owner text DEFAULT NULL)
RETURNS void LANGUAGE sql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT pgautomator._alter_schedule(pgautomator._schedule_for(NULL, $1, true), $2, $3, $4, $5, $6, $7, $8,
                                       $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21)
$$;
COMMENT ON FUNCTION pgautomator.alter_schedule(text, text, text, integer, date, text[], text[], text, text, time, integer, text, time, time, text, text, timestamptz, timestamptz, text, boolean, text)
    IS 'Changes the given settings of a schedule named by name; see alter_schedule(bigint, ...).';

CREATE FUNCTION pgautomator._drop_schedule(p_s pgautomator.schedule, p_force boolean)
RETURNS void LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_jobs text;
BEGIN
    -- Name only the jobs the caller may see; count the others.
    SELECT nullif(concat_ws(', ',
               string_agg(quote_ident(a.name), ', ' ORDER BY a.name) FILTER (WHERE a.visible),
               CASE WHEN bool_or(NOT a.visible)
                    THEN format('%s of other users', count(*) FILTER (WHERE NOT a.visible)) END), '')
      INTO v_jobs
      FROM (SELECT j.name, pgautomator._is_operator() OR pgautomator._may_manage(j.owner) AS visible
              FROM pgautomator.job_schedule js JOIN pgautomator.job j ON j.id = js.job_id
             WHERE js.schedule_id = p_s.id) AS a;
    IF v_jobs IS NOT NULL AND NOT coalesce(p_force, false) THEN
        RAISE EXCEPTION 'schedule "%" is attached to jobs: %', p_s.name, v_jobs
            USING ERRCODE = '2BP01', HINT = 'Detach it first, or drop it with force => true.';
    END IF;
    -- Links and exclusions go with it (ON DELETE CASCADE).
    DELETE FROM pgautomator.schedule WHERE id = p_s.id;
    PERFORM pgautomator._wake('schedule');
END
$$;
COMMENT ON FUNCTION pgautomator._drop_schedule(pgautomator.schedule, boolean) IS 'Deletes a schedule; refused (2BP01) while attached to jobs unless forced.';

CREATE FUNCTION pgautomator.drop_schedule(schedule bigint, force boolean DEFAULT false)
RETURNS void LANGUAGE sql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$ SELECT pgautomator._drop_schedule(pgautomator._schedule_for($1, NULL, true), $2) $$;
COMMENT ON FUNCTION pgautomator.drop_schedule(bigint, boolean) IS 'Drops a schedule by id; refused while attached to jobs unless force => true (which detaches it).';

CREATE FUNCTION pgautomator.drop_schedule(schedule text, force boolean DEFAULT false)
RETURNS void LANGUAGE sql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$ SELECT pgautomator._drop_schedule(pgautomator._schedule_for(NULL, $1, true), $2) $$;
COMMENT ON FUNCTION pgautomator.drop_schedule(text, boolean) IS 'Drops a schedule by name; refused while attached to jobs unless force => true (which detaches it).';

CREATE FUNCTION pgautomator._set_schedule_enabled(p_s pgautomator.schedule, p_enabled boolean)
RETURNS void LANGUAGE sql
SET search_path = pg_catalog, pg_temp
AS $$
    UPDATE pgautomator.schedule SET enabled = p_enabled, modified_at = pg_catalog.now() WHERE id = p_s.id;
    -- Re-enabling starts from now: instants missed while disabled do not fire.
    SELECT pgautomator._refresh_next_fire(NULL, p_s.id);
    SELECT pgautomator._wake('schedule');
$$;
COMMENT ON FUNCTION pgautomator._set_schedule_enabled(pgautomator.schedule, boolean) IS 'Enables or disables a schedule and recomputes its links.';

CREATE FUNCTION pgautomator.enable_schedule(schedule bigint)
RETURNS void LANGUAGE sql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$ SELECT pgautomator._set_schedule_enabled(pgautomator._schedule_for($1, NULL, true), true) $$;
COMMENT ON FUNCTION pgautomator.enable_schedule(bigint) IS 'Enables a schedule by id: it fires its jobs again from now on.';

CREATE FUNCTION pgautomator.enable_schedule(schedule text)
RETURNS void LANGUAGE sql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$ SELECT pgautomator._set_schedule_enabled(pgautomator._schedule_for(NULL, $1, true), true) $$;
COMMENT ON FUNCTION pgautomator.enable_schedule(text) IS 'Enables a schedule by name: it fires its jobs again from now on.';

CREATE FUNCTION pgautomator.disable_schedule(schedule bigint)
RETURNS void LANGUAGE sql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$ SELECT pgautomator._set_schedule_enabled(pgautomator._schedule_for($1, NULL, true), false) $$;
COMMENT ON FUNCTION pgautomator.disable_schedule(bigint) IS 'Disables a schedule by id: it fires no job until enabled.';

CREATE FUNCTION pgautomator.disable_schedule(schedule text)
RETURNS void LANGUAGE sql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$ SELECT pgautomator._set_schedule_enabled(pgautomator._schedule_for(NULL, $1, true), false) $$;
COMMENT ON FUNCTION pgautomator.disable_schedule(text) IS 'Disables a schedule by name: it fires no job until enabled.';

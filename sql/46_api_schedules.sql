-- Schedules: create, alter (NULL leaves a setting unchanged), drop, enable,
-- disable, attach to and detach from jobs, exclusions, previews (next_runs,
-- describe_schedule), the schedules view and pg_cron's schedule/unschedule.
-- Schedules are shared: everyone may see and attach any schedule; members of
-- its owner role and admins may change it. Every change recomputes the
-- next fire instant of the schedule's links and wakes the launcher.

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
    PERFORM pgautomator._refresh_next_fire(NULL, p_s.id);
    PERFORM pgautomator._wake('schedule');
END
$$;
COMMENT ON FUNCTION pgautomator._schedule_saved(pgautomator.schedule, timestamptz) IS 'After a schedule changed: warns when it never fires, recomputes its links, wakes the launcher.';

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
    SELECT string_agg(quote_ident(j.name), ', ' ORDER BY j.name) INTO v_jobs
      FROM pgautomator.job_schedule js JOIN pgautomator.job j ON j.id = js.job_id
     WHERE js.schedule_id = p_s.id;
    IF v_jobs IS NOT NULL AND NOT coalesce(p_force, false) THEN
        RAISE EXCEPTION 'schedule "%" is attached to job %', p_s.name, v_jobs
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

-- Attaching needs the right to manage the job; any schedule may be used.
CREATE FUNCTION pgautomator._attach_schedule(p_job pgautomator.job, p_s pgautomator.schedule)
RETURNS void LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    INSERT INTO pgautomator.job_schedule (job_id, schedule_id) VALUES (p_job.id, p_s.id)
    ON CONFLICT (job_id, schedule_id) DO NOTHING;
    IF FOUND THEN
        PERFORM pgautomator._refresh_next_fire(p_job.id, p_s.id);
        PERFORM pgautomator._wake('schedule');
    END IF;
END
$$;
COMMENT ON FUNCTION pgautomator._attach_schedule(pgautomator.job, pgautomator.schedule) IS 'Links a schedule to a job (no-op when linked) and computes the next fire instant.';

CREATE FUNCTION pgautomator.attach_schedule(job bigint, schedule bigint)
RETURNS void LANGUAGE sql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$ SELECT pgautomator._attach_schedule(pgautomator._job_for($1, NULL, 'manage'),
                                          pgautomator._schedule_for($2, NULL, false)) $$;
COMMENT ON FUNCTION pgautomator.attach_schedule(bigint, bigint) IS 'Makes a schedule (by id) fire a job (by id); attaching twice is a no-op.';

CREATE FUNCTION pgautomator.attach_schedule(job text, schedule text)
RETURNS void LANGUAGE sql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$ SELECT pgautomator._attach_schedule(pgautomator._job_for(NULL, $1, 'manage'),
                                          pgautomator._schedule_for(NULL, $2, false)) $$;
COMMENT ON FUNCTION pgautomator.attach_schedule(text, text) IS 'Makes a schedule (by name) fire a job (by name); attaching twice is a no-op.';

CREATE FUNCTION pgautomator.attach_schedule(job bigint, schedule text)
RETURNS void LANGUAGE sql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$ SELECT pgautomator._attach_schedule(pgautomator._job_for($1, NULL, 'manage'),
                                          pgautomator._schedule_for(NULL, $2, false)) $$;
COMMENT ON FUNCTION pgautomator.attach_schedule(bigint, text) IS 'Makes a schedule (by name) fire a job (by id); attaching twice is a no-op.';

CREATE FUNCTION pgautomator.attach_schedule(job text, schedule bigint)
RETURNS void LANGUAGE sql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$ SELECT pgautomator._attach_schedule(pgautomator._job_for(NULL, $1, 'manage'),
                                          pgautomator._schedule_for($2, NULL, false)) $$;
COMMENT ON FUNCTION pgautomator.attach_schedule(text, bigint) IS 'Makes a schedule (by id) fire a job (by name); attaching twice is a no-op.';

CREATE FUNCTION pgautomator._detach_schedule(p_job pgautomator.job, p_s pgautomator.schedule)
RETURNS void LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    DELETE FROM pgautomator.job_schedule WHERE job_id = p_job.id AND schedule_id = p_s.id;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'schedule "%" is not attached to job "%"', p_s.name, p_job.name USING ERRCODE = '42704';
    END IF;
    PERFORM pgautomator._wake('schedule');
END
$$;
COMMENT ON FUNCTION pgautomator._detach_schedule(pgautomator.job, pgautomator.schedule) IS 'Unlinks a schedule from a job; 42704 when they are not linked.';

CREATE FUNCTION pgautomator.detach_schedule(job bigint, schedule bigint)
RETURNS void LANGUAGE sql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$ SELECT pgautomator._detach_schedule(pgautomator._job_for($1, NULL, 'manage'),
                                          pgautomator._schedule_for($2, NULL, false)) $$;
COMMENT ON FUNCTION pgautomator.detach_schedule(bigint, bigint) IS 'Stops a schedule (by id) from firing a job (by id).';

CREATE FUNCTION pgautomator.detach_schedule(job text, schedule text)
RETURNS void LANGUAGE sql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$ SELECT pgautomator._detach_schedule(pgautomator._job_for(NULL, $1, 'manage'),
                                          pgautomator._schedule_for(NULL, $2, false)) $$;
COMMENT ON FUNCTION pgautomator.detach_schedule(text, text) IS 'Stops a schedule (by name) from firing a job (by name).';

CREATE FUNCTION pgautomator.detach_schedule(job bigint, schedule text)
RETURNS void LANGUAGE sql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$ SELECT pgautomator._detach_schedule(pgautomator._job_for($1, NULL, 'manage'),
                                          pgautomator._schedule_for(NULL, $2, false)) $$;
COMMENT ON FUNCTION pgautomator.detach_schedule(bigint, text) IS 'Stops a schedule (by name) from firing a job (by id).';

CREATE FUNCTION pgautomator.detach_schedule(job text, schedule bigint)
RETURNS void LANGUAGE sql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$ SELECT pgautomator._detach_schedule(pgautomator._job_for(NULL, $1, 'manage'),
                                          pgautomator._schedule_for($2, NULL, false)) $$;
COMMENT ON FUNCTION pgautomator.detach_schedule(text, bigint) IS 'Stops a schedule (by id) from firing a job (by name).';

-- Exclusions: a whole local day (on_date, in the schedule's zone) or a
-- window [from_at, until_at) on which the schedule does not fire.
CREATE FUNCTION pgautomator._add_exclusion(p_s pgautomator.schedule, p_on_date date, p_from_at timestamptz,
                                           p_until_at timestamptz, p_reason text)
RETURNS bigint LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_id bigint;
BEGIN
    IF p_on_date IS NOT NULL AND (p_from_at IS NOT NULL OR p_until_at IS NOT NULL) THEN
        RAISE EXCEPTION 'give either on_date or from_at and until_at, not both' USING ERRCODE = '22023';
    ELSIF p_on_date IS NULL AND (p_from_at IS NULL OR p_until_at IS NULL) THEN
        RAISE EXCEPTION 'an exclusion needs on_date, or both from_at and until_at' USING ERRCODE = '22023';
    ELSIF p_until_at <= p_from_at THEN
        RAISE EXCEPTION 'until_at % is not after from_at %', p_until_at, p_from_at USING ERRCODE = '22023';
    ELSIF NOT p_on_date BETWEEN '1900-01-01' AND '9000-01-01'
          OR NOT p_from_at BETWEEN '1900-01-01 00:00+00' AND '9000-01-01 00:00+00'
          OR NOT p_until_at BETWEEN '1900-01-01 00:00+00' AND '9000-01-01 00:00+00' THEN
        RAISE EXCEPTION 'exclusion dates and instants must be between 1900-01-01 and 9000-01-01'
            USING ERRCODE = '22023';
    END IF;
    INSERT INTO pgautomator.exclusion (schedule_id, on_date, from_at, until_at, reason)
    VALUES (p_s.id, p_on_date, p_from_at, p_until_at, coalesce(p_reason, ''))
    RETURNING id INTO v_id;
    UPDATE pgautomator.schedule SET modified_at = pg_catalog.now() WHERE id = p_s.id;
    PERFORM pgautomator._refresh_next_fire(NULL, p_s.id);
    PERFORM pgautomator._wake('schedule');
    RETURN v_id;
END
$$;
COMMENT ON FUNCTION pgautomator._add_exclusion(pgautomator.schedule, date, timestamptz, timestamptz, text) IS 'Adds an exclusion day or window to a schedule and recomputes its links.';

CREATE FUNCTION pgautomator.add_exclusion(schedule bigint, on_date date DEFAULT NULL,
                                          from_at timestamptz DEFAULT NULL, until_at timestamptz DEFAULT NULL,
                                          reason text DEFAULT '')
RETURNS bigint LANGUAGE sql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$ SELECT pgautomator._add_exclusion(pgautomator._schedule_for($1, NULL, true), $2, $3, $4, $5) $$;
COMMENT ON FUNCTION pgautomator.add_exclusion(bigint, date, timestamptz, timestamptz, text) IS 'Stops a schedule (by id) firing on a local date, or in a window [from_at, until_at); returns the exclusion id.';

CREATE FUNCTION pgautomator.add_exclusion(schedule text, on_date date DEFAULT NULL,
                                          from_at timestamptz DEFAULT NULL, until_at timestamptz DEFAULT NULL,
                                          reason text DEFAULT '')
RETURNS bigint LANGUAGE sql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$ SELECT pgautomator._add_exclusion(pgautomator._schedule_for(NULL, $1, true), $2, $3, $4, $5) $$;
COMMENT ON FUNCTION pgautomator.add_exclusion(text, date, timestamptz, timestamptz, text) IS 'Stops a schedule (by name) firing on a local date, or in a window [from_at, until_at); returns the exclusion id.';

CREATE FUNCTION pgautomator.drop_exclusion(exclusion bigint)
RETURNS void LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_schedule_id bigint;
    v_s pgautomator.schedule;
BEGIN
    SELECT e.schedule_id INTO v_schedule_id FROM pgautomator.exclusion e WHERE e.id = drop_exclusion.exclusion;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'exclusion % does not exist', coalesce(drop_exclusion.exclusion::text, 'NULL')
            USING ERRCODE = '42704';
    END IF;
    v_s := pgautomator._schedule_for(v_schedule_id, NULL, true);
    DELETE FROM pgautomator.exclusion e WHERE e.id = drop_exclusion.exclusion;
    UPDATE pgautomator.schedule SET modified_at = pg_catalog.now() WHERE id = v_s.id;
    PERFORM pgautomator._refresh_next_fire(NULL, v_s.id);
    PERFORM pgautomator._wake('schedule');
END
$$;
COMMENT ON FUNCTION pgautomator.drop_exclusion(bigint) IS 'Removes an exclusion from its schedule.';

-- Previews. next_runs shows a schedule's rule whether or not it is enabled;
-- next_job_runs merges a job's enabled schedules.
CREATE FUNCTION pgautomator._next_runs(p_id bigint, p_name text, p_after timestamptz, p_n integer)
RETURNS SETOF timestamptz LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_id bigint := p_id;
BEGIN
    PERFORM pgautomator._require_user();
    IF p_after IS NULL THEN
        RAISE EXCEPTION 'after must not be NULL' USING ERRCODE = '22004';
    END IF;
    IF NOT isfinite(p_after) THEN
        RAISE EXCEPTION 'after must be a finite instant, not %', p_after USING ERRCODE = '22023';
    END IF;
    PERFORM pgautomator._check_range('n', coalesce(p_n, -1), 0, 100000);
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
    PERFORM pgautomator._require_user();
    IF p_after IS NULL THEN
        RAISE EXCEPTION 'after must not be NULL' USING ERRCODE = '22004';
    END IF;
    IF NOT isfinite(p_after) THEN
        RAISE EXCEPTION 'after must be a finite instant, not %', p_after USING ERRCODE = '22023';
    END IF;
    PERFORM pgautomator._check_range('n', coalesce(p_n, -1), 0, 100000);
    SELECT * INTO v_job FROM pgautomator.job j
     WHERE CASE WHEN p_id IS NOT NULL THEN j.id = p_id ELSE j.name = p_name END;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'job "%" does not exist', coalesce(p_name, p_id::text, 'NULL') USING ERRCODE = '42704';
    END IF;
    IF NOT (pgautomator._may_manage(v_job.owner) OR pgautomator._is_operator()) THEN
        RAISE EXCEPTION 'permission denied for job "%"', v_job.name USING ERRCODE = '42501';
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
        v_out := format('on cron schedule "%s"', p_s.cron);
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

-- pg_cron's shorthand: a job with one sql step running as the caller, fired
-- by a cron schedule of the same name. Calling it again with the same name
-- replaces the command and the cron expression, as pg_cron does.
CREATE FUNCTION pgautomator.schedule(name text, cron text, command text)
RETURNS bigint LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_job pgautomator.job;
    v_schedule_id bigint;
BEGIN
    PERFORM pgautomator._require_user();
    PERFORM pgautomator._check_name('job', schedule.name);
    IF NOT EXISTS (SELECT FROM pgautomator.job j WHERE j.name = schedule.name) THEN
        v_job.id := pgautomator.create_job(schedule.name, description => 'created by schedule()');
        PERFORM pgautomator.add_step(v_job.id, 'command', schedule.command);
        v_schedule_id := pgautomator.create_schedule(schedule.name, 'cron', cron => schedule.cron,
                                                     description => 'created by schedule()');
        PERFORM pgautomator.attach_schedule(v_job.id, v_schedule_id);
        RETURN v_job.id;
    END IF;
    v_job := pgautomator._job_for(NULL, schedule.name, 'manage');
    SELECT js.schedule_id INTO v_schedule_id
      FROM pgautomator.job_schedule js JOIN pgautomator.schedule s ON s.id = js.schedule_id
     WHERE js.job_id = v_job.id AND s.name = schedule.name AND s.frequency = 'cron';
    IF v_schedule_id IS NULL
       OR NOT EXISTS (SELECT FROM pgautomator.step st WHERE st.job_id = v_job.id AND st.name = 'command') THEN
        RAISE EXCEPTION 'job "%" already exists and was not created by schedule()', schedule.name
            USING ERRCODE = '23505', HINT = 'Use another name, or alter_step and alter_schedule.';
    END IF;
    PERFORM pgautomator.alter_step(v_job.id, 'command', code => schedule.command);
    PERFORM pgautomator.alter_schedule(v_schedule_id, cron => schedule.cron);
    RETURN v_job.id;
END
$$;
COMMENT ON FUNCTION pgautomator.schedule(text, text, text) IS 'pg_cron style: runs a SQL command as the caller on a cron schedule; returns the job id. The same name again replaces command and cron.';

CREATE FUNCTION pgautomator._unschedule(p_job pgautomator.job)
RETURNS boolean LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_s pgautomator.schedule;
BEGIN
    SELECT s.* INTO v_s FROM pgautomator.job_schedule js JOIN pgautomator.schedule s ON s.id = js.schedule_id
     WHERE js.job_id = p_job.id AND s.name = p_job.name;
    PERFORM pgautomator.drop_job(p_job.id);
    -- The job's own schedule goes too, unless another job uses it.
    IF v_s.id IS NOT NULL AND pgautomator._may_manage(v_s.owner)
       AND NOT EXISTS (SELECT FROM pgautomator.job_schedule js WHERE js.schedule_id = v_s.id) THEN
        DELETE FROM pgautomator.schedule WHERE id = v_s.id;
    END IF;
    RETURN true;
END
$$;
COMMENT ON FUNCTION pgautomator._unschedule(pgautomator.job) IS 'Drops a job made by schedule() and its schedule of the same name.';

CREATE FUNCTION pgautomator.unschedule(name text)
RETURNS boolean LANGUAGE sql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$ SELECT pgautomator._unschedule(pgautomator._job_for(NULL, $1, 'manage')) $$;
COMMENT ON FUNCTION pgautomator.unschedule(text) IS 'pg_cron style: drops a job (by name) made by schedule(), with its schedule of the same name.';

CREATE FUNCTION pgautomator.unschedule(job bigint)
RETURNS boolean LANGUAGE sql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$ SELECT pgautomator._unschedule(pgautomator._job_for($1, NULL, 'manage')) $$;
COMMENT ON FUNCTION pgautomator.unschedule(bigint) IS 'pg_cron style: drops a job (by id) made by schedule(), with its schedule of the same name.';

-- Schedules and jobs: attach, detach; exclusion dates and windows.

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
    PERFORM pgautomator._check_length('reason', p_reason, 10000);
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
    PERFORM pgautomator._refresh_next_fire(NULL, p_s.id, p_keep_missed => true);
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
    IF drop_exclusion.exclusion IS NULL THEN
        RAISE EXCEPTION 'exclusion must not be NULL' USING ERRCODE = '22004';
    END IF;
    SELECT e.schedule_id INTO v_schedule_id FROM pgautomator.exclusion e WHERE e.id = drop_exclusion.exclusion;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'exclusion % does not exist', coalesce(drop_exclusion.exclusion::text, 'NULL')
            USING ERRCODE = '42704';
    END IF;
    v_s := pgautomator._schedule_for(v_schedule_id, NULL, true);
    DELETE FROM pgautomator.exclusion e WHERE e.id = drop_exclusion.exclusion;
    UPDATE pgautomator.schedule SET modified_at = pg_catalog.now() WHERE id = v_s.id;
    PERFORM pgautomator._refresh_next_fire(NULL, v_s.id, p_keep_missed => true);
    PERFORM pgautomator._wake('schedule');
END
$$;
COMMENT ON FUNCTION pgautomator.drop_exclusion(bigint) IS 'Removes an exclusion from its schedule.';

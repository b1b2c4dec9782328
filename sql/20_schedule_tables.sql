-- Schedules are objects of their own, attached to jobs many-to-many.
-- Their exact semantics are in README "Schedules"; the engine that turns a
-- definition into fire instants is sql/45_schedule_engine.sql.

CREATE TABLE pgautomator.schedule (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name            text NOT NULL UNIQUE
                    CHECK (name OPERATOR(pg_catalog.~) '\S' AND pg_catalog.length(name) <= 200),
    description     text NOT NULL DEFAULT '',
    enabled         boolean NOT NULL DEFAULT true,
    owner           name NOT NULL,
    frequency       text NOT NULL
                    CHECK (frequency IN ('once', 'daily', 'weekly', 'monthly', 'monthly_relative', 'cron')),
    -- Day level: every N days / weeks / months, counted from starts_at's date.
    every           integer NOT NULL DEFAULT 1 CHECK (every BETWEEN 1 AND 1000),
    on_date         date,                    -- once
    weekdays        smallint[],              -- weekly: ISO 1 = Monday .. 7 = Sunday
    month_days      smallint[],              -- monthly: days 1..31 (skipped in shorter months)
    month_last      boolean NOT NULL DEFAULT false,                -- monthly: also the last day
    relative_week   text CHECK (relative_week IN ('first', 'second', 'third', 'fourth', 'last')),
    relative_day    text CHECK (relative_day IN ('monday', 'tuesday', 'wednesday', 'thursday', 'friday',
                                                 'saturday', 'sunday', 'day', 'weekday', 'weekend_day')),
    -- Within the day: once at at_time, or every every_n every_unit from
    -- between_start to between_end (inclusive), local wall-clock time.
    at_time         time,
    every_n         integer CHECK (every_n >= 1),
    every_unit      text CHECK (every_unit IN ('second', 'minute', 'hour')),
    between_start   time,
    between_end     time,
    cron            text,
    timezone        text NOT NULL,
    starts_at       timestamptz NOT NULL DEFAULT pg_catalog.now(),
    ends_at         timestamptz,
    created_at      timestamptz NOT NULL DEFAULT pg_catalog.now(),
    modified_at     timestamptz NOT NULL DEFAULT pg_catalog.now(),
    CHECK (ends_at IS NULL OR ends_at > starts_at),
    CHECK (weekdays OPERATOR(pg_catalog.<@) '{1,2,3,4,5,6,7}'::smallint[]),
    CHECK (month_days OPERATOR(pg_catalog.<@) '{1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20,21,22,23,24,25,26,27,28,29,30,31}'::smallint[]),
    CHECK (between_end IS NULL OR between_start IS NULL OR between_end >= between_start),
    CHECK ((every_n IS NULL) = (every_unit IS NULL))
);
COMMENT ON TABLE pgautomator.schedule IS 'When jobs run: a calendar rule, a time-of-day rule, a time zone.';

-- Dates, or date-and-time windows, on which a schedule does not fire.
CREATE TABLE pgautomator.exclusion (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    schedule_id bigint NOT NULL REFERENCES pgautomator.schedule ON DELETE CASCADE,
    on_date     date,                  -- a whole local day
    from_at     timestamptz,           -- or a window [from_at, until_at)
    until_at    timestamptz,
    reason      text NOT NULL DEFAULT '',
    CHECK ((on_date IS NOT NULL AND from_at IS NULL AND until_at IS NULL)
        OR (on_date IS NULL AND from_at IS NOT NULL AND until_at IS NOT NULL AND until_at > from_at))
);
CREATE INDEX exclusion_schedule_idx ON pgautomator.exclusion (schedule_id);

-- Which schedules fire which jobs, with the next fire instant kept current
-- so that the dispatcher finds what is due through one index range scan.
CREATE TABLE pgautomator.job_schedule (
    job_id       bigint NOT NULL REFERENCES pgautomator.job ON DELETE CASCADE,
    schedule_id  bigint NOT NULL REFERENCES pgautomator.schedule ON DELETE CASCADE,
    attached_at  timestamptz NOT NULL DEFAULT pg_catalog.now(),
    next_fire_at timestamptz,          -- NULL: never again (ended, disabled)
    last_fire_at timestamptz,
    PRIMARY KEY (job_id, schedule_id)
);
CREATE INDEX job_schedule_schedule_idx ON pgautomator.job_schedule (schedule_id);
CREATE INDEX job_schedule_due_idx ON pgautomator.job_schedule (next_fire_at) WHERE next_fire_at IS NOT NULL;

-- The time zone rules the stored fire instants were computed with: each
-- zone's tzdata file and its fingerprint, so that an update of the rules
-- (a country moves its daylight-saving dates) recomputes the instants still
-- to come, also after a restore on another machine, and a zone whose file
-- goes away keeps firing by these rules (sql/47_zone_rules.sql).
CREATE TABLE pgautomator.zone_rules (
    zone        text PRIMARY KEY,
    fingerprint text NOT NULL,          -- SHA-256 of rules, hex
    rules       bytea NOT NULL,         -- the zone's file (TZif), a few kB
    seen_at     timestamptz NOT NULL DEFAULT pg_catalog.now()
);
COMMENT ON TABLE pgautomator.zone_rules IS 'Per time zone of a schedule, the tzdata rules (TZif file) the next fire instants were computed with, and their SHA-256.';

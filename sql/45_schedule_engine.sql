-- The schedule engine: turns a schedule definition into fire instants.
-- Rules (README "Schedules"): local wall-clock times in the schedule's IANA
-- zone; a local time that does not exist (clocks jump forward) fires once at
-- the first instant after the gap; a local time that happens twice fires
-- once, at its first occurrence; instants are computed from the definition,
-- never from the last fire, so nothing drifts. PL/Python because zoneinfo
-- answers these questions exactly; the dispatcher's hot path never calls it
-- (it reads job_schedule.next_fire_at), so this runs once per fire per link.

-- Instants travel as microseconds since the Unix epoch: exact, and free of
-- DateStyle and TimeZone, which change how PL/Python sees timestamptz.
CREATE FUNCTION pgautomator._us(p_at timestamptz)
RETURNS bigint LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$ SELECT (pg_catalog.extract('epoch', p_at) * 1000000)::bigint $$;
COMMENT ON FUNCTION pgautomator._us(timestamptz) IS 'An instant as microseconds since the Unix epoch (the engine''s unit).';

CREATE FUNCTION pgautomator._from_us(p_us bigint)
RETURNS timestamptz LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $$ SELECT timestamptz 'epoch' + p_us * interval '1 microsecond' $$;
COMMENT ON FUNCTION pgautomator._from_us(bigint) IS 'Microseconds since the Unix epoch back to an instant.';

-- The engine's view of a schedule: its definition and its exclusions as JSON
-- text. Times of day and instants as microseconds; dates as ISO text.
CREATE FUNCTION pgautomator._schedule_def(p_s pgautomator.schedule)
RETURNS text LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT pg_catalog.jsonb_build_object(
        'frequency', p_s.frequency, 'every', p_s.every, 'on_date', p_s.on_date,
        'weekdays', p_s.weekdays, 'month_days', p_s.month_days, 'month_last', p_s.month_last,
        'relative_week', p_s.relative_week, 'relative_day', p_s.relative_day,
        'at_time', (pg_catalog.extract('epoch', p_s.at_time) * 1000000)::bigint,
        'every_n', p_s.every_n, 'every_unit', p_s.every_unit,
        'between_start', (pg_catalog.extract('epoch', p_s.between_start) * 1000000)::bigint,
        'between_end', (pg_catalog.extract('epoch', p_s.between_end) * 1000000)::bigint,
        'cron', p_s.cron, 'timezone', p_s.timezone,
        'starts_at', pgautomator._us(p_s.starts_at), 'ends_at', pgautomator._us(p_s.ends_at),
        'excluded_dates', (SELECT pg_catalog.jsonb_agg(e.on_date ORDER BY e.on_date)
                             FROM pgautomator.exclusion e
                            WHERE e.schedule_id = p_s.id AND e.on_date IS NOT NULL),
        'excluded_windows', (SELECT pg_catalog.jsonb_agg(pg_catalog.jsonb_build_array(
                                        pgautomator._us(e.from_at), pgautomator._us(e.until_at))
                                        ORDER BY e.from_at)
                               FROM pgautomator.exclusion e
                              WHERE e.schedule_id = p_s.id AND e.from_at IS NOT NULL))::text
$$;
COMMENT ON FUNCTION pgautomator._schedule_def(pgautomator.schedule) IS 'A schedule with its exclusions in the form the engine reads (JSON text).';

-- The next p_n fire instants strictly after p_after_us of a definition
-- (see _schedule_def), as microseconds since the epoch. Raises 22023 for a
-- definition that cannot be evaluated (bad zone, malformed cron field).
-- Parsed definitions are cached per backend keyed by their full text, so a
-- changed schedule or exclusion list is never served stale.
CREATE FUNCTION pgautomator._instants(p_def text, p_after_us bigint, p_n integer)
RETURNS bigint[] LANGUAGE plpython3u STABLE
SET search_path = pg_catalog, pg_temp
AS $python$
# A session that outlives a reinstall may hold an older engine: the tag
# changes whenever what the engine offers does.
ENGINE_TAG = 'zones-4'
E = GD.get('pgautomator_engine')
if E is None or E.get('tag') != ENGINE_TAG:
    import bisect
    import calendar
    import datetime as dt
    import io
    import json
    import os
    import re
    import stat
    import zoneinfo

    UTC = dt.timezone.utc
    EPOCH = dt.datetime(1970, 1, 1, tzinfo=UTC)
    ONE_US = dt.timedelta(microseconds=1)
    DAY_US = 86400 * 1000000
    # The search for matching days stops 400 Gregorian years (after which
    # every calendar pattern repeats) past where it starts: a rule with no
    # day there never fires (e.g. cron "0 0 30 2 *") and costs no more.
    SEARCH_DAYS = 146097
    RELATIVE_N = {'first': 1, 'second': 2, 'third': 3, 'fourth': 4, 'last': -1}
    WEEKDAY_NAMES = ['monday', 'tuesday', 'wednesday', 'thursday', 'friday', 'saturday', 'sunday']
    UNIT_US = {'second': 1000000, 'minute': 60 * 1000000, 'hour': 3600 * 1000000}
    CRON_MACROS = {'@yearly': '0 0 1 1 *', '@annually': '0 0 1 1 *', '@monthly': '0 0 1 * *',
                   '@weekly': '0 0 * * 0', '@daily': '0 0 * * *', '@midnight': '0 0 * * *',
                   '@hourly': '0 * * * *'}
    MONTH_NAMES = {n: i for i, n in enumerate(
        ['jan', 'feb', 'mar', 'apr', 'may', 'jun', 'jul', 'aug', 'sep', 'oct', 'nov', 'dec'], 1)}
    DOW_NAMES = {n: i for i, n in enumerate(['sun', 'mon', 'tue', 'wed', 'thu', 'fri', 'sat'])}
    # (name, low, high, names); a leading seconds field is optional.
    CRON_FIELDS = [('second', 0, 59, None), ('minute', 0, 59, None), ('hour', 0, 23, None),
                   ('day-of-month', 1, 31, None), ('month', 1, 12, MONTH_NAMES),
                   ('day-of-week', 0, 7, DOW_NAMES)]

    def fail(msg, hint=None):
        if hint is None:
            plpy.error(msg, sqlstate='22023')
        plpy.error(msg, hint=hint, sqlstate='22023')

    def zone_file(name):
        """The file zoneinfo reads a zone from and its stat; None when it has
        none (an invalid or unknown name) or it cannot be read.  One stat
        per root: this runs at each use of a compiled schedule."""
        if not name or name.startswith('/') or '..' in name.split('/'):
            return None
        for root in zoneinfo.TZPATH:
            path = os.path.join(root, name)
            try:
                st = os.stat(path)
            except OSError:
                continue
            if stat.S_ISREG(st.st_mode):
                return path, st
        return None

    def zone_signature(name):
        """Which file a zone's rules come from and which version of it: a
        tzdata update replaces the file (a new inode) or rewrites it.  None
        when it has none here."""
        found = zone_file(name)
        if found is None:
            return None
        path, st = found
        return (path, st.st_ino, st.st_size, st.st_mtime_ns)

    def zone_contents(name):
        """The bytes of a zone's file as zoneinfo reads it; None when it has
        no file here or the file cannot be read."""
        found = zone_file(name)
        if found is None:
            return None
        try:
            with open(found[0], 'rb') as f:
                return f.read()
        except OSError:
            return None

    def zone_parses(rules):
        """Whether the bytes of a zone file are rules zoneinfo can use."""
        try:
            zoneinfo.ZoneInfo.from_file(io.BytesIO(rules))
            return True
        except Exception:
            return False

    def zone_recorded(name):
        """The rules recorded for a zone when schedules were saved with it
        (zone_rules), for a zone whose file went away; None without."""
        if 'recorded_plan' not in E:
            E['recorded_plan'] = plpy.prepare('SELECT z.rules FROM pgautomator.zone_rules z WHERE z.zone = $1',
                                              ['text'])
        rows = plpy.execute(E['recorded_plan'], [name])
        if rows.nrows() == 0 or rows[0]['rules'] is None:
            return None
        try:
            return zoneinfo.ZoneInfo.from_file(io.BytesIO(rows[0]['rules']), key=name)
        except Exception:
            return None

    def forget_zone(name):
        """Drops what this session holds of a zone's rules and the
        definitions compiled with them: the next use reads the file again."""
        zoneinfo.ZoneInfo.clear_cache(only_keys=[name])
        E['zones'].pop(name, None)
        cache = E['cache']
        for text in [t for t, s in cache.items() if s.zone_name == name]:
            del cache[text]

    def zone_stale(name, signature):
        """Whether rules read with this signature are outdated.  A file that
        went away (a zone moved to another package) is no reason to drop the
        rules already read: they stay until the file comes back."""
        now = zone_signature(name)
        return now is not None and now != signature

    def zone_of(name):
        """A zone's rules, read again when its file changed since; those
        recorded with its schedules when its file is gone or broken (a zone
        moved to another package): it keeps firing, and so does every other
        zone."""
        # right/ zones count leap seconds, which timestamptz does not (and
        # their files end without rules for later years: summer time for
        # ever); the others follow the host or no place at all.
        if name and (name.startswith('right/') or name in ('posixrules', 'localtime', 'Factory')):
            fail('time zone "%s" is not supported' % name,
                 hint='Use an IANA time zone name such as Europe/Berlin or UTC.')
        held = E['zones'].get(name)
        if held is not None and not zone_stale(name, held[0]):
            return held
        if held is not None:
            forget_zone(name)
        signature = zone_signature(name)    # (before reading it)
        try:
            # (not zoneinfo's own cache, which may hold the rules read
            # before an update: E['zones'] is the cache)
            zone = zoneinfo.ZoneInfo.no_cache(name)
        except Exception:
            # held without a signature: a file that comes back, or is
            # mended, is read at the next use
            zone, signature = (zone_recorded(name) if name else None), None
        if zone is None:
            fail('unknown time zone "%s"' % name,
                 hint='Use an IANA time zone name such as Europe/Berlin or UTC.')
        E['zones'][name] = (signature, zone)
        return E['zones'][name]

    def local_to_utc(zone, naive):
        """The instant of a local wall time: its first occurrence when it
        happens twice, the first instant after the gap when it does not exist."""
        first = naive.replace(tzinfo=zone).astimezone(UTC)   # fold=0: earlier offset
        if first.astimezone(zone).replace(tzinfo=None) == naive:
            return first
        # In a gap: the transition lies in (post-offset reading, pre-offset reading].
        other = naive.replace(tzinfo=zone, fold=1).astimezone(UTC)
        lo = (min(first, other) - EPOCH) // ONE_US
        hi = (max(first, other) - EPOCH) // ONE_US
        while hi - lo > 1:  # invariant: wall(lo) < naive < wall(hi)
            mid = (lo + hi) // 2
            at = EPOCH + dt.timedelta(microseconds=mid)
            if at.astimezone(zone).replace(tzinfo=None) > naive:
                hi = mid
            else:
                lo = mid
        return EPOCH + dt.timedelta(microseconds=hi)

    class Arith:
        """Times of day first, first+step, ... (count of them), in microseconds."""
        __slots__ = ('first', 'step', 'count')

        def __init__(self, first, step, count):
            self.first, self.step, self.count = first, step, count

        def __len__(self):
            return self.count

        def __getitem__(self, k):
            return self.first + k * self.step

    class Product:
        """Cron times of day: every (hour, minute, second) combination, in order."""
        __slots__ = ('h', 'm', 's', 'ms', 'count')

        def __init__(self, hours, minutes, seconds):
            self.h, self.m, self.s = hours, minutes, seconds
            self.ms = len(minutes) * len(seconds)
            self.count = len(hours) * self.ms

        def __len__(self):
            return self.count

        def __getitem__(self, k):
            h, r = divmod(k, self.ms)
            m, s = divmod(r, len(self.s))
            return ((self.h[h] * 60 + self.m[m]) * 60 + self.s[s]) * 1000000

    def cron_field(expr, index, text):
        name, low, high, names = CRON_FIELDS[index]

        def value(tok):
            t = tok.lower()
            if names is not None and t in names:
                return names[t]
            if not re.fullmatch(r'[0-9]{1,2}', t):
                fail('invalid cron expression "%s": %s field value "%s" is not a number%s'
                     % (expr, name, tok, ' or a name' if names else ''))
            v = int(t)
            if not low <= v <= high:
                fail('invalid cron expression "%s": %s field value "%s" is out of range %d-%d'
                     % (expr, name, tok, low, high))
            return v

        result, last = set(), False
        for item in text.split(','):
            if item == '$' and name == 'day-of-month':
                last = True
                continue
            m = re.fullmatch(r'([^/-]+)(?:-([^/-]+))?(?:/([0-9]+))?', item)
            if m is None:
                fail('invalid cron expression "%s": %s field "%s" is malformed' % (expr, name, item))
            a, b, step = m.group(1), m.group(2), m.group(3)
            if a == '*':
                if b is not None:
                    fail('invalid cron expression "%s": %s field "%s" is malformed' % (expr, name, item))
                lo, hi = low, high
            else:
                lo = value(a)
                # "a/s" means from a to the end, stepping s.
                hi = value(b) if b is not None else (high if step is not None else lo)
            if step is not None:
                st = int(step)
                if st < 1:
                    fail('invalid cron expression "%s": %s field step "%s" must be at least 1'
                         % (expr, name, step))
            else:
                st = 1
            if hi < lo:
                fail('invalid cron expression "%s": %s field range "%s" runs backwards'
                     % (expr, name, item))
            result.update(range(lo, hi + 1, st))
        if name == 'day-of-week' and 7 in result:
            result.discard(7)
            result.add(0)
        return result, last

    def parse_cron(expr):
        text = expr.strip()
        m = re.fullmatch(r'([0-9]+)\s*seconds?', text, re.IGNORECASE)
        if m:  # pg_cron's interval form
            n = int(m.group(1))
            if not 1 <= n <= 59:
                fail('invalid cron expression "%s": seconds must be between 1 and 59, not %d' % (expr, n))
            text = '*/%d * * * * *' % n
        elif text.startswith('@'):
            macro = CRON_MACROS.get(text.lower())
            if macro is None:
                fail('invalid cron expression "%s": unknown macro' % expr,
                     hint='Use @yearly, @annually, @monthly, @weekly, @daily, @midnight or @hourly.')
            text = macro
        parts = text.split()
        if len(parts) == 5:
            parts = ['0'] + parts
        elif len(parts) != 6:
            fail('invalid cron expression "%s": it has %d fields' % (expr, len(parts)),
                 hint='Use five fields (minute hour day-of-month month day-of-week), '
                      'optionally preceded by a seconds field.')
        sets = [cron_field(expr, i, p) for i, p in enumerate(parts)]
        return {
            'seconds': sorted(sets[0][0]), 'minutes': sorted(sets[1][0]), 'hours': sorted(sets[2][0]),
            'times': Product(sorted(sets[2][0]), sorted(sets[1][0]), sorted(sets[0][0])),
            'dom': sets[3][0], 'dom_last': sets[3][1], 'months': sorted(sets[4][0]), 'dow': sets[5][0],
            # Vixie cron: a field starting with "*" counts as unrestricted; when
            # both day fields are restricted, a day matching either one fires.
            'either': not parts[3].startswith('*') and not parts[5].startswith('*'),
        }

    # --- cron in plain English, for the common shapes (None otherwise) ---
    DOW_FULL = ['Sunday', 'Monday', 'Tuesday', 'Wednesday', 'Thursday', 'Friday', 'Saturday']
    MONTH_FULL = ['January', 'February', 'March', 'April', 'May', 'June', 'July', 'August',
                  'September', 'October', 'November', 'December']

    def and_list(items):
        items = list(items)
        return items[0] if len(items) == 1 else ', '.join(items[:-1]) + ' and ' + items[-1]

    def even_step(vals, low, high):
        """k when vals are low, low+k, ... through the whole field, k dividing its size."""
        if len(vals) < 2 or vals[0] != low:
            return None
        k = vals[1] - vals[0]
        if (high - low + 1) % k or vals != list(range(low, high + 1, k)):
            return None
        return k

    def hhmm(h, m, sec):
        return '%02d:%02d' % (h, m) + (':%02d' % sec if sec else '')

    def cron_time(c):
        S, M, H = c['seconds'], c['minutes'], c['hours']
        all_h = H == list(range(24))
        window = '' if all_h else ' from %02d:00 to %02d:59' % (H[0], H[-1])
        contiguous = H == list(range(H[0], H[-1] + 1))
        if len(S) == 1 and len(M) == 1:
            if len(H) <= 4:
                return 'at ' + and_list(hhmm(h, M[0], S[0]) for h in H), False
            k = even_step(H, 0, 23)
            if k and M == [0] and S == [0]:
                return ('every hour' if k == 1 else 'every %d hours' % k), True
            if all_h:
                if S[0]:
                    return 'at %02d:%02d past every hour' % (M[0], S[0]), True
                return 'at minute %d of every hour' % M[0], True
            return None, False
        k = even_step(M, 0, 59)
        if S == [0] and k and contiguous:
            return ('every minute' if k == 1 else 'every %d minutes' % k) + window, True
        k = even_step(S, 0, 59)
        if k and M == list(range(60)) and contiguous:
            return ('every second' if k == 1 else 'every %d seconds' % k) + window, True
        return None, False

    def cron_days(c):
        dom = sorted(c['dom'])
        dom_all, dow_all = dom == list(range(1, 32)) and not c['dom_last'], c['dow'] == set(range(7))
        dow = [d for d in (1, 2, 3, 4, 5, 6, 0) if d in c['dow']]
        days = ('weekdays' if dow == [1, 2, 3, 4, 5] else 'weekends' if dow == [6, 0]
                else and_list(DOW_FULL[d] for d in dow))
        items = [str(d) for d in dom] + (['the last day'] if c['dom_last'] else [])
        dom_text = ('day ' if len(dom) == 1 else 'days ' if dom else '') + and_list(items) + ' of the month'
        if (c['either'] and (dom_all or dow_all)) or (dom_all and dow_all):
            text = 'every day'
        elif c['either']:
            text = 'on %s and on %s' % (dom_text, days)
        elif dom_all:
            text = 'on ' + days
        elif dow_all:
            text = 'on ' + dom_text
        else:
            text = 'on %s when it is %s' % (dom_text, days if dow in ([1, 2, 3, 4, 5], [6, 0]) else 'a ' + days.replace(' and ', ' or '))
        if c['months'] != list(range(1, 13)):
            text += ' in ' + and_list(MONTH_FULL[m - 1] for m in c['months'])
        return text

    def describe_cron(expr):
        c = parse_cron(expr)
        when, repeating = cron_time(c)
        if when is None:
            return None
        days = cron_days(c)
        return when if repeating and days == 'every day' else when + ' ' + days

    def month_of(index):
        return index // 12, index % 12 + 1

    class Schedule:
        def __init__(self, d):
            self.zone_name = d['timezone']
            self.zone_sig, self.zone = zone_of(self.zone_name)
            self.freq = d['frequency']
            self.every = d.get('every') or 1
            self.start_us = d['starts_at']
            self.start = EPOCH + dt.timedelta(microseconds=d['starts_at'])
            self.end = None if d.get('ends_at') is None else EPOCH + dt.timedelta(microseconds=d['ends_at'])
            self.start_date = self.start.astimezone(self.zone).date()
            self.excluded_dates = frozenset(dt.date.fromisoformat(x) for x in (d.get('excluded_dates') or []))
            # Disjoint and sorted (overlapping or adjacent ones merged), found
            # by bisection: a candidate costs log W, and a chain of windows
            # is passed over in one step, not one restart each.
            merged = []
            for a, b in sorted(d.get('excluded_windows') or []):
                if merged and a <= merged[-1][1]:
                    merged[-1][1] = max(merged[-1][1], b)
                else:
                    merged.append([a, b])
            self.window_starts = [EPOCH + dt.timedelta(microseconds=a) for a, _ in merged]
            self.window_ends = [EPOCH + dt.timedelta(microseconds=b) for _, b in merged]
            if self.freq == 'cron':
                if not d.get('cron'):
                    fail('cron must be given for frequency cron')
                self.cron = parse_cron(d['cron'])
                self.times = self.cron['times']
            else:
                if d.get('every_n') is not None:
                    step = d['every_n'] * UNIT_US[d['every_unit']]
                    first = d.get('between_start') or 0
                    last = d['between_end'] if d.get('between_end') is not None else DAY_US - 1
                    if last < first:
                        fail('between_end must not be before between_start')
                    self.times = Arith(first, step, (last - first) // step + 1)
                else:
                    self.times = Arith(d.get('at_time') or 0, 1, 1)
            if self.freq == 'once':
                self.on_date = dt.date.fromisoformat(d['on_date'])
            elif self.freq == 'weekly':
                self.weekdays = sorted(set(d['weekdays']))
                if not self.weekdays:
                    fail('weekdays must list at least one day')
            elif self.freq == 'monthly':
                self.month_days = sorted(set(d.get('month_days') or []))
                self.month_last = bool(d.get('month_last'))
                if not self.month_days and not self.month_last:
                    fail('month_days must list at least one day')
            elif self.freq == 'monthly_relative':
                self.rel_n = RELATIVE_N[d['relative_week']]
                self.rel_day = d['relative_day']

        # --- days on which the rule fires, ascending, from d0 on ---
        def dates(self, d0):
            limit = min(d0 + dt.timedelta(days=SEARCH_DAYS), dt.date(9998, 12, 31))
            if self.end is not None:
                limit = min(limit, self.end.astimezone(self.zone).date() + dt.timedelta(days=1))
            for d in self._dates(d0, limit):
                if d > limit:
                    return
                yield d

        def _dates(self, d0, limit):
            f, n = self.freq, self.every
            if f == 'once':
                if self.on_date >= d0:
                    yield self.on_date
            elif f == 'daily':
                base = self.start_date
                k = max(0, -((base - d0).days // n))   # ceil((d0 - base) / n)
                d = base + dt.timedelta(days=k * n)
                while d <= limit:
                    yield d
                    d += dt.timedelta(days=n)
            elif f == 'weekly':
                base = self.start_date - dt.timedelta(days=self.start_date.weekday())
                monday = d0 - dt.timedelta(days=d0.weekday())
                k = max(0, -((base - monday).days // (7 * n)))
                monday = base + dt.timedelta(days=7 * k * n)
                while monday <= limit:
                    for wd in self.weekdays:
                        d = monday + dt.timedelta(days=wd - 1)
                        if d >= d0:
                            yield d
                    monday += dt.timedelta(days=7 * n)
            elif f in ('monthly', 'monthly_relative'):
                base = self.start_date.year * 12 + self.start_date.month - 1
                m0 = d0.year * 12 + d0.month - 1
                k = max(0, -((base - m0) // n))
                index = base + k * n
                while index <= limit.year * 12 + limit.month - 1:
                    y, m = month_of(index)
                    for day in self._month_days(y, m):
                        d = dt.date(y, m, day)
                        if d >= d0:
                            yield d
                    index += n
            else:  # cron
                c = self.cron
                for y in range(d0.year, limit.year + 1):
                    for m in c['months']:
                        if (y, m) < (d0.year, d0.month):
                            continue
                        first_wd, ndays = calendar.monthrange(y, m)
                        for day in range(1, ndays + 1):
                            dom_ok = day in c['dom'] or (c['dom_last'] and day == ndays)
                            dow_ok = (first_wd + day) % 7 in c['dow']   # Sunday = 0
                            if (dom_ok or dow_ok) if c['either'] else (dom_ok and dow_ok):
                                d = dt.date(y, m, day)
                                if d >= d0:
                                    yield d

        def _month_days(self, y, m):
            first_wd, ndays = calendar.monthrange(y, m)   # Monday = 0
            if self.freq == 'monthly':
                days = [x for x in self.month_days if x <= ndays]
                if self.month_last and ndays not in days:
                    days.append(ndays)
                return sorted(days)
            r, n = self.rel_day, self.rel_n
            if r == 'day':
                return [ndays if n == -1 else n]
            if r in ('weekday', 'weekend_day'):
                want = r == 'weekday'
                days = [x for x in range(1, ndays + 1) if ((first_wd + x - 1) % 7 < 5) == want]
                return [days[-1] if n == -1 else days[n - 1]]
            wd = WEEKDAY_NAMES.index(r)
            if n == -1:
                last_wd = (first_wd + ndays - 1) % 7
                return [ndays - (last_wd - wd) % 7]
            return [1 + (wd - first_wd) % 7 + 7 * (n - 1)]

        # --- instants ---
        def raw_after(self, lower):
            """Fire instants > lower from the day rule and the times of day,
            ascending (equal instants possible after a gap), before any filter."""
            times = self.times
            count = len(times)
            if count == 0:
                return
            # A day's times can land on the next day after a gap: start early.
            d0 = lower.astimezone(self.zone).date() - dt.timedelta(days=2)
            for d in self.dates(d0):
                midnight = dt.datetime(d.year, d.month, d.day)

                def at(k):
                    return local_to_utc(self.zone, midnight + dt.timedelta(microseconds=times[k]))
                if at(count - 1) <= lower:
                    continue
                lo, hi = -1, count - 1   # first k with at(k) > lower lies in (lo, hi]
                while hi - lo > 1:
                    mid = (lo + hi) // 2
                    if at(mid) > lower:
                        hi = mid
                    else:
                        lo = mid
                for k in range(hi, count):
                    yield at(k)

        def after(self, after, n):
            out = []
            lower = max(after, self.start - ONE_US)   # fires at or after starts_at
            while len(out) < n:
                moved = None
                for at in self.raw_after(lower):
                    if self.end is not None and at > self.end:
                        return out
                    if out and at <= out[-1]:
                        continue
                    w = bisect.bisect_right(self.window_starts, at) - 1
                    if w >= 0 and at < self.window_ends[w]:
                        moved = self.window_ends[w] - ONE_US
                        break
                    day = at.astimezone(self.zone).date()
                    if day in self.excluded_dates:
                        nxt = day + dt.timedelta(days=1)
                        while nxt in self.excluded_dates:   # a run of dates in one step
                            nxt += dt.timedelta(days=1)
                        moved = local_to_utc(self.zone, dt.datetime(nxt.year, nxt.month, nxt.day)) - ONE_US
                        moved = max(moved, at)
                        break
                    out.append(at)
                    if len(out) >= n:
                        return out
                if moved is None:
                    return out
                lower = moved
            return out

    def compile_def(text):
        cache = E['cache']
        s = cache.get(text)
        # Rules read before a tzdata update are stale: a stat of the zone's
        # file at each use tells, in every session, however long it lives.
        if s is not None and zone_stale(s.zone_name, s.zone_sig):
            forget_zone(s.zone_name)
            s = None
        if s is None:
            if len(cache) > 10000:
                cache.clear()
            s = Schedule(json.loads(text))
            cache[text] = s
        return s

    def instants(text, after_us, n):
        s = compile_def(text)
        # Nothing fires before starts_at: an earlier instant is as good.
        after_us = max(after_us, s.start_us - 1)
        try:
            found = s.after(EPOCH + dt.timedelta(microseconds=after_us), n)
        except OverflowError:   # past the year 9999: nothing more
            found = []
        return [(x - EPOCH) // ONE_US for x in found]

    E = GD['pgautomator_engine'] = {'tag': ENGINE_TAG, 'cache': {}, 'zones': {},
                                    'instants': instants, 'compile': compile_def,
                                    'describe_cron': describe_cron, 'zone_contents': zone_contents,
                                    'zone_parses': zone_parses,
                                    'forget_zone': forget_zone}

if p_def is None or p_after_us is None:
    return None
return E['instants'](p_def, p_after_us, max(0, p_n or 0))
$python$;
COMMENT ON FUNCTION pgautomator._instants(text, bigint, integer) IS 'The engine: the next n fire instants (epoch microseconds) of a schedule definition strictly after an instant.';

-- A cron expression in plain English when it has a common shape, else NULL.
CREATE FUNCTION pgautomator._describe_cron(p_cron text)
RETURNS text LANGUAGE plpython3u STABLE STRICT
SET search_path = pg_catalog, pg_temp
AS $python$
if 'pgautomator_engine' not in GD:   # the engine lives in _instants
    plpy.execute('SELECT pgautomator._instants(NULL, NULL, NULL)')
return GD['pgautomator_engine']['describe_cron'](p_cron)
$python$;
COMMENT ON FUNCTION pgautomator._describe_cron(text) IS 'A cron expression in plain English for the common shapes (NULL for others).';

CREATE FUNCTION pgautomator._fire_times(p_schedule_id bigint, p_after timestamptz, p_n integer)
RETURNS SETOF timestamptz LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
    SELECT pgautomator._from_us(x)
      FROM pgautomator.schedule s,
           pg_catalog.unnest(pgautomator._instants(pgautomator._schedule_def(s), pgautomator._us(p_after), p_n)) AS x
     WHERE s.id = p_schedule_id
$$;
COMMENT ON FUNCTION pgautomator._fire_times(bigint, timestamptz, integer) IS 'The next n fire instants of a schedule strictly after an instant (enabled or not).';

CREATE FUNCTION pgautomator._next_fire(p_schedule_id bigint, p_after timestamptz)
RETURNS timestamptz LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$ SELECT pgautomator._fire_times(p_schedule_id, p_after, 1) LIMIT 1 $$;
COMMENT ON FUNCTION pgautomator._next_fire(bigint, timestamptz) IS 'The first fire instant of a schedule strictly after an instant; NULL: never again. Ignores enabled.';

-- Recomputes job_schedule.next_fire_at for the matching links (NULL = all):
-- once per schedule, however many jobs it fires.
-- p_keep_missed (a schedule's rule or exclusions changed): a link whose
-- next instant is already past (the launcher is down, or behind) is
-- computed again from that instant, not from now, so that the instants it
-- missed still meet the job's misfire policy when the launcher comes.
-- Enabling a job or a schedule starts from now (its documented rule).
CREATE FUNCTION pgautomator._refresh_next_fire(p_job_id bigint DEFAULT NULL, p_schedule_id bigint DEFAULT NULL,
                                               p_after timestamptz DEFAULT pg_catalog.now(),
                                               p_keep_missed boolean DEFAULT false)
RETURNS void LANGUAGE sql
SET search_path = pg_catalog, pg_temp
AS $$
    WITH links AS (
        SELECT js.job_id, js.schedule_id, js.next_fire_at, js.last_fire_at FROM pgautomator.job_schedule js
         WHERE (p_job_id IS NULL OR js.job_id = p_job_id)
           AND (p_schedule_id IS NULL OR js.schedule_id = p_schedule_id)
    ), nxt AS MATERIALIZED (   -- once per schedule, not per link
        SELECT s.id, s.enabled, pgautomator._schedule_def(s) AS def
          FROM pgautomator.schedule s
         WHERE s.id IN (SELECT l.schedule_id FROM links l)
    ), nxt_now AS MATERIALIZED (
        SELECT nxt.id, CASE WHEN nxt.enabled THEN pgautomator._from_us(
                   (pgautomator._instants(nxt.def, pgautomator._us(p_after), 1))[1]) END AS at
          FROM nxt
    )
    UPDATE pgautomator.job_schedule js
       SET next_fire_at = CASE
               WHEN p_keep_missed AND nxt.enabled AND l.next_fire_at < p_after THEN
                   pgautomator._from_us((pgautomator._instants(nxt.def, pgautomator._us(
                       greatest(l.last_fire_at, l.next_fire_at - interval '1 microsecond')), 1))[1])
               ELSE nxt_now.at END
      FROM links l JOIN nxt ON nxt.id = l.schedule_id JOIN nxt_now ON nxt_now.id = l.schedule_id
     WHERE js.job_id = l.job_id AND js.schedule_id = l.schedule_id;
$$;
COMMENT ON FUNCTION pgautomator._refresh_next_fire(bigint, bigint, timestamptz, boolean) IS 'Recomputes the next fire instant of the matching job-schedule links (NULL argument = all); NULL when the schedule is disabled or ended; with p_keep_missed, a link already past keeps its missed instants for the misfire policy.';

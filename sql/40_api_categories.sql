-- Categories: user-defined groups of jobs. Managed by admins.

CREATE FUNCTION pgautomator.create_category(name text, description text DEFAULT '')
RETURNS bigint LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
    v_id bigint;
BEGIN
    PERFORM pgautomator._require_admin('create categories');
    PERFORM pgautomator._check_name('category', create_category.name);
    PERFORM pgautomator._check_length('description', create_category.description, 10000);
    INSERT INTO pgautomator.category (name, description)
    VALUES (create_category.name, coalesce(create_category.description, ''))
    RETURNING id INTO v_id;
    RETURN v_id;
EXCEPTION WHEN unique_violation THEN
    RAISE EXCEPTION 'category "%" already exists', create_category.name USING ERRCODE = '23505';
END
$$;
COMMENT ON FUNCTION pgautomator.create_category(text, text) IS 'Creates a job category and returns its id.';

CREATE FUNCTION pgautomator.drop_category(category text)
RETURNS void LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    PERFORM pgautomator._require_admin('drop categories');
    IF drop_category.category IS NULL THEN
        RAISE EXCEPTION 'category must not be NULL' USING ERRCODE = '22004';
    END IF;
    -- Jobs in the category keep existing, uncategorised (ON DELETE SET NULL).
    DELETE FROM pgautomator.category WHERE id = pgautomator._category_id(drop_category.category);
END
$$;
COMMENT ON FUNCTION pgautomator.drop_category(text) IS 'Drops a category by name; its jobs become uncategorised.';

CREATE FUNCTION pgautomator.drop_category(category bigint)
RETURNS void LANGUAGE plpgsql SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
    PERFORM pgautomator._require_admin('drop categories');
    IF drop_category.category IS NULL THEN
        RAISE EXCEPTION 'category must not be NULL' USING ERRCODE = '22004';
    END IF;
    DELETE FROM pgautomator.category WHERE id = drop_category.category;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'category % does not exist', drop_category.category USING ERRCODE = '42704';
    END IF;
END
$$;
COMMENT ON FUNCTION pgautomator.drop_category(bigint) IS 'Drops a category by id; its jobs become uncategorised.';

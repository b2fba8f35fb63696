-- hostile_names.sql - object names and literals that attack a restore.
--
-- Every kind of schema object a restore rebuilds (schemas, types, tables,
-- columns, indexes, constraints, sequences, functions, triggers, policies,
-- comments) has a name holding what a line-based SQL splitter would get
-- wrong: ';' at the end of a line, newlines, '--', '/*', '*/', '"', "'",
-- '$$', backslashes, and whole lines that imitate pg_dump's
-- "-- Name: …; Type: …" entry headers. Several names and string literals
-- carry a complete statement ("CREATE TABLE public.pwned_…()") placed so
-- that a splitter cutting at line ends would run it on its own. A correct
-- restore reproduces the database exactly, names included, and creates no
-- table called pwned_*.
--
-- Load it into an empty database (PostgreSQL 15+, no extensions):
--     psql -X -q -v ON_ERROR_STOP=1 -d x -f hostile_names.sql
-- Deterministic; not idempotent.

SET client_min_messages = warning;

DO $fixture$
DECLARE
    nl constant text := chr(10);
    -- Each name stays within 63 bytes (NAMEDATALEN - 1): longer ones would be truncated.
    schema_name constant text := 'evil' || nl || '-- Name: s; Type: SCHEMA; Schema: -; Owner: x';
    type_name constant text := 'mood;' || nl || 'CREATE TABLE public.pwned_type();' || nl;
    table_name constant text := 'rec;' || nl || 'CREATE TABLE public.pwned_table();';
    column_a constant text := 'a"b''c;' || nl || '--';
    column_b constant text := 'x/*y*/z $$ \ w';
    index_name constant text := 'i;' || nl || 'CREATE TABLE public.pwned_index();' || nl || '--';
    header_index constant text := 'j' || nl || '-- Name: k; Type: INDEX; Schema: public; Owner: x';
    check_name constant text := 'chk;' || nl || 'CREATE TABLE public.pwned_check();';
    unique_name constant text := 'u' || nl || '-- Name: u; Type: FK CONSTRAINT; Schema: -; Owner:';
    fk_name constant text := 'fk;' || nl || 'CREATE TABLE public.pwned_fk();' || nl;
    sequence_name constant text := 'seq;' || nl || 'CREATE TABLE public.pwned_seq();';
    function_name constant text := 'f$$;' || nl || 'CREATE TABLE public.pwned_fn();' || nl || '$$';
    trigger_name constant text := 't;' || nl || 'CREATE TABLE public.pwned_trigger();';
    policy_name constant text := 'p;' || nl || '\restrict x' || nl || 'CREATE TABLE public.pwned_p();';
    child_name constant text := 'child */ /* ;' || nl || 'CREATE TABLE public.pwned_child();';
    view_name constant text := 'v;' || nl || '-- Name: v; Type: VIEW; Schema: public; Owner: x';
    -- A string literal with the same tricks, in a comment, a default and a check.
    literal constant text := 'it''s;' || nl || '-- Name: l; Type: INDEX; Schema: public; Owner: x'
        || nl || 'CREATE TABLE public.pwned_literal();' || nl || '$$ /* \';
    s text := format('%I', schema_name);
BEGIN
    EXECUTE format('CREATE SCHEMA %s', s);
    EXECUTE format('COMMENT ON SCHEMA %s IS %L', s, literal);
    EXECUTE format('CREATE TYPE %s.%I AS ENUM (%L, %L)', s, type_name, 'ok', 'x;' || nl || 'CREATE TABLE public.pwned_enum();');
    EXECUTE format('CREATE SEQUENCE %s.%I START 100', s, sequence_name);
    EXECUTE format(
        'CREATE TABLE %1$s.%2$I (id integer PRIMARY KEY, %3$I text DEFAULT %4$L, %5$I %1$s.%6$I,'
        ' n bigint DEFAULT nextval(%7$L::regclass), CONSTRAINT %8$I CHECK (%3$I <> %9$L))',
        s, table_name, column_a, literal, column_b, type_name,
        s || '.' || format('%I', sequence_name), check_name, literal || 'x');
    EXECUTE format('ALTER SEQUENCE %s.%I OWNED BY %s.%I.n', s, sequence_name, s, table_name);
    EXECUTE format('COMMENT ON TABLE %s.%I IS %L', s, table_name, literal);
    EXECUTE format('COMMENT ON COLUMN %s.%I.%I IS %L', s, table_name, column_a, literal);
    EXECUTE format('CREATE INDEX %I ON %s.%I (%I)', index_name, s, table_name, column_a);
    EXECUTE format('CREATE INDEX %I ON %s.%I ((%I || %L))', header_index, s, table_name, column_a, literal);
    EXECUTE format('ALTER TABLE %s.%I ADD CONSTRAINT %I UNIQUE (%I, id)', s, table_name, unique_name, column_a);
    EXECUTE format(
        'CREATE TABLE %1$s.%2$I (id integer, rec_id integer, note text, CONSTRAINT %3$I FOREIGN KEY (rec_id) REFERENCES %1$s.%4$I (id))',
        s, child_name, fk_name, table_name);
    EXECUTE format('CREATE INDEX ON %s.%I (note)', s, child_name);
    EXECUTE format(
        'CREATE FUNCTION %1$s.%2$I() RETURNS trigger LANGUAGE plpgsql AS %3$s',
        s, function_name,
        '$body$' || nl || 'BEGIN' || nl || '  NEW.note := coalesce(NEW.note, '
            || quote_literal(literal) || ');' || nl || '  RETURN NEW;' || nl || 'END;' || nl || '$body$');
    EXECUTE format('COMMENT ON FUNCTION %s.%I() IS %L', s, function_name, literal);
    EXECUTE format(
        'CREATE TRIGGER %I BEFORE INSERT ON %s.%I FOR EACH ROW EXECUTE FUNCTION %s.%I()',
        trigger_name, s, child_name, s, function_name);
    EXECUTE format('ALTER TABLE %s.%I ENABLE ROW LEVEL SECURITY', s, child_name);
    EXECUTE format('CREATE POLICY %I ON %s.%I USING (note <> %L)', policy_name, s, child_name, literal);
    EXECUTE format('CREATE VIEW %s.%I AS SELECT id, %I AS "%s" FROM %s.%I', s, view_name, column_a, literal, s, table_name);

    -- Rows: they hold the same hostile text (COPY carries it as data).
    EXECUTE format('INSERT INTO %s.%I (id, %I, %I) SELECT g, %L || g, %L FROM generate_series(1, 50) g',
        s, table_name, column_a, column_b, literal, 'ok');
    EXECUTE format('INSERT INTO %s.%I (id, rec_id, note) SELECT g, g, CASE WHEN g %% 2 = 0 THEN %L END FROM generate_series(1, 20) g',
        s, child_name, literal);
    -- A second table in public, so that --table can leave the hostile ones out.
    CREATE TABLE public.plain (id integer PRIMARY KEY, label text);
    INSERT INTO public.plain SELECT g, 'row ' || g FROM generate_series(1, 10) g;
    EXECUTE format('COMMENT ON TABLE public.plain IS %L', literal);
END
$fixture$;

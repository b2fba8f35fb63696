-- Tables whose column types binary COPY carries exactly, and tables whose
-- types it does not (user-defined types, whose binary form names them by
-- OID or is the extension's own), for the COPY format tests
-- (CopyFormatTests): `arca backup --copy-format auto` copies the first kind
-- in binary and the second as text. Needs the contrib extensions citext
-- and hstore. Plain SQL, deterministic, ASCII only.

CREATE EXTENSION citext;
CREATE EXTENSION hstore;
CREATE SCHEMA kinds;

CREATE TYPE kinds.mood AS ENUM ('sad', 'ok', 'happy');
CREATE TYPE kinds.dose AS (amount numeric(8,2), unit text);
CREATE DOMAIN kinds.positive AS integer CHECK (VALUE > 0);
CREATE DOMAIN kinds.short_text AS varchar(20);
CREATE DOMAIN kinds.positive_again AS kinds.positive;
CREATE DOMAIN kinds.int_list AS integer[];
CREATE DOMAIN kinds.mood_domain AS kinds.mood;
CREATE TYPE kinds.floatrange AS RANGE (subtype = float8);

-- Built-in types only, domains over them and arrays of them: binary.
CREATE TABLE kinds.builtin (
    id integer PRIMARY KEY,
    name text,
    tags text[],
    matrix integer[][],
    body jsonb,
    raw bytea,
    amount numeric,
    at timestamptz,
    span interval,
    period tstzrange,
    periods int4multirange,
    point_at point,
    address inet,
    ident uuid,
    bits varbit,
    words tsvector
);
INSERT INTO kinds.builtin
SELECT g, 'name ' || g || E'\t\\ tab', ARRAY['a' || g, NULL, E'q"uote'], ARRAY[[g, g + 1], [g + 2, NULL]],
       jsonb_build_object('n', g, 'list', jsonb_build_array(g, 'x', NULL)), decode(md5(g::text), 'hex'),
       (g * 1.5)::numeric / 7, timestamptz '2024-01-01 00:00:00+00' + g * interval '1 hour 3 seconds',
       make_interval(days => g, secs => g / 3.0), tstzrange('2024-01-01 00:00+00', '2024-01-01 00:00+00'::timestamptz + g * interval '1 day'),
       int4multirange(int4range(g, g + 2), int4range(g + 5, g + 9)), point(g, -g / 3.0), ('10.0.' || (g % 250) || '.1')::inet,
       md5(g::text)::uuid, (g::bit(12))::varbit, to_tsvector('simple', 'word ' || g)
  FROM generate_series(1, 2000) g;
INSERT INTO kinds.builtin (id) VALUES (0);

CREATE TABLE kinds.domains (
    id kinds.positive PRIMARY KEY,
    label kinds.short_text,
    again kinds.positive_again,
    list kinds.int_list,
    stamp information_schema.time_stamp
);
INSERT INTO kinds.domains
SELECT g, 'label ' || g, g + 1, ARRAY[g, g * 2], timestamptz '2024-06-01 12:00:00+00' + g * interval '1 minute'
  FROM generate_series(1, 500) g;

-- Each of these has one column binary COPY cannot carry exactly: text.
CREATE TABLE kinds.enums (id integer PRIMARY KEY, feeling kinds.mood, feelings kinds.mood[]);
INSERT INTO kinds.enums SELECT g, (ARRAY['sad', 'ok', 'happy'])[g % 3 + 1]::kinds.mood, ARRAY['ok', 'happy']::kinds.mood[]
  FROM generate_series(1, 300) g;

CREATE TABLE kinds.composites (id integer PRIMARY KEY, dose kinds.dose, doses kinds.dose[]);
INSERT INTO kinds.composites SELECT g, ROW(g / 4.0, 'mg')::kinds.dose, ARRAY[ROW(g, 'ml')::kinds.dose, NULL]
  FROM generate_series(1, 300) g;

CREATE TABLE kinds.domain_arrays (id integer PRIMARY KEY, values_ kinds.positive[], moods kinds.mood_domain);
INSERT INTO kinds.domain_arrays SELECT g, ARRAY[g, g + 1]::kinds.positive[], 'happy' FROM generate_series(1, 300) g;

CREATE TABLE kinds.extensions (id integer PRIMARY KEY, email citext, attributes hstore, emails citext[]);
INSERT INTO kinds.extensions
SELECT g, 'User' || g || '@Example.org', hstore(ARRAY['k' || g, 'v"' || g, 'empty', NULL]), ARRAY['A' || g]::citext[]
  FROM generate_series(1, 300) g;

CREATE TABLE kinds.user_range (id integer PRIMARY KEY, span kinds.floatrange);
INSERT INTO kinds.user_range SELECT g, kinds.floatrange(g, g + 0.5) FROM generate_series(1, 300) g;

CREATE TABLE kinds.oid_aliases (id integer PRIMARY KEY, relation regclass, kind regtype);
INSERT INTO kinds.oid_aliases VALUES (1, 'kinds.builtin', 'kinds.mood'), (2, 'pg_class', 'integer');

-- type_families.sql - round-trip fixture for Arca.
--
-- Loaded into a freshly created, empty UTF8 database (PostgreSQL 15+, core
-- types only). Plain SQL without psql meta-commands, so it can be run either
-- with
--     psql -X -v ON_ERROR_STOP=1 -d DB -f type_families.sql
-- or sent as one multi-statement string through libpq's PQexec (then it runs
-- as a single implicit transaction; nothing here needs to be outside one).
--
-- The file is pure ASCII: every non-ASCII character is written as an E''
-- \u / \U escape, so the client encoding it is read with does not matter.
-- Literals are written in unambiguous forms (ISO dates, explicit UTC
-- offsets, signed interval fields, make_interval), so DateStyle, TimeZone and
-- IntervalStyle of the loading session do not change the stored values.
-- All content is deterministic (no random(), no now()).
--
-- Traps deliberately built in for a backup/restore engine:
--   * names needing quotes (schema, tables, columns, a partition in another
--     schema than its parent, a column named "a.b", a reserved word);
--   * dropped columns and a partition whose physical column order differs
--     from its parent's;
--   * STORED generated columns (one in the middle of the column list),
--     identity columns (BY DEFAULT with explicit ids past the sequence, and
--     ALWAYS), a serial whose sequence is ahead of the rows, a standalone
--     sequence with is_called = false, a descending sequence;
--   * a BEFORE INSERT trigger on public."User" that uppercases
--     "Mixed Case": the rows loaded before the trigger existed keep their
--     lower case, so a restore that lets user triggers fire changes data;
--   * foreign keys (plain, self-referencing, from a partitioned table);
--   * a zero-column table with rows, an empty table, an unlogged table;
--   * range and list partitioning (two levels, DEFAULT and NULL partitions),
--     inheritance with rows in parent and child;
--   * clinic.big_notes: about 20 MB of COPY text, including one ~6 MB row
--     full of escaped characters (so chunk boundaries fall inside a row and
--     inside escape sequences); public.all_types holds a 131072+16383-digit
--     numeric (a ~147 KB line, longer than a 64 KiB chunk).

------------------------------------------------------------------ schemas

CREATE SCHEMA clinic;
CREATE SCHEMA "Odd Schema";

------------------------------------------------------------------ types

CREATE TYPE clinic.triage AS ENUM (
    'green', 'yellow', 'red',
    'needs "review"', 'with,comma', 'a b', E'\u00fcml\u00e4ut', E'back\\slash', '{brace}'
);

CREATE TYPE clinic.vital AS (
    label    text,
    value    numeric,
    taken_at timestamptz,
    flags    boolean[]
);

CREATE DOMAIN clinic.positive_int AS integer CHECK (VALUE > 0);

------------------------------------------------------------------ every type family

CREATE TABLE public.all_types (
    id                  integer PRIMARY KEY,
    label               text NOT NULL,
    c_text              text,
    c_varchar           varchar(10),
    c_char              char(5),
    c_qchar             "char",
    c_name              name,
    c_bytea             bytea,
    c_bool              boolean,
    c_int2              smallint,
    c_int4              integer,
    c_int8              bigint,
    c_numeric           numeric,
    c_numeric_10_0      numeric(10,0),
    c_numeric_neg_scale numeric(5,-2),
    c_float4            real,
    c_float8            double precision,
    c_date              date,
    c_time              time,
    c_timetz            timetz,
    c_timestamp         timestamp,
    c_timestamptz       timestamptz,
    c_interval          interval,
    c_text_array        text[],
    c_int_array         integer[],
    c_bytea_array       bytea[],
    c_json              json,
    c_jsonb             jsonb,
    c_enum              clinic.triage,
    c_enum_array        clinic.triage[],
    c_composite         clinic.vital,
    c_composite_array   clinic.vital[],
    c_domain            clinic.positive_int,
    c_int4range         int4range,
    c_numrange          numrange,
    c_daterange         daterange,
    c_tstzrange         tstzrange,
    c_int4multirange    int4multirange,
    c_inet              inet,
    c_cidr              cidr,
    c_macaddr           macaddr,
    c_macaddr8          macaddr8,
    c_uuid              uuid,
    c_tsvector          tsvector,
    c_tsquery           tsquery,
    c_bit               bit(8),
    c_varbit            varbit,
    c_point             point,
    c_line              line,
    c_lseg              lseg,
    c_box               box,
    c_path              path,
    c_polygon           polygon,
    c_circle            circle,
    c_oid               oid,
    c_pg_lsn            pg_lsn
);

-- 1: ordinary values in every column.
INSERT INTO public.all_types VALUES (
    1, 'ordinary',
    'hello world', 'short', 'ab', 'a', 'a name',
    '\x0102deadbeef'::bytea, true,
    42, 4242, 424242424242,
    '12345.6789', '-1234567', '-1234567',
    '0.1', '0.1',
    '2024-02-29', '12:34:56.000001', '12:00:00+05:30',
    '1999-12-31 23:59:59.999999', '2024-02-29 12:34:56.789012+05:30',
    make_interval(years => -1, months => 2, days => -3, hours => 4, mins => -5, secs => 6.000007),
    ARRAY['alpha', 'beta'], '{1,2,3}', ARRAY['\x00ff'::bytea],
    '{"a": 1, "b": [true, false, null]}', '{"a": 1, "b": [true, false, null]}',
    'green', '{green,red}',
    ROW('pulse', 72, '2024-01-02 03:04:05+00', '{t,f}')::clinic.vital,
    ARRAY[ROW('pulse', 72, '2024-01-02 03:04:05+00', '{t}')::clinic.vital],
    7,
    '[1,10)', '[1.5,2.5]', '[2024-01-01,2024-12-31]', '[2020-01-01 00:00:00+00,2021-01-01 00:00:00+00)',
    '{[1,3),[5,8)}',
    '192.168.0.1/24', '10.0.0.0/8', '08:00:2b:01:02:03', '08:00:2b:01:02:03:04:05',
    'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11',
    'the:1 fat:2A cat:3B,4C', 'fat & (rat | !cat)',
    B'10101010', B'1010101010101010101',
    '(1.5,-2)', '{1,-1,0}', '[(0,0),(1,1)]', '(1,1),(0,0)', '[(0,0),(1,1),(2,0)]',
    '((0,0),(4,0),(4,4),(0,4))', '<(0,0),1.5>',
    12345, '16/B374D848'
);

-- 2: escapes and quoting inside every container type.
INSERT INTO public.all_types VALUES (
    2, 'escapes in containers',
    E'tab\there\nnewline\rcr\\backslash', E'a\tb\\c', E'\t\\   ', E'\\', 'x"y\z',
    E'\\x5c0a09'::bytea, false,
    0, 0, 0,
    '-0.000', '0', '0',
    '-0', '-0',
    '2000-01-01', '00:00:00', '00:00:00+00',
    '2000-01-01 00:00:00', '2000-01-01 00:00:00+00',
    '-1 days +00:00:00.000001',
    ARRAY[NULL, 'NULL', 'null', 'a"b', 'c,d', '{e}', E'f\\g', '', ' spaced ', E'tab\there', E'new\nline', E'\\N'],
    '{{1,2,3},{4,NULL,6}}',
    ARRAY['\x5c22'::bytea, '\x'::bytea, NULL, '\x2c7b7d'::bytea],
    E'{\n\t"k" : [ 1 , 2 ],\n\t"esc": "tab\\t quote\\" back\\\\ nl\\n",\n\t"nul": "\\u0000"\n}',
    '{"esc": "tab\t quote\" back\\ nl\n", "k": [1, 2]}',
    'needs "review"', ARRAY['needs "review"', 'with,comma', NULL, 'a b', E'back\\slash', '{brace}']::clinic.triage[],
    ROW(E'blood "pressure", sys\\dia', 120.5, '2024-01-02 03:04:05.5+00', '{t,f,NULL}')::clinic.vital,
    ARRAY[ROW('a,b', 1, NULL, '{}')::clinic.vital, NULL, ROW('', NULL, NULL, NULL)::clinic.vital,
          ROW(NULL, NULL, NULL, NULL)::clinic.vital, ROW(E'(paren) {brace} "quote" \\', -1, NULL, '{NULL}')::clinic.vital],
    1,
    'empty', '(,)', '[2024-01-01,infinity)', '[2020-01-01 00:00:00+00,infinity)',
    '{}',
    '::1', '2001:db8::/32', '00:00:00:00:00:00', '00:00:00:00:00:00:00:00',
    '00000000-0000-0000-0000-000000000000',
    $$'it''s' 'sp ace':1 'back\\slash':2 'a:b':3$$, $$'it''s' & 'sp ace' & 'back\\slash'$$,
    B'00000000', B'',
    '(0,0)', '{0,1,0}', '[(1e-300,1e300),(-1e-300,-1e300)]', '(0,0),(0,0)', '((0,0),(1,1),(2,0))',
    '((0,0))', '<(0,0),0>',
    0, '0/0'
);

-- 3: minimum / negative extremes.
INSERT INTO public.all_types VALUES (
    3, 'minimum and negative extremes',
    '', '', '', '', '',
    '\x'::bytea, false,
    -32768, -2147483648, -9223372036854775808,
    '-Infinity', '-9999999999', '-9999900',
    '-Infinity', '-Infinity',
    '4714-11-24 BC', '00:00:00', '00:00:00+15:59',
    '4713-01-01 00:00:00 BC', '4713-01-01 00:00:00+00 BC',
    '-178000000 years',
    '{}', '{}', '{}',
    '[]', '[]',
    'green', '{}',
    ROW('', 0, '-infinity', '{}')::clinic.vital, '{}',
    1,
    '(,5]', '(,0)', '(,2000-01-01)', '(-infinity,infinity)',
    '{(,0),[10,)}',
    '0.0.0.0/0', '0.0.0.0/0', 'ff:ff:ff:ff:ff:ff', 'ff:ff:ff:ff:ff:ff:ff:ff',
    'ffffffff-ffff-ffff-ffff-ffffffffffff',
    '', 'supern:*A & star:A',
    B'11111111', B'0',
    '(-1.7976931348623157e308,-5e-324)', '{1,0,-1.7976931348623157e308}', '[(-1,-1),(-2,-2)]',
    '(-1,-1),(-2,-2)', '[(0,0)]', '((-1,-1),(-2,-2),(-3,-1))', '<(-1,-1),1e-300>',
    0, '0/1'
);

-- 4: maximum / positive extremes.
INSERT INTO public.all_types VALUES (
    4, 'maximum and positive extremes',
    repeat('long ', 2000), 'tenchars!!', 'abcde', 'z', repeat('n', 63),
    decode(repeat('ff', 1000), 'hex'), true,
    32767, 2147483647, 9223372036854775807,
    'Infinity', '9999999999', '9999900',
    '3.4028235e38', '1.7976931348623157e308',
    '5874897-12-31', '24:00:00', '24:00:00-15:59',
    '294276-12-31 23:59:59.999999', '294276-12-31 23:59:59.999999+00',
    '178000000 years 11 mons 30 days 2562047788:00:54.775807',
    ARRAY[repeat('x', 5000)], '{{{1,2}},{{3,4}}}', ARRAY[decode(repeat('00', 300), 'hex')],
    '{"big": 123456789012345678901234567890.123456789e10, "dup": 1, "dup": 2, "deep": {"a": {"b": {"c": {"d": [[[[]]]]}}}}}',
    '{"big": 12345678901234567890123456789012345678901234567890, "tiny": 1e-300, "neg": -0.0, "deep": {"a": {"b": {"c": {"d": [[[[]]]]}}}}}',
    '{brace}', '{green,yellow,red}',
    ROW(repeat('v', 100), '1e100', 'infinity', '{t,t,t}')::clinic.vital, '{}',
    2147483647,
    '[2147483646,2147483647)', '[-1e-20,1e20)', '[5874897-12-30,5874897-12-31)', '[2000-01-01 00:00:00+00,infinity]',
    '{[-2147483648,-1),[0,1),[2,3),[2147483646,2147483647)}',
    '2001:db8::ff00:42:8329/64', '2001:db8:ffff:ffff:ffff:ffff:ffff:ff00/120', 'ff:ff:ff:00:00:00', 'ff:ff:ff:ff:00:00:00:00',
    'ffffffff-0000-ffff-0000-ffffffffffff',
    'a:1,2,3,16383 b:16383D', 'a <-> b <2> c & !(d | e:*B)',
    B'11110000', B'1111111111111111111111111111111111111111111111111111111111111111111111',
    '(1.7976931348623157e308,5e-324)', '{-1,0,1.7976931348623157e308}', '[(1e308,1e308),(-1e308,-1e308)]',
    '(1e308,1e308),(-1e308,-1e308)', '((1,2),(3,4),(5,6),(7,8))', '((1,1),(2,2),(3,1),(2,0))',
    '<(1e308,-1e308),1e308>',
    4294967295, 'FFFFFFFF/FFFFFFFF'
);

-- 5: special floating point values, NaN, denormals, huge numerics.
INSERT INTO public.all_types (id, label, c_numeric, c_numeric_10_0, c_numeric_neg_scale, c_float4, c_float8, c_jsonb, c_point, c_numrange)
VALUES
    (5,  'NaN',                       'NaN', '0', '0', 'NaN', 'NaN', '"NaN"', '(NaN,NaN)', '[NaN,NaN]'),
    (6,  'Infinity',                  'Infinity', '1', '100', 'Infinity', 'Infinity', '1e308', '(Infinity,-Infinity)', '[0,Infinity)'),
    (7,  'negative zero',             '-0', '-0', '-0', '-0', '-0', '-0', '(-0,-0)', '[-0,0]'),
    (8,  'smallest denormals',        '1e-300', '-1', '-149', '1.4e-45', '4.9e-324', '5e-324', '(1e-320,-1e-320)', '(-1e-300,1e-300)'),
    (9,  'largest denormals',         '-1e-300', '-2', '-150', '1.1754942e-38', '2.2250738585072009e-308', '1e-1000', NULL, NULL),
    (10, 'smallest normals',          '0.1000', '-3', '-151', '1.17549435e-38', '2.2250738585072014e-308', '0.1000', NULL, NULL),
    (11, 'shortest round trip',       '3.14159265358979323846264338327950288419716939937510',
                                      '-4', '-249', '0.1', '0.30000000000000004', '0.30000000000000004', '(0.1,0.2)', NULL),
    (12, '120-digit numeric',         (repeat('1234567890', 12) || '.' || repeat('9876543210', 3))::numeric,
                                      '-5', '-250', '16777217', '9007199254740993', '123456789012345678901234567890', NULL, NULL),
    (13, 'negative huge numeric',     ('-' || repeat('9', 131072) || '.' || repeat('9', 16383))::numeric,
                                      '-6', '-251', '-3.4028235e38', '-1.7976931348623157e308', NULL, NULL, NULL),
    (14, 'trailing zero scale',       '1.500000000000000000000000000000', '-7', '-50', '1e10', '1e22', '1.500', NULL, NULL);

-- 15: bytea with all 256 byte values, in both orders.
INSERT INTO public.all_types (id, label, c_bytea, c_bytea_array)
SELECT 15, 'bytea 0..255',
       (SELECT string_agg(set_byte('\x00'::bytea, 0, i), ''::bytea ORDER BY i) FROM generate_series(0, 255) AS g(i)),
       ARRAY[(SELECT string_agg(set_byte('\x00'::bytea, 0, i), ''::bytea ORDER BY i DESC) FROM generate_series(0, 255) AS g(i))];
INSERT INTO public.all_types (id, label, c_bytea) VALUES
    (16, 'empty bytea', '\x'::bytea),
    (17, 'NULL bytea',  NULL),
    (18, 'bytea that looks like escapes', convert_to(E'\\x41\\\\N\t\n', 'UTF8'));

-- 19: every column NULL (apart from the key and label).
INSERT INTO public.all_types (id, label) VALUES (19, 'all NULL');

-- 20: empty values that are not NULL.
INSERT INTO public.all_types (id, label, c_text, c_varchar, c_char, c_qchar, c_name, c_bytea,
                              c_text_array, c_int_array, c_bytea_array, c_json, c_jsonb,
                              c_enum_array, c_composite, c_composite_array,
                              c_int4range, c_numrange, c_daterange, c_tstzrange, c_int4multirange,
                              c_tsvector, c_varbit, c_interval)
VALUES (20, 'empty but not NULL', '', '', '', '', '', '\x'::bytea,
        '{}', '{}', '{}', '{}', '{}',
        '{}', ROW(NULL, NULL, NULL, NULL)::clinic.vital, '{}',
        'empty', 'empty', 'empty', 'empty', '{}',
        '', B'', '0');

-- 21..: arrays with unusual shapes and bounds.
INSERT INTO public.all_types (id, label, c_text_array, c_int_array, c_enum_array) VALUES
    (21, 'array lower bounds', '[0:2]={a,b,c}', '[-5:-4]={7,8}', '[2:2]={red}'),
    (22, 'array of NULL',      '{NULL}', '{NULL,NULL}', '{NULL}'),
    (23, '2-D text array',     '{{"a\"b","c,d"},{NULL,"{}"}}', '[1:2][3:4]={{1,2},{3,4}}', '{{green},{red}}'),
    (24, 'array of empties',   '{"",""," "}', '{0}', NULL);

-- 100..: one text edge case per row (c_text), the rest NULL.
INSERT INTO public.all_types (id, label, c_text, c_varchar, c_char) VALUES
    (100, 'tab',                     E'a\tb', E'\t', E'\t'),
    (101, 'newline',                 E'a\nb', E'\n', E'\n'),
    (102, 'carriage return',         E'a\rb', E'\r', E'\r'),
    (103, 'CRLF',                    E'a\r\nb\r\n', E'\r\n', E'\r\n'),
    (104, 'backslash',               E'a\\b', E'\\', E'\\'),
    (105, 'trailing backslash',      E'abc\\', E'\\\\', E'\\\\'),
    (106, 'literal \N',              E'\\N', E'\\N', E'\\N'),
    (107, 'literal \N with text',    E'\\Nope \\N', E'x\\N', NULL),
    (108, 'copy end marker',         E'\\.', E'\\.', E'\\.'),
    (109, 'end marker then text',    E'\\.\nmore', NULL, NULL),
    (110, 'empty string',            '', '', ''),
    (111, 'NULL',                    NULL, NULL, NULL),
    (112, 'the word NULL',           'NULL', 'NULL', 'NULL'),
    (113, 'control characters',      E'\x01\x02\x07\x08\x0b\x0c\x1b\x1f\x7f', E'\x08\x0c', E'\x0b'),
    (114, 'octal-looking text',      E'\\001\\x41\\u0041', E'\\t', E'\\n'),
    (115, 'only whitespace',         E' \t \n \r ', '   ', '   '),
    (116, 'trailing spaces',         'abc   ', 'abc   ', 'abc  '),
    (117, 'quotes',                  $$'single' "double" `back`$$, $$''$$, '"'),
    (118, 'accented latin',          E'\u00c7a \u00e9t\u00e9 d\u00e9j\u00e0 vu \u2014 na\u00efve fa\u00e7ade \u00df\u00c6\u00d8\u00e5', E'\u00e9\u00e8\u00ea', E'\u00e9'),
    (119, 'CJK',                     E'\u65e5\u672c\u8a9e\u30c6\u30ad\u30b9\u30c8 \u4e2d\u6587 \ud55c\uad6d\uc5b4', E'\u4e2d\u6587', E'\u65e5\u672c'),
    (120, 'emoji',                   E'\U0001F600 \U0001F469\u200D\U0001F469\u200D\U0001F467\u200D\U0001F466 \U0001F3F3\uFE0F\u200D\U0001F308', E'\U0001F600', E'\U0001F600'),
    (121, 'combining characters',    E'e\u0301 n\u0303 a\u0308\u0304 Z\u0351\u036b\u0343', E'e\u0301', E'e\u0301'),
    (122, 'precomposed vs combining', E'\u00e9', E'e\u0301', NULL),
    (123, 'right to left',           E'\u05e9\u05dc\u05d5\u05dd \u0645\u0631\u062d\u0628\u0627', NULL, NULL),
    (124, 'invisible characters',    E'\u200b\ufeff\u2028\u2029\u00a0', E'\ufeff', E'\u00a0'),
    (125, 'max code point',          E'\U0010FFFF\uFFFD', E'\U0010FFFF', NULL),
    (126, 'mixed everything',        E'\\N\t\u00e9\r\n\\\\.\t\U0001F600\\', NULL, NULL),
    (127, 'long with escapes',       repeat(E'x\ty\nz\\', 10000), NULL, NULL);

-- "char" edge cases: PostgreSQL 15 prints non-ASCII bytes as \ooo.
INSERT INTO public.all_types (id, label, c_qchar) VALUES
    (130, '"char" high byte',   E'\\377'),
    (131, '"char" control',     E'\\001'),
    (132, '"char" backslash',   E'\\\\'),
    (133, '"char" tab',         E'\t'),
    (134, '"char" empty',       '');

-- Intervals, dates and times.
INSERT INTO public.all_types (id, label, c_interval, c_date, c_time, c_timetz, c_timestamp, c_timestamptz, c_tstzrange) VALUES
    (140, 'infinity',        '0', 'infinity', '23:59:59.999999', '23:59:59.999999-03',
          'infinity', 'infinity', '[infinity,infinity]'),
    (141, '-infinity',       '-00:00:00.000001', '-infinity', '00:00:00.000001', '00:00:00.000001+00',
          '-infinity', '-infinity', '[-infinity,-infinity]'),
    (142, 'BC',              make_interval(days => -1, secs => 0.000001), '4713-01-01 BC', '12:00:00', '12:00:00-12:34',
          '4713-01-01 12:34:56.789 BC', '4713-01-01 12:34:56.789-03:00 BC', '[4713-01-01 00:00:00+00 BC,0001-01-01 00:00:00+00)'),
    (143, 'year 1 and 1 BC', make_interval(months => -1, days => 31), '0001-01-01', '00:00:00', '00:00:00-15:59',
          '0001-12-31 23:59:59.999999 BC', '0001-01-01 00:00:00+00', '[0001-01-01 00:00:00+00 BC,0001-01-01 00:00:00+00)'),
    (144, 'mixed signs',     make_interval(years => 1, months => -13, days => 1, hours => -25, mins => 61, secs => -0.5),
          '1970-01-01', '13:14:15.161718', '13:14:15.161718+14',
          '1970-01-01 00:00:00', '1970-01-01 00:00:00+00', '(1970-01-01 00:00:00+00,)'),
    (145, 'leap second-ish', '1 mon -30 days', '2016-12-31', '23:59:59', '23:59:59+00',
          '2016-12-31 23:59:59.5', '2016-12-31 23:59:59.5+00', NULL),
    (146, 'odd offsets',     '-2147483648 days', '2000-02-29', '01:02:03', '01:02:03+05:45',
          '2000-02-29 01:02:03', '2000-02-29 01:02:03+05:45', '[2000-02-29 01:02:03+05:45,2000-03-01 00:00:00-11:00]'),
    (147, 'max days',        '2147483647 days -2147483648 mons', '2038-01-19', '03:14:07', '03:14:07+00',
          '2038-01-19 03:14:07', '2038-01-19 03:14:07+00', NULL);

-- JSON odds and ends.
INSERT INTO public.all_types (id, label, c_json, c_jsonb) VALUES
    (150, 'json scalars',       '"just a string"', '"just a string"'),
    (151, 'json null',          'null', 'null'),
    (152, 'json unicode',       '{"u": "\u00e9\u4e2d\ud83d\ude00", "raw": "caf\u00e9"}', '{"u": "\u00e9\u4e2d\ud83d\ude00", "esc": "\\u0041"}'),
    (153, 'json literal utf8',  E'{"k\u00e9y": "v\u00e4l\U0001F600"}', E'{"k\u00e9y": "v\u00e4l\U0001F600"}'),
    (154, 'json numbers',       '[0, -0, 1.0, 1e2, 1E-2, -1.5e+300, 100000000000000000000000000000000000000001]',
                                '[0, -0, 1.0, 1e2, 1E-2, -1.5e+300, 100000000000000000000000000000000000000001]'),
    (155, 'json key order',     '{"b": 1, "a": 2, "aa": 3, "": 4}', '{"b": 1, "a": 2, "aa": 3, "": 4}'),
    (156, 'json control chars', '["\t", "\n", "\r", "\\", "\"", "\/", "\b\f", "\u001f"]',
                                '["\t", "\n", "\r", "\\", "\"", "\/", "\b\f", "\u001f"]');

------------------------------------------------------------------ quoted names, FKs, trigger

CREATE TABLE public."User" (
    id           integer PRIMARY KEY,
    "Mixed Case" text NOT NULL,
    legacy       text,
    "select"     integer,
    email        text,
    "a.b"        text,
    CONSTRAINT "User email unique" UNIQUE (email)
);
CREATE INDEX "User lower(email)" ON public."User" (lower(email));
COMMENT ON TABLE public."User" IS 'users; "Mixed Case" is uppercased by a trigger on INSERT';

INSERT INTO public."User" (id, "Mixed Case", legacy, "select", email, "a.b") VALUES
    (1, 'alice liddell',     'old1', 1,    'alice@example.org', 'a.b'),
    (2, E'bob \u00e9l\u00e8ve', 'old2', NULL, 'bob@example.org',   NULL),
    (3, 'carol "c" o''neil', NULL,   -1,   NULL,                E'tab\tdot.'),
    (4, '',                  NULL,   0,    'dave@example.org',  ''),
    (5, E'eve\\n',           NULL,   2147483647, 'eve@example.org', E'\\N');

-- A dropped column: COPY column lists must skip it.
ALTER TABLE public."User" DROP COLUMN legacy;

CREATE FUNCTION public.user_uppercase_mixed_case() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    NEW."Mixed Case" := upper(NEW."Mixed Case");
    RETURN NEW;
END;
$$;

-- Created after the first rows: rows 1..5 keep their lower case. A restore
-- that lets this trigger fire turns them upper case.
CREATE TRIGGER "uppercase Mixed Case"
    BEFORE INSERT ON public."User"
    FOR EACH ROW EXECUTE FUNCTION public.user_uppercase_mixed_case();

INSERT INTO public."User" (id, "Mixed Case", "select", email) VALUES
    (6, 'frank went through the trigger', 6, 'frank@example.org');

CREATE TABLE clinic."Patient" (
    id          integer PRIMARY KEY,
    user_id     integer REFERENCES public."User" (id),
    full_name   text NOT NULL,
    triage      clinic.triage NOT NULL DEFAULT 'green',
    vitals      clinic.vital[],
    born_on     date,
    "Mixed Case" boolean
);

INSERT INTO clinic."Patient" VALUES
    (1, 1, 'Alice Liddell', 'green', ARRAY[ROW('pulse', 60, '2024-03-01 08:00:00+00', '{t}')::clinic.vital], '1852-05-04', true),
    (2, 2, E'Bob \u00c9l\u00e8ve', 'needs "review"', NULL, '4713-01-01 BC', false),
    (3, NULL, 'No User', E'\u00fcml\u00e4ut', '{}', 'infinity', NULL),
    (4, 6, E'Tab\tName', 'with,comma', ARRAY[NULL::clinic.vital], '-infinity', true);

CREATE TABLE "Odd Schema"."with space" (
    id          integer PRIMARY KEY,
    "parent id" integer REFERENCES "Odd Schema"."with space" (id),
    "a.b"       text,
    "Mixed Case" text,
    "select"    text
);
INSERT INTO "Odd Schema"."with space" VALUES
    (1, NULL, 'root', 'Root', 'from'),
    (2, 1,    'child', 'Child', 'where'),
    (3, 2,    E'grand\nchild', NULL, NULL);

CREATE TABLE "Odd Schema"."quote""d" (
    "id"         integer,
    "select"     text,
    "col""quote" text,
    "Mixed Case" text,
    "x;y"        text
);
INSERT INTO "Odd Schema"."quote""d" VALUES
    (1, 'select', 'he said "hi"', 'MiXeD', 'semi;colon'),
    (2, NULL, '"', '', E'drop table x; --\n'),
    (1, 'select', 'he said "hi"', 'MiXeD', 'semi;colon');  -- exact duplicate row, no key

-- Same table name as clinic.record, different shape: names must stay qualified.
CREATE TABLE "Odd Schema".record (
    "Record ID" bigint,
    payload     jsonb
);
INSERT INTO "Odd Schema".record VALUES (1, '{"odd": true}'), (2, NULL);

------------------------------------------------------------------ generated, identity, serial, sequences

CREATE TABLE clinic.measurement (
    id         bigint GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
    ticket     serial,
    patient_id integer REFERENCES clinic."Patient" (id),
    weight_kg  numeric(6,2) NOT NULL CHECK (weight_kg > 0),
    bmi        numeric GENERATED ALWAYS AS (round(weight_kg / (height_m * height_m), 2)) STORED,
    height_m   numeric(4,2) NOT NULL CHECK (height_m > 0),
    note       text,
    -- locale independent on purpose (no upper()/lower()): a restore into a
    -- database with another LC_CTYPE must recompute the same value.
    ticket_note text GENERATED ALWAYS AS ('#' || ticket::text || ': ' || note) STORED
);

INSERT INTO clinic.measurement (patient_id, weight_kg, height_m, note) VALUES
    (1, 55.5, 1.65, 'first'),
    (1, 56.0, 1.65, E'second\twith tab'),
    (2, 80.25, 1.80, NULL);
-- Explicit ids beyond the identity sequence (the sequence stays at 3).
INSERT INTO clinic.measurement (id, patient_id, weight_kg, height_m, note) VALUES
    (1000, 3, 70, 1.75, 'explicit id'),
    (1001, NULL, 0.5, 0.5, E'\u00e9l\u00e8ve');
-- Advance the serial's sequence past the rows (ticket 1..5 used, next is 9).
SELECT nextval(pg_get_serial_sequence('clinic.measurement', 'ticket')) FROM generate_series(1, 3);

CREATE TABLE clinic.audit_log (
    id    integer GENERATED ALWAYS AS IDENTITY (START WITH 100 INCREMENT BY 10) PRIMARY KEY,
    event text NOT NULL,
    at    timestamptz NOT NULL
);
INSERT INTO clinic.audit_log (event, at) VALUES
    ('login',  '2024-01-01 10:00:00+00'),
    ('logout', '2024-01-01 11:00:00+00'),
    (E'weird\tevent\\', '2024-01-01 12:00:00+00');
INSERT INTO clinic.audit_log (id, event, at) OVERRIDING SYSTEM VALUE VALUES
    (5, 'backfilled', '2023-12-31 23:59:59.999999+00');

-- A standalone sequence, set but not called yet.
CREATE SEQUENCE clinic.invoice_number_seq START WITH 1000;
SELECT setval('clinic.invoice_number_seq', 5000, false);

-- A descending sequence with a name needing quotes, called twice.
CREATE SEQUENCE "Odd Schema"."countdown seq" INCREMENT BY -1 MINVALUE -100 MAXVALUE 10 START WITH 10;
SELECT nextval('"Odd Schema"."countdown seq"') FROM generate_series(1, 2);

------------------------------------------------------------------ empty, zero-column, unlogged

CREATE TABLE clinic.empty_table (
    id      integer PRIMARY KEY,
    payload jsonb
);

CREATE TABLE clinic.no_columns ();
INSERT INTO clinic.no_columns DEFAULT VALUES;
INSERT INTO clinic.no_columns DEFAULT VALUES;
INSERT INTO clinic.no_columns DEFAULT VALUES;

CREATE UNLOGGED TABLE clinic.session_cache (
    key        text PRIMARY KEY,
    value      bytea,
    expires_at timestamptz
);
INSERT INTO clinic.session_cache VALUES
    ('session:1', '\x00010203'::bytea, '2030-01-01 00:00:00+00'),
    ('session:2', NULL, 'infinity'),
    (E'session:\t3', '\x5c4e'::bytea, NULL);

------------------------------------------------------------------ partitions

-- Range partitioning by date: three ranges and a DEFAULT partition.
CREATE TABLE clinic.consultation (
    id           integer NOT NULL,
    consulted_on date NOT NULL,
    patient_id   integer REFERENCES clinic."Patient" (id),
    summary      text,
    PRIMARY KEY (id, consulted_on)
) PARTITION BY RANGE (consulted_on);

CREATE TABLE clinic.consultation_2022 PARTITION OF clinic.consultation
    FOR VALUES FROM ('2022-01-01') TO ('2023-01-01');
CREATE TABLE clinic.consultation_2023 PARTITION OF clinic.consultation
    FOR VALUES FROM ('2023-01-01') TO ('2024-01-01');
-- Built separately with another column order and a dropped column, then
-- attached: its COPY column list differs from the parent's.
CREATE TABLE clinic.consultation_2024 (
    summary      text,
    scratch      integer,
    patient_id   integer,
    consulted_on date NOT NULL,
    id           integer NOT NULL
);
ALTER TABLE clinic.consultation_2024 DROP COLUMN scratch;
ALTER TABLE clinic.consultation ATTACH PARTITION clinic.consultation_2024
    FOR VALUES FROM ('2024-01-01') TO ('2025-01-01');
CREATE TABLE clinic.consultation_default PARTITION OF clinic.consultation DEFAULT;

INSERT INTO clinic.consultation (id, consulted_on, patient_id, summary) VALUES
    (1, '2022-01-01', 1, 'first day of 2022'),
    (2, '2022-12-31', 2, 'last day of 2022'),
    (3, '2023-01-01', 1, E'2023\twith tab'),
    (4, '2023-06-15', NULL, NULL),
    (5, '2023-12-31', 3, ''),
    (6, '2024-01-01', 4, E'2024 \u00e9'),
    (7, '2024-02-29', 1, 'leap day'),
    (8, '2019-06-01', 2, 'before all ranges'),
    (9, 'infinity', 3, 'infinity goes to default'),
    (10, '-infinity', 3, '-infinity goes to default'),
    (11, '2025-01-01', 1, 'first day after the ranges');

-- List partitioning, two levels; one sub-partition lives in another schema
-- under a name needing quotes; a NULL partition and a DEFAULT partition.
CREATE TABLE clinic.invoice (
    id        integer NOT NULL,
    region    text,
    country   text,
    amount    numeric(12,2) NOT NULL,
    issued_on date NOT NULL
) PARTITION BY LIST (region);

CREATE TABLE clinic.invoice_americas PARTITION OF clinic.invoice
    FOR VALUES IN ('americas');
CREATE TABLE clinic.invoice_europe PARTITION OF clinic.invoice
    FOR VALUES IN ('europe', 'EU') PARTITION BY LIST (country);
CREATE TABLE clinic.invoice_europe_fr PARTITION OF clinic.invoice_europe
    FOR VALUES IN ('FR', 'MC');
CREATE TABLE "Odd Schema"."invoice Europe ""other""" PARTITION OF clinic.invoice_europe DEFAULT;
CREATE TABLE clinic.invoice_no_region PARTITION OF clinic.invoice
    FOR VALUES IN (NULL);
CREATE TABLE clinic.invoice_default PARTITION OF clinic.invoice DEFAULT;

INSERT INTO clinic.invoice (id, region, country, amount, issued_on) VALUES
    (1, 'americas', 'US', 100.00, '2024-01-01'),
    (2, 'americas', 'BR', -0.01, '2024-01-02'),
    (3, 'europe',   'FR', 9999999999.99, '2024-01-03'),
    (4, 'EU',       'MC', 0, '2024-01-04'),
    (5, 'europe',   'DE', 12.5, '2024-01-05'),
    (6, 'europe',   NULL, 1, '2024-01-06'),
    (7, NULL,       'XX', 2, '2024-01-07'),
    (8, 'asia',     'JP', 3, '2024-01-08'),
    (9, '',         '',   4, '2024-01-09');

------------------------------------------------------------------ inheritance

CREATE TABLE clinic.record (
    id          integer NOT NULL,
    patient_id  integer,
    note        text,
    recorded_at timestamptz
);
CREATE TABLE clinic.lab_record (
    lab_value numeric,
    unit      text
) INHERITS (clinic.record);

INSERT INTO clinic.record VALUES
    (1, 1, 'parent row', '2024-01-01 00:00:00+00'),
    (2, 2, E'parent\nrow two', NULL);
INSERT INTO clinic.lab_record VALUES
    (3, 1, 'child row', '2024-01-02 00:00:00+00', 5.5, 'mmol/L'),
    (4, 3, NULL, NULL, 'NaN', E'\u00b5g/dL'),
    (5, 2, 'child row three', '2024-01-03 00:00:00+00', NULL, NULL);

------------------------------------------------------------------ big table (several chunks)

-- About 14 MB of ordinary rows (lengths vary; every 97th row carries escaped
-- characters), plus one ~6 MB row full of characters that COPY escapes
-- (backslash, tab, CR, LF), so a 4 MiB or 64 KiB chunk boundary falls
-- inside a single row and inside its escape sequences.
CREATE TABLE clinic.big_notes (
    id    integer PRIMARY KEY,
    title text NOT NULL,
    body  text
);

INSERT INTO clinic.big_notes (id, title, body)
SELECT i,
       'note ' || i,
       repeat(md5(i::text), 1 + i % 20)
       || CASE WHEN i % 97 = 0 THEN E'\ttab\\backslash\nnewline\r\\N' ELSE '' END
FROM generate_series(1, 40000) AS g(i);

INSERT INTO clinic.big_notes (id, title, body)
VALUES (40001, E'huge\trow', repeat(md5('huge') || E'\\\t\r\n', 150000));

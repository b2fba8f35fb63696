-- schema_objects.sql - schema-object round-trip fixture for Arca.
--
-- Exercises every kind of schema object a full logical restore has to
-- rebuild (Arca replays the schema captured by
-- pg_dump --format=custom --section=pre-data --section=post-data and loads
-- the rows itself with COPY). A pg_dump / pg_restore round trip of a
-- database loaded from this file reproduces it exactly.
--
-- Load it into a freshly created, empty database (PostgreSQL 15+, needs the
-- contrib extensions citext and pgcrypto):
--     CREATE DATABASE x TEMPLATE template0 ENCODING 'UTF8'
--         LC_COLLATE 'C.UTF-8' LC_CTYPE 'C.UTF-8';
--     psql -X -q -v ON_ERROR_STOP=1 -d x -f schema_objects.sql
-- Plain SQL, no psql meta-commands, creates no roles or databases. Pure
-- ASCII. All content is deterministic: no random(), no now(), timestamps are
-- literals with explicit UTC offsets, and the trigger functions that
-- serialise rows pin their own TimeZone / DateStyle / IntervalStyle. It is
-- not idempotent; load it only once per database.
--
-- Traps deliberately built in for a backup/restore engine:
--   * rows inserted BEFORE the triggers existed: clinic."Patient" rows 1-4
--     keep their mixed-case family_name (the BEFORE INSERT trigger would
--     upper-case them), and only rows inserted after the triggers have
--     audit rows; a restore that lets user triggers fire changes data;
--   * a NOT VALID CHECK constraint that existing rows violate;
--   * a DEFERRABLE INITIALLY DEFERRED FK whose child row was inserted before
--     its parent (in one transaction);
--   * serial sequence shared by an inheritance parent and child;
--   * identity BY DEFAULT with explicit ids past the sequence, identity
--     ALWAYS, sequences whose state is not implied by the rows;
--   * large objects with fixed OIDs (910001, 910002 ~200 KB) referenced by
--     an oid column, with a comment;
--   * one populated and one unpopulated (WITH NO DATA) materialized view;
--   * a table with row level security enabled;
--   * names that need quoting: schema "Audit Trail", table
--     "Audit Trail"."event ""log""", column "who ""did"" it",
--     column "Date of Birth", view clinic."Patient Summary".

SET client_min_messages = warning;
SET TimeZone = 'UTC';
SET DateStyle = 'ISO, YMD';
SET IntervalStyle = 'postgres';

------------------------------------------------------------------ extensions

CREATE EXTENSION IF NOT EXISTS citext WITH SCHEMA public;
CREATE EXTENSION IF NOT EXISTS pgcrypto WITH SCHEMA public;

------------------------------------------------------------------ schemas

CREATE SCHEMA clinic;
CREATE SCHEMA "Audit Trail";

COMMENT ON SCHEMA clinic IS 'patients, consultations and clinical records';
COMMENT ON SCHEMA "Audit Trail" IS 'append-only change log (name has a space)';

------------------------------------------------------------------ types

CREATE TYPE clinic.consultation_status AS ENUM ('scheduled', 'open', 'closed', 'cancelled');
-- Sort order differs from creation (OID) order; never used in data, so the
-- file also works as a single transaction.
ALTER TYPE clinic.consultation_status ADD VALUE 'no-show' AFTER 'scheduled';

CREATE TYPE clinic.blood_type AS ENUM ('O-', 'O+', 'A-', 'A+', 'B-', 'B+', 'AB-', 'AB+');

CREATE DOMAIN clinic.mrn AS text
    CONSTRAINT mrn_format CHECK (VALUE ~ '^MRN-[0-9]{6}$');

CREATE DOMAIN clinic.email AS public.citext
    CONSTRAINT email_has_at CHECK (VALUE LIKE '%_@_%');

CREATE DOMAIN clinic.heart_rate AS smallint
    CONSTRAINT heart_rate_range CHECK (VALUE BETWEEN 20 AND 250);

CREATE TYPE clinic.address AS (
    street   text,
    city     text,
    postcode text
);

CREATE TYPE clinic.dosage AS (
    drug      text,
    amount_mg numeric(8,2),
    per_day   smallint
);

COMMENT ON TYPE clinic.dosage IS 'one prescribed medication';

------------------------------------------------------------------ sequences

-- advanced with nextval (by the clinic."Patient".mrn default and explicitly)
CREATE SEQUENCE clinic.mrn_seq;
-- never called
CREATE SEQUENCE clinic.unused_seq START WITH 100 INCREMENT BY 10;
-- descending, cycling
CREATE SEQUENCE clinic.countdown_seq
    INCREMENT BY -1 MINVALUE 1 MAXVALUE 5 START WITH 3 CYCLE;
-- standalone, setval(..., false)
CREATE SEQUENCE clinic.ticket_seq AS integer;

------------------------------------------------------------------ functions

-- SQL function used by a CHECK constraint.
CREATE FUNCTION clinic.is_plausible_birth_date(d date) RETURNS boolean
    LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
    AS $$ SELECT d BETWEEN DATE '1900-01-01' AND DATE '2100-12-31' $$;

COMMENT ON FUNCTION clinic.is_plausible_birth_date(date) IS 'used by a CHECK on clinic."Patient"';

-- SQL function used by a column default.
CREATE FUNCTION clinic.format_mrn(n bigint) RETURNS text
    LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
    AS $$ SELECT 'MRN-' || lpad(n::text, 6, '0') $$;

-- plpgsql function used by an expression index (immutable).
CREATE FUNCTION clinic.name_key(family text, given text) RETURNS text
    LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE
    AS $$
BEGIN
    RETURN lower(coalesce(family, '')) || ',' || lower(coalesce(given, ''));
END
$$;

-- BEFORE INSERT trigger function: rewrites the row.
CREATE FUNCTION clinic.normalise_patient() RETURNS trigger
    LANGUAGE plpgsql
    AS $$
BEGIN
    NEW.family_name := upper(NEW.family_name);
    RETURN NEW;
END
$$;

-- Custom aggregate.
CREATE AGGREGATE clinic.join_lines(text) (
    SFUNC = pg_catalog.textcat,
    STYPE = text,
    INITCOND = ''
);

------------------------------------------------------------------ audit schema

CREATE TABLE "Audit Trail"."event ""log""" (
    id              bigint GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
    table_name      text NOT NULL,
    operation       text NOT NULL CHECK (operation IN ('INSERT', 'UPDATE', 'DELETE')),
    "who ""did"" it" text NOT NULL,
    logged_at       timestamptz,
    payload         jsonb
);

COMMENT ON TABLE "Audit Trail"."event ""log""" IS 'written by AFTER triggers; deletes are swallowed by a rule';
COMMENT ON COLUMN "Audit Trail"."event ""log"""."who ""did"" it" IS 'actor, or ''trigger''';

-- AFTER trigger function writing to the audit table. The SET clauses make
-- the jsonb payload independent of the inserting session's settings.
CREATE FUNCTION "Audit Trail".log_change() RETURNS trigger
    LANGUAGE plpgsql
    SET "TimeZone" TO 'UTC'
    SET "DateStyle" TO 'ISO, YMD'
    SET "IntervalStyle" TO 'postgres'
    SET extra_float_digits TO '1'
    AS $$
BEGIN
    INSERT INTO "Audit Trail"."event ""log""" (table_name, operation, "who ""did"" it", logged_at, payload)
    VALUES (pg_catalog.format('%I.%I', TG_TABLE_SCHEMA, TG_TABLE_NAME),
            TG_OP,
            'trigger',
            NULL,
            CASE WHEN TG_OP = 'DELETE' THEN pg_catalog.to_jsonb(OLD) ELSE pg_catalog.to_jsonb(NEW) END);
    RETURN NULL;
END
$$;

COMMENT ON FUNCTION "Audit Trail".log_change() IS 'AFTER row trigger: appends the row to "Audit Trail"."event ""log"""';

-- Rule: the audit log is append-only.
CREATE RULE "no delete" AS ON DELETE TO "Audit Trail"."event ""log""" DO INSTEAD NOTHING;

------------------------------------------------------------------ staff and wards

CREATE TABLE public."User" (
    id             integer GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    login          public.citext NOT NULL,
    email          clinic.email,
    "Display Name" text NOT NULL,
    role           text NOT NULL CHECK (role IN ('doctor', 'nurse', 'admin')),
    supervisor_id  integer REFERENCES public."User" (id),
    CONSTRAINT user_login_key UNIQUE (login)
);

CREATE INDEX user_email_idx ON public."User" (email);

CREATE TABLE clinic.ward (
    id    serial PRIMARY KEY,
    code  text NOT NULL UNIQUE CHECK (code = upper(code)),
    name  text NOT NULL,
    beds  integer NOT NULL DEFAULT 0 CHECK (beds >= 0)
);

GRANT SELECT ON clinic.ward TO PUBLIC;
GRANT USAGE ON SCHEMA clinic TO PUBLIC;

------------------------------------------------------------------ patients

CREATE TABLE clinic."Patient" (
    id              bigint GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
    mrn             clinic.mrn NOT NULL DEFAULT clinic.format_mrn(nextval('clinic.mrn_seq')),
    family_name     text NOT NULL,
    given_name      text,
    "Date of Birth" date NOT NULL,
    email           clinic.email,
    blood           clinic.blood_type,
    address         clinic.address,
    medications     clinic.dosage[] NOT NULL DEFAULT '{}',
    tags            text[] NOT NULL DEFAULT '{}',
    guardian_id     bigint REFERENCES clinic."Patient" (id),
    ward_id         integer REFERENCES clinic.ward (id) ON DELETE SET NULL,
    deceased        boolean NOT NULL DEFAULT false,
    CONSTRAINT patient_mrn_key UNIQUE (mrn),
    CONSTRAINT patient_dob_plausible CHECK (clinic.is_plausible_birth_date("Date of Birth")),
    CONSTRAINT patient_not_own_guardian CHECK (guardian_id IS DISTINCT FROM id)
);

COMMENT ON TABLE clinic."Patient" IS 'patients; family_name is upper-cased by a BEFORE INSERT trigger (rows 1-4 predate it)';
COMMENT ON COLUMN clinic."Patient"."Date of Birth" IS 'checked by clinic.is_plausible_birth_date()';

CREATE INDEX patient_living_family_idx ON clinic."Patient" (family_name) WHERE NOT deceased;
CREATE INDEX patient_name_key_idx ON clinic."Patient" (clinic.name_key(family_name, given_name));
CREATE INDEX patient_lower_given_idx ON clinic."Patient" (lower(given_name));
CREATE INDEX patient_tags_gin ON clinic."Patient" USING gin (tags);
CREATE INDEX patient_email_idx ON clinic."Patient" (email) WHERE email IS NOT NULL;

INSERT INTO clinic."Patient" (family_name, given_name, "Date of Birth", email, blood, address, medications, tags, guardian_id, deceased) VALUES
    ('Okafor', 'Adaeze', DATE '1984-02-29', 'Adaeze.Okafor@Example.org', 'O+',
     ROW('12 Harbour Rd', 'Leith', 'EH6 6LU')::clinic.address,
     ARRAY[ROW('metformin', 500.00, 2)::clinic.dosage, ROW('atorvastatin', 20.00, 1)::clinic.dosage],
     '{diabetes,"high cholesterol"}', NULL, false),
    ('de la Cruz', 'Mateo', DATE '2015-07-01', NULL, 'A-',
     ROW('4 "Quoted" Lane', 'Porto', NULL)::clinic.address,
     '{}', '{paediatric}', 1, false),
    ('smith', 'john', DATE '1931-11-11', 'JOHN@example.ORG', NULL,
     NULL,
     ARRAY[ROW('warfarin', 2.50, 1)::clinic.dosage, ROW(NULL, NULL, NULL)::clinic.dosage],
     '{anticoagulated,"a,b","back\\slash"}', NULL, true),
    ('van Dijk', NULL, DATE '1999-12-31', 'noor@example.org', 'AB+',
     ROW('Prinsengracht 263', 'Amsterdam', '1016 GV')::clinic.address,
     '{}', '{}', NULL, false);

-- Extra nextval calls: clinic.mrn_seq is now ahead of the highest MRN.
SELECT count(nextval('clinic.mrn_seq')) FROM generate_series(1, 3);

CREATE TABLE clinic.referral (
    id          integer PRIMARY KEY,
    patient_id  bigint NOT NULL
                CONSTRAINT referral_patient_fk REFERENCES clinic."Patient" (id)
                DEFERRABLE INITIALLY DEFERRED,
    referred_by integer REFERENCES public."User" (id) ON DELETE SET NULL,
    reason      text NOT NULL
);

------------------------------------------------------------------ consultations (range partitioned)

CREATE TABLE clinic.consultation (
    id          bigint NOT NULL,
    patient_id  bigint NOT NULL REFERENCES clinic."Patient" (id) ON DELETE CASCADE,
    doctor_id   integer REFERENCES public."User" (id),
    starts_at   timestamptz NOT NULL,
    duration    interval NOT NULL DEFAULT '00:15:00',
    status      clinic.consultation_status NOT NULL DEFAULT 'scheduled',
    summary     text,
    PRIMARY KEY (id, starts_at),
    CHECK (duration > '00:00:00')
) PARTITION BY RANGE (starts_at);

CREATE TABLE clinic.consultation_2023 PARTITION OF clinic.consultation
    FOR VALUES FROM ('2023-01-01 00:00:00+00') TO ('2024-01-01 00:00:00+00');
CREATE TABLE clinic.consultation_2024 PARTITION OF clinic.consultation
    FOR VALUES FROM ('2024-01-01 00:00:00+00') TO ('2025-01-01 00:00:00+00');
CREATE TABLE clinic.consultation_default PARTITION OF clinic.consultation DEFAULT;

CREATE INDEX consultation_patient_starts_idx ON clinic.consultation (patient_id, starts_at);
CREATE INDEX consultation_open_idx ON clinic.consultation (starts_at) WHERE status = 'open';

------------------------------------------------------------------ clinical records (inheritance)

CREATE TABLE clinic.clinical_record (
    id          serial PRIMARY KEY,
    patient_id  bigint NOT NULL REFERENCES clinic."Patient" (id) ON DELETE CASCADE,
    recorded_at timestamptz NOT NULL,
    kind        text NOT NULL,
    data        jsonb NOT NULL DEFAULT '{}',
    body        text,
    search      tsvector
);

CREATE INDEX clinical_record_data_gin ON clinic.clinical_record USING gin (data jsonb_path_ops);
CREATE INDEX clinical_record_search_gin ON clinic.clinical_record USING gin (search);

-- The child shares the parent's serial sequence (inherited default).
CREATE TABLE clinic.lab_result (
    analyte text NOT NULL,
    value   numeric,
    unit    text,
    CONSTRAINT lab_result_pkey PRIMARY KEY (id)
) INHERITS (clinic.clinical_record);

------------------------------------------------------------------ vitals (generated column, NOT VALID check)

CREATE TABLE clinic.vital_sign (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    patient_id  bigint NOT NULL REFERENCES clinic."Patient" (id) ON DELETE CASCADE,
    taken_at    timestamptz NOT NULL,
    weight_kg   numeric(5,1),
    height_m    numeric(3,2),
    bmi         numeric GENERATED ALWAYS AS (round(weight_kg / (height_m * height_m), 1)) STORED,
    heart_rate  clinic.heart_rate
);

------------------------------------------------------------------ notes (row level security)

CREATE TABLE clinic.clinical_note (
    id           integer PRIMARY KEY,
    patient_id   bigint NOT NULL REFERENCES clinic."Patient" (id) ON DELETE CASCADE,
    author       name NOT NULL,
    confidential boolean NOT NULL DEFAULT true,
    body         text NOT NULL
);

ALTER TABLE clinic.clinical_note ENABLE ROW LEVEL SECURITY;

CREATE POLICY note_author_all ON clinic.clinical_note
    FOR ALL
    USING (author = current_user)
    WITH CHECK (author = current_user);

CREATE POLICY note_non_confidential_read ON clinic.clinical_note
    FOR SELECT
    USING (NOT confidential);

------------------------------------------------------------------ imaging (large objects)

CREATE TABLE clinic.imaging (
    id          integer PRIMARY KEY,
    patient_id  bigint NOT NULL REFERENCES clinic."Patient" (id) ON DELETE CASCADE,
    modality    text NOT NULL,
    scan        oid NOT NULL,
    description text
);

SELECT lo_from_bytea(910001, 'x-ray scan: chest PA, MRN-000001, 2023-03-14, no acute findings'::bytea);
-- 17-byte header + 12800 x 16 bytes of md5 digests = 204817 bytes, every
-- byte value occurs.
SELECT lo_from_bytea(910002,
    'MRI-SERIES-HEADER'::bytea
    || (SELECT string_agg(decode(md5('slice ' || i), 'hex'), ''::bytea ORDER BY i)
          FROM generate_series(1, 12800) AS i));

COMMENT ON LARGE OBJECT 910001 IS 'chest x-ray, patient 1';

------------------------------------------------------------------ misc tables

-- zero columns, three rows
CREATE TABLE clinic.heartbeat ();

-- unlogged
CREATE UNLOGGED TABLE clinic.session_cache (
    token       text PRIMARY KEY,
    user_id     integer NOT NULL,
    expires_at  timestamptz NOT NULL
);

-- exclusion constraint (core gist support for ranges)
CREATE TABLE clinic.room_booking (
    id      integer PRIMARY KEY,
    ward_id integer NOT NULL REFERENCES clinic.ward (id),
    during  tstzrange NOT NULL,
    CONSTRAINT room_booking_no_overlap EXCLUDE USING gist (during WITH &&)
);

------------------------------------------------------------------ data (before triggers)

INSERT INTO public."User" (login, email, "Display Name", role, supervisor_id) VALUES
    ('AHolmes', 'a.holmes@example.org', 'Dr. Ada Holmes', 'doctor', NULL),
    ('bwatson', 'B.Watson@Example.org', 'Dr. Ben Watson', 'doctor', 1),
    ('CHudson', NULL, 'Nurse "Cat" Hudson', 'nurse', 1),
    ('admin', 'admin@example.org', 'Admin', 'admin', NULL);

INSERT INTO clinic.ward (code, name, beds) VALUES
    ('CARD', 'Cardiology', 24),
    ('PAED', 'Paediatrics', 16),
    ('ICU', 'Intensive care', 8);

UPDATE clinic."Patient" SET ward_id = 2 WHERE id = 2;
UPDATE clinic."Patient" SET ward_id = 1 WHERE id = 3;

INSERT INTO clinic.consultation (id, patient_id, doctor_id, starts_at, duration, status, summary) VALUES
    (1, 1, 1, '2023-03-14 09:00:00+00', '00:20:00', 'closed', 'annual review'),
    (2, 2, 2, '2023-11-30 23:45:00+00', '00:15:00', 'closed', 'sprained wrist'),
    (3, 1, 1, '2024-02-29 10:30:00+00', '00:30:00', 'open', 'HbA1c follow-up'),
    (4, 4, 2, '2024-12-31 23:59:59.999999+00', '01:00:00', 'cancelled', NULL),
    (5, 3, 1, '2022-06-01 08:00:00+00', '00:10:00', 'closed', 'historic, lands in DEFAULT');

INSERT INTO clinic.clinical_record (patient_id, recorded_at, kind, data, body, search) VALUES
    (1, '2023-03-14 09:20:00+00', 'note', '{"bp": [128, 82], "smoker": false}',
     'Blood pressure acceptable.', to_tsvector('english', 'Blood pressure acceptable.')),
    (2, '2023-11-30 23:59:00+00', 'x-ray', '{"region": "wrist", "fracture": null}',
     'No fracture seen.', to_tsvector('english', 'No fracture seen.'));

INSERT INTO clinic.lab_result (patient_id, recorded_at, kind, data, body, search, analyte, value, unit) VALUES
    (1, '2023-03-15 07:00:00+00', 'lab', '{"lab": "central"}', NULL, NULL, 'HbA1c', 53, 'mmol/mol'),
    (1, '2024-02-28 07:00:00+00', 'lab', '{"lab": "central", "repeat": true}', NULL, NULL, 'HbA1c', 48.5, 'mmol/mol'),
    (3, '2022-05-30 07:00:00+00', 'lab', '{}', 'INR in range', to_tsvector('english', 'INR in range'), 'INR', 2.4, NULL);

INSERT INTO clinic.clinical_record (patient_id, recorded_at, kind, body) VALUES
    (4, '2024-12-01 12:00:00+00', 'letter', 'Referral letter received.');

INSERT INTO clinic.vital_sign (patient_id, taken_at, weight_kg, height_m, heart_rate) VALUES
    (1, '2022-12-31 12:00:00+00', 81.5, 1.68, 72),
    (1, '2023-03-14 09:05:00+00', 80.0, 1.68, 70),
    (2, '2023-11-30 23:50:00+00', 28.3, 1.31, 96),
    (4, '2024-12-31 23:00:00+00', NULL, 1.75, NULL);

-- NOT VALID: the first vital_sign row (2022) violates it and stays.
ALTER TABLE clinic.vital_sign
    ADD CONSTRAINT vital_sign_recent CHECK (taken_at >= '2023-01-01 00:00:00+00') NOT VALID;

INSERT INTO clinic.clinical_note (id, patient_id, author, confidential, body) VALUES
    (1, 1, 'postgres', false, 'Patient prefers morning appointments.'),
    (2, 1, 'dr_holmes', true, 'Discussed family history.'),
    (3, 3, 'nurse_hudson', false, 'Deceased 2023-01-02.');

INSERT INTO clinic.imaging (id, patient_id, modality, scan, description) VALUES
    (1, 1, 'XR', 910001, 'chest PA'),
    (2, 4, 'MR', 910002, 'knee, 12800 slices');

INSERT INTO clinic.heartbeat DEFAULT VALUES;
INSERT INTO clinic.heartbeat DEFAULT VALUES;
INSERT INTO clinic.heartbeat DEFAULT VALUES;

INSERT INTO clinic.session_cache (token, user_id, expires_at) VALUES
    ('tok-a', 1, '2030-01-01 00:00:00+00'),
    ('tok-b', 2, '2030-01-01 00:00:00+00'),
    ('tok-c', 3, '2030-06-30 12:00:00+00');

INSERT INTO clinic.room_booking (id, ward_id, during) VALUES
    (1, 1, '[2024-01-01 08:00:00+00,2024-01-01 10:00:00+00)'),
    (2, 1, '[2024-01-01 10:00:00+00,2024-01-01 11:30:00+00)'),
    (3, 3, '[2024-01-02 00:00:00+00,)');

-- historic audit rows, written by hand before the triggers existed
INSERT INTO "Audit Trail"."event ""log""" (table_name, operation, "who ""did"" it", logged_at, payload) VALUES
    ('clinic."Patient"', 'UPDATE', 'AHolmes', '2023-01-02 16:00:00+00', '{"id": 3, "deceased": true}'),
    ('public."User"', 'INSERT', 'admin', '2020-01-01 00:00:00+00', NULL);

------------------------------------------------------------------ triggers

CREATE TRIGGER "normalise family name" BEFORE INSERT ON clinic."Patient"
    FOR EACH ROW WHEN (NEW.family_name IS NOT NULL)
    EXECUTE FUNCTION clinic.normalise_patient();

CREATE TRIGGER patient_audit AFTER INSERT OR UPDATE OR DELETE ON clinic."Patient"
    FOR EACH ROW EXECUTE FUNCTION "Audit Trail".log_change();

-- row trigger on a partitioned table (cloned onto every partition)
CREATE TRIGGER consultation_audit AFTER INSERT ON clinic.consultation
    FOR EACH ROW EXECUTE FUNCTION "Audit Trail".log_change();

------------------------------------------------------------------ data (after triggers)

-- Upper-cased by the BEFORE trigger and audited by the AFTER trigger.
INSERT INTO clinic."Patient" (family_name, given_name, "Date of Birth", blood, tags) VALUES
    ('Nakamura', 'Yui', DATE '1970-01-01', 'B-', '{allergy:penicillin}');

-- Deferred FK: the referral (patient 6) is inserted before patient 6, with an
-- explicit id past the identity sequence.
BEGIN;
INSERT INTO clinic.referral (id, patient_id, referred_by, reason) VALUES
    (2, 6, 2, 'orthopaedics');
INSERT INTO clinic."Patient" (id, family_name, given_name, "Date of Birth", guardian_id, ward_id) VALUES
    (6, 'o''brien', 'Liam', DATE '2019-04-15', 5, 2);
COMMIT;
INSERT INTO clinic.referral (id, patient_id, referred_by, reason) VALUES
    (1, 1, 1, 'endocrinology'),
    (3, 4, NULL, 'self-referral');

INSERT INTO clinic.consultation (id, patient_id, doctor_id, starts_at, status, summary) VALUES
    (6, 5, 2, '2024-05-05 14:00:00+00', 'scheduled', 'new patient'),
    (7, 6, 2, '2025-01-01 00:00:00+00', 'scheduled', 'lands in DEFAULT');

UPDATE clinic."Patient" SET ward_id = 3 WHERE id = 5;

------------------------------------------------------------------ sequence states

SELECT count(nextval('clinic.countdown_seq')) FROM generate_series(1, 5);   -- 3 2 1 5 4
SELECT setval('clinic.ticket_seq', 42, false);

------------------------------------------------------------------ views

CREATE VIEW clinic.active_patient AS
    SELECT p.id, p.mrn, p.family_name, p.given_name, p."Date of Birth", p.ward_id
      FROM clinic."Patient" p
     WHERE NOT p.deceased;

COMMENT ON VIEW clinic.active_patient IS 'patients who are alive';
GRANT SELECT ON clinic.active_patient TO PUBLIC;

CREATE VIEW clinic."Patient Summary" AS
    SELECT p.id,
           encode(public.digest(p.mrn::text, 'sha256'), 'hex') AS mrn_sha256,
           p.family_name || coalesce(', ' || p.given_name, '') AS "Full Name",
           count(c.id) AS consultations,
           clinic.join_lines(c.summary || E'\n' ORDER BY c.starts_at) AS summaries
      FROM clinic."Patient" p
      LEFT JOIN clinic.consultation c ON c.patient_id = p.id
     GROUP BY p.id;

CREATE MATERIALIZED VIEW clinic.consultation_stats AS
    SELECT date_part('year', c.starts_at AT TIME ZONE 'UTC')::integer AS year,
           c.status,
           count(*) AS n,
           sum(c.duration) AS total_duration
      FROM clinic.consultation c
     GROUP BY 1, 2
    WITH DATA;

CREATE UNIQUE INDEX consultation_stats_key ON clinic.consultation_stats (year, status);

CREATE MATERIALIZED VIEW clinic.patient_pseudonym AS
    SELECT s.id, s.mrn_sha256, s.consultations
      FROM clinic."Patient Summary" s
    WITH NO DATA;

-- SQL-standard function body (BEGIN ATOMIC) that depends on a table.
CREATE FUNCTION clinic.patient_count() RETURNS bigint
    LANGUAGE sql STABLE
BEGIN ATOMIC
    SELECT count(*) FROM clinic."Patient";
END;

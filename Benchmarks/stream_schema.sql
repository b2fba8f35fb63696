-- Benchmarks/stream_schema.sql — the change stream benchmark's database
-- (Benchmarks/stream.sh): a medical-records shape, 20,000 patients, 20,000
-- consultations, 20,000 records whose 4 KB body is stored out of line
-- (STORAGE EXTERNAL: TOASTed, uncompressed), and the workload, a procedure
-- committing one transaction per iteration. Everything is a function of the
-- iteration number: the same call makes the same changes every time.
--
-- Transaction i: insert a consultation and its record (a TOASTed body),
-- update the patient, update a record's status (its TOASTed body unchanged:
-- pgoutput sends it as "unchanged"), every 4th a record's body (a new
-- TOASTed value), every 5th after the 100th delete the record and the
-- consultation inserted 100 iterations before.
CREATE TABLE patients (
  id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  name text NOT NULL, born date NOT NULL,
  visits integer NOT NULL DEFAULT 0, last_seen timestamptz);
CREATE TABLE consultations (
  id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  patient_id bigint NOT NULL REFERENCES patients,
  at timestamptz NOT NULL, reason text NOT NULL);
CREATE TABLE records (
  id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  consultation_id bigint NOT NULL REFERENCES consultations,
  kind text NOT NULL, status text NOT NULL, body text NOT NULL);
ALTER TABLE records ALTER COLUMN body SET STORAGE EXTERNAL;
CREATE INDEX ON consultations (patient_id);
CREATE INDEX ON records (consultation_id);
INSERT INTO patients (name, born)
  SELECT 'patient ' || g, date '1940-01-01' + (g * 37) % 25000 FROM generate_series(1, 20000) g;
INSERT INTO consultations (patient_id, at, reason)
  SELECT 1 + (g * 7919) % 20000, timestamptz '2025-01-01 00:00:00+00' + g * interval '7 minutes', 'initial visit ' || g
  FROM generate_series(1, 20000) g;
INSERT INTO records (consultation_id, kind, status, body)
  SELECT g, 'note', 'filed', repeat(md5('r' || g), 128) FROM generate_series(1, 20000) g;
CREATE PROCEDURE bench_workload(n integer) LANGUAGE plpgsql AS $$
DECLARE
  p bigint; c bigint;
  t0 constant timestamptz := timestamptz '2026-01-01 00:00:00+00';
BEGIN
  FOR i IN 1..n LOOP
    p := 1 + (i::bigint * 7919) % 20000;
    INSERT INTO consultations (patient_id, at, reason)
      VALUES (p, t0 + i * interval '1 minute', 'visit ' || i) RETURNING id INTO c;
    INSERT INTO records (consultation_id, kind, status, body)
      VALUES (c, 'note', 'new', repeat(md5('n' || i), 128));
    UPDATE patients SET visits = visits + 1, last_seen = t0 + i * interval '1 minute' WHERE id = p;
    UPDATE records SET status = 'reviewed' WHERE id = 1 + (i::bigint * 104729) % 20000;
    IF i % 4 = 0 THEN
      UPDATE records SET body = repeat(md5('u' || i), 128) WHERE id = 1 + (i::bigint * 15485863) % 20000;
    END IF;
    IF i % 5 = 0 AND i > 100 THEN
      DELETE FROM records WHERE id = 20000 + i - 100;
      DELETE FROM consultations WHERE id = 20000 + i - 100;
    END IF;
    COMMIT;
  END LOOP;
END $$;
ANALYZE;

import ArcaEngine
import ArcaFormat
import ArcaPostgres
import ArcaTesting
import Foundation
import Testing

/// `restore --data-only` into tables that exist: columns matched by name,
/// and the target's constraints and trigger states left as they were.
@Suite struct DataOnlyRestoreTests {
    /// A column added to an inheritance parent comes after the child's own
    /// columns in the child; a dump and restore of the schema puts it before
    /// them. The rows must load all the same.
    @Test func columnsInAnotherOrderLoadByName() throws {
        let source = try TestDatabase("order_src")
        let target = try TestDatabase("order_dst")
        defer { source.drop(); target.drop() }
        try source.execute("""
            CREATE TABLE vehicle (class text NOT NULL, aa int);
            CREATE TABLE car (bb text) INHERITS (vehicle);
            ALTER TABLE vehicle ADD COLUMN a int;
            INSERT INTO vehicle VALUES ('truck', 1, 2);
            INSERT INTO car (class, aa, bb, a) VALUES ('sedan', 3, 'four doors', 4), ('coupe', 5, NULL, 6);
            """)
        try source.copySchema(to: target)
        let columns = "SELECT string_agg(attname, ', ' ORDER BY attnum) FROM pg_attribute WHERE attrelid = 'car'::regclass AND attnum > 0"
        #expect(try source.value(columns) == "class, aa, bb, a")
        #expect(try target.value(columns) == "class, aa, a, bb")

        let backup = try Steps.backup(source, into: Steps.repository("order"))
        let restored = try Steps.restoreData(backup.path, into: target)
        #expect(restored.rows == 3)
        for query in ["SELECT class, aa, bb, a FROM ONLY car ORDER BY class", "SELECT class, aa, a FROM ONLY vehicle"] {
            #expect(try target.execute(query).rows == source.execute(query).rows)
        }
    }

    @Test func missingOrRequiredColumnsAreRefusedByName() throws {
        let source = try TestDatabase("columns_src")
        let target = try TestDatabase("columns_dst")
        defer { source.drop(); target.drop() }
        try source.execute("CREATE TABLE reading (id int, value numeric, note text); INSERT INTO reading VALUES (1, 2.5, 'a')")
        let backup = try Steps.backup(source, into: Steps.repository("columns"))

        // A column the archive holds is missing in the target.
        try target.execute("CREATE TABLE reading (note text, id int); INSERT INTO reading VALUES ('kept', 9)")
        let before = try target.snapshotText()
        do {
            try Steps.restoreData(backup.path, into: target)
            Issue.record("a target without column value took the rows")
        } catch let error as RestoreError {
            guard case .columnsDiffer(let table, let missing, let required) = error else { throw error }
            #expect(table == "public.reading")
            #expect(missing == ["value"])
            #expect(required == [])
            #expect("\(error)".contains("Table public.reading in the target cannot take the archive's rows: it lacks column(s) (value)"), "\(error)")
        }
        #expect(try target.snapshotText() == before)

        // An extra NOT NULL column without a default would get no value.
        try target.execute("DROP TABLE reading; CREATE TABLE reading (checked bool NOT NULL, note text, value numeric, id int)")
        do {
            try Steps.restoreData(backup.path, into: target)
            Issue.record("a target with a required column the archive lacks took the rows")
        } catch let error as RestoreError {
            guard case .columnsDiffer(_, let missing, let required) = error else { throw error }
            #expect(missing == [])
            #expect(required == ["checked"])
            #expect("\(error)".contains("(checked) are NOT NULL without a default"), "\(error)")
        }

        // Extra columns that need no value (nullable, defaulted, identity, generated) are fine.
        try target.execute("""
            DROP TABLE reading;
            CREATE TABLE reading (
                serial_no int GENERATED ALWAYS AS IDENTITY, checked bool NOT NULL DEFAULT false, remark text,
                note text, value numeric, doubled numeric GENERATED ALWAYS AS (value * 2) STORED, id int)
            """)
        try Steps.restoreData(backup.path, into: target)
        #expect(try target.value("SELECT format('%s %s %s %s %s %s', id, value, note, checked, remark IS NULL, doubled) FROM reading") == "1 2.5 a f t 5.0")
    }

    /// session_replication_role = replica keeps ordinary triggers and
    /// foreign-key checks off, but not ENABLE ALWAYS or ENABLE REPLICA
    /// triggers: those are disabled for the load and set back as they were.
    @Test func triggerStatesAndNotValidConstraintsStayAsTheyWere() throws {
        let source = try TestDatabase("states_src")
        let target = try TestDatabase("states_dst")
        defer { source.drop(); target.drop() }
        try source.execute("""
            CREATE TABLE account (id int PRIMARY KEY, name text);
            CREATE TABLE entry (id int, account_id int, amount int);
            CREATE TABLE ledger (day date, amount int) PARTITION BY RANGE (day);
            CREATE TABLE ledger_2026 PARTITION OF ledger FOR VALUES FROM ('2026-01-01') TO ('2027-01-01');
            INSERT INTO account VALUES (1, 'alice'), (2, 'bob');
            INSERT INTO entry VALUES (1, 1, 10), (2, 99, 20);
            INSERT INTO ledger VALUES ('2026-03-01', 5);
            -- Rows above were loaded before these existed.
            ALTER TABLE entry ADD CONSTRAINT entry_account FOREIGN KEY (account_id) REFERENCES account NOT VALID;
            ALTER TABLE entry ADD CONSTRAINT entry_amount CHECK (amount > 0) NOT VALID;
            CREATE FUNCTION shout() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN NEW.name := upper(NEW.name); RETURN NEW; END $$;
            CREATE FUNCTION tenfold() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN NEW.amount := NEW.amount * 10; RETURN NEW; END $$;
            CREATE TRIGGER always_shout BEFORE INSERT ON account FOR EACH ROW EXECUTE FUNCTION shout();
            ALTER TABLE account ENABLE ALWAYS TRIGGER always_shout;
            CREATE TRIGGER replica_tenfold BEFORE INSERT ON entry FOR EACH ROW EXECUTE FUNCTION tenfold();
            ALTER TABLE entry ENABLE REPLICA TRIGGER replica_tenfold;
            CREATE TRIGGER disabled_tenfold BEFORE INSERT ON entry FOR EACH ROW EXECUTE FUNCTION tenfold();
            ALTER TABLE entry DISABLE TRIGGER disabled_tenfold;
            CREATE TRIGGER origin_tenfold BEFORE INSERT ON entry FOR EACH ROW EXECUTE FUNCTION tenfold();
            CREATE TRIGGER ledger_tenfold BEFORE INSERT ON ledger FOR EACH ROW EXECUTE FUNCTION tenfold();
            ALTER TABLE ledger ENABLE ALWAYS TRIGGER ledger_tenfold;
            """)
        try source.copySchema(to: target)
        let states = """
            SELECT string_agg(format('%s.%s %s', tgrelid::regclass, tgname, tgenabled), ', ' ORDER BY tgrelid::regclass::text, tgname)
              FROM pg_trigger WHERE NOT tgisinternal
            """
        let constraints = """
            SELECT string_agg(format('%s %s', conname, convalidated), ', ' ORDER BY conname)
              FROM pg_constraint WHERE conrelid = 'entry'::regclass
            """
        #expect(try target.value(states) == source.value(states))
        #expect(try target.value(constraints) == "entry_account f, entry_amount f")

        let backup = try Steps.backup(source, into: Steps.repository("states"))
        try Steps.restoreData(backup.path, into: target)
        // No trigger fired on the restored rows, and the row violating the
        // NOT VALID foreign key was loaded as it is in the source.
        try Steps.expectEqual(source, target)
        #expect(try target.value("SELECT string_agg(name, ',' ORDER BY id) FROM account") == "alice,bob")
        #expect(try target.value(states) == source.value(states))
        #expect(try target.value(states)?.contains("account.always_shout A") == true)
        #expect(try target.value(states)?.contains("entry.replica_tenfold R") == true)
        #expect(try target.value(constraints) == "entry_account f, entry_amount f")
    }
}

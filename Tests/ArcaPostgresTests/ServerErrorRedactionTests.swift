@testable import ArcaPostgres
import ArcaTesting
import Foundation
import Testing

/// Row values never reach an error's description (which is what Arca shows,
/// logs, audits and answers over the API); the names and the SQLSTATE do.
@Suite struct ServerErrorRedactionTests {
    static let secret = "PATIENT-7731-SECRET"

    /// Runs `sql` on a fresh connection and returns the server's refusal.
    func refusal(_ database: TestDatabase, _ sql: String) throws -> PostgresError {
        let connection = try database.connect()
        do {
            try connection.execute(sql, during: "the test statement")
        } catch let error as PostgresError {
            return error
        }
        throw TestFailure("expected the server to refuse: \(sql)")
    }

    struct TestFailure: Error, CustomStringConvertible {
        var description: String
        init(_ description: String) { self.description = description }
    }

    @Test func constraintViolationsKeepNamesAndDropRowValues() throws {
        let database = try TestDatabase("redaction")
        defer { database.drop() }
        try database.execute("""
            CREATE TABLE ward (code text PRIMARY KEY);
            CREATE TABLE patient (
                id int PRIMARY KEY, identifier text CONSTRAINT patient_identifier_unique UNIQUE,
                ward text CONSTRAINT patient_ward_fk REFERENCES ward,
                CONSTRAINT patient_identifier_check CHECK (identifier NOT LIKE 'other%'));
            INSERT INTO patient VALUES (1, '\(Self.secret)', NULL);
            CREATE FUNCTION complain() RETURNS trigger LANGUAGE plpgsql AS $$
                BEGIN RAISE EXCEPTION 'patient % refused', NEW.identifier USING ERRCODE = 'unique_violation', HINT = NEW.identifier; END $$;
            CREATE TABLE audited (identifier text);
            CREATE TRIGGER complain BEFORE INSERT ON audited FOR EACH ROW EXECUTE FUNCTION complain();
            """)
        let cases: [(sql: String, sqlState: String, names: [String])] = [
            ("INSERT INTO patient VALUES (2, 'other \(Self.secret)', NULL)", "23514", ["patient_identifier_check", "patient"]),
            ("INSERT INTO patient (id, identifier) SELECT 4, identifier FROM patient", "23505", ["patient_identifier_unique", "patient"]),
            ("INSERT INTO patient VALUES (5, 'x', '\(Self.secret)')", "23503", ["patient_ward_fk", "patient"]),
            ("SELECT '\(Self.secret)'::int", "22P02", []),
            ("INSERT INTO audited VALUES ('\(Self.secret)')", "23505", []),
        ]
        for (sql, sqlState, names) in cases {
            let error = try refusal(database, sql)
            let text = "\(error)"
            #expect(!text.contains(Self.secret), "\(sql): \(text)")
            #expect(!text.contains("7731"), "\(sql): \(text)")
            #expect(text.contains("SQLSTATE \(sqlState)"), "\(sql): \(text)")
            for name in names { #expect(text.contains("\"\(name)\""), "\(sql): \(text)") }
            // The value was there to be leaked: the full report (for --verbose on a terminal) has it.
            let report = try #require(ServerError.all(in: error).first).unredactedReport
            #expect(report.contains(Self.secret), "\(sql): \(report)")
        }
        // A built-in message that names objects only is kept word for word.
        let check = "\(try refusal(database, "INSERT INTO patient VALUES (6, 'other \(Self.secret)', NULL)"))"
        #expect(check.contains(#"new row for relation "patient" violates check constraint "patient_identifier_check""#), "\(check)")
        #expect(check.contains(#"table "public"."patient""#), "\(check)")
    }

    @Test func connectionStringParseErrorsWithholdTheQuotedToken() throws {
        for (text, secret) in [
            ("postgresql://u:50%off@h/db", "50%off"),
            ("postgresql://u:pa\"ss%zz@h/db", "ss%zz"),
            ("host=h password=hunter two", "two"),
            ("postgresql://u:Pw-[secret@[::1/db", "Pw-[secret"),
        ] {
            do {
                _ = try ConnectionString(text)
                Issue.record("\(text) parsed")
            } catch {
                let message = "\(error)"
                #expect(!message.contains(secret), "\(message)")
                #expect(message.hasPrefix("Invalid connection string: "), "\(message)")
            }
        }
        #expect(ConnectionString.withholdingQuotedText(#"missing "=" after "two" in connection info string"#)
            == #"missing "=" after "…" in connection info string"#)
    }
}

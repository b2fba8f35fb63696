import ArcaPostgres
import ArcaTesting
import Foundation
import Testing

@Suite struct ConnectionTests {
    @Test func queriesWithParameters() throws {
        let connection = try PostgresConnection(try TestServer.connectionString())
        let result = try connection.query("SELECT $1::int + 1 AS n, $2::text AS t, NULL::text AS nothing", ["41", "héllo"])
        #expect(result[0, "n"] == "42")
        #expect(result[0, "t"] == "héllo")
        #expect(result[0, "nothing"] == nil)
        #expect(connection.serverVersionNumber >= 150000)
    }

    @Test func serverErrorsCarrySQLState() throws {
        let connection = try PostgresConnection(try TestServer.connectionString())
        do {
            try connection.execute("SELECT * FROM no_such_table")
            Issue.record("expected an error")
        } catch let error as PostgresError {
            #expect(error.sqlState == "42P01")
            #expect(error.description.contains("no_such_table"))
        }
        // The connection is still usable.
        #expect(try connection.execute("SELECT 1").singleValue == "1")
    }

    @Test func connectionFailureNamesTheTargetWithoutThePassword() throws {
        do {
            _ = try PostgresConnection(try ConnectionString("host=127.0.0.1 port=1 user=nobody password=TopSecret42 dbname=x connect_timeout=2"))
            Issue.record("expected a connection failure")
        } catch let error as PostgresError {
            guard case .connectionFailed = error else { Issue.record("wrong error \(error)"); return }
            #expect(error.description.contains("port=1"))
            #expect(!error.description.contains("TopSecret42"))
        }
    }

    @Test func copyOutAndInRoundTrip() throws {
        let database = try TestDatabase("copy")
        defer { database.drop() }
        try database.execute(#"""
            CREATE TABLE "Odd ""name""" (id int, note text, data bytea);
            INSERT INTO "Odd ""name""" SELECT g, E'tab\there\nnewline \\ ' || g, decode(lpad(to_hex(g), 2, '0'), 'hex') FROM generate_series(0, 255) g;
            CREATE TABLE copy_target (LIKE "Odd ""name""");
            """#)
        let connection = try database.connect()
        var stream: [UInt8] = []
        var messages = 0
        let rows = try connection.copyOut(#"COPY "Odd ""name""" TO STDOUT"#, during: "test") { row in
            stream.append(contentsOf: row)
            messages += 1
        }
        #expect(rows == 256)
        #expect(messages == 256)
        let loaded = try connection.copyIn("COPY copy_target FROM STDIN", during: "test") { writer in
            // Arbitrary split points, as chunks cut rows anywhere.
            try stream[..<1000].withUnsafeBytes { try writer.send($0) }
            try stream[1000...].withUnsafeBytes { try writer.send($0) }
        }
        #expect(loaded == 256)
        #expect(try database.value(#"SELECT count(*) FROM (SELECT * FROM "Odd ""name""" EXCEPT SELECT * FROM copy_target) d"#) == "0")
    }

    struct Stop: Error {}

    @Test func abortedCopyInLeavesNothingAndTheConnectionWorks() throws {
        let database = try TestDatabase("copyabort")
        defer { database.drop() }
        try database.execute("CREATE TABLE t (id int)")
        let connection = try database.connect()
        #expect(throws: Stop.self) {
            _ = try connection.copyIn("COPY t FROM STDIN", during: "test") { writer in
                try Array("1\n2\n".utf8).withUnsafeBytes { try writer.send($0) }
                throw Stop()
            }
        }
        #expect(try connection.execute("SELECT count(*) FROM t").singleValue == "0")
    }

    @Test func cancelledCopyOutLeavesTheConnectionUsable() throws {
        let database = try TestDatabase("copycancel")
        defer { database.drop() }
        try database.execute("CREATE TABLE t AS SELECT g AS id FROM generate_series(1, 200000) g")
        let connection = try database.connect()
        var seen = 0
        #expect(throws: Stop.self) {
            _ = try connection.copyOut("COPY t TO STDOUT", during: "test") { _ in
                seen += 1
                if seen == 10 { throw Stop() }
            }
        }
        #expect(try connection.execute("SELECT 7").singleValue == "7")
    }

    @Test func badCopyDataIsAServerErrorNamingTheProblem() throws {
        let database = try TestDatabase("copybad")
        defer { database.drop() }
        try database.execute("CREATE TABLE t (id int)")
        let connection = try database.connect()
        do {
            _ = try connection.copyIn("COPY t FROM STDIN", during: "COPY into t") { writer in
                try Array("1\nnot a number\n".utf8).withUnsafeBytes { try writer.send($0) }
            }
            Issue.record("expected an error")
        } catch let error as PostgresError {
            #expect(error.sqlState == "22P02")
            #expect(error.description.contains("COPY into t"))
        }
    }

    @Test func terminatedBackendIsAConnectionLoss() throws {
        let connection = try PostgresConnection(try TestServer.connectionString(), applicationName: "arca terminate test")
        let pid = connection.backendPID
        try TestServer.execute("SELECT pg_terminate_backend(\(pid))")
        Thread.sleep(forTimeInterval: 0.2)
        do {
            try connection.execute("SELECT 1")
            Issue.record("expected the connection to be gone")
        } catch let error as PostgresError {
            guard case .connectionLost = error else { Issue.record("wrong error \(error)"); return }
        }
    }
}

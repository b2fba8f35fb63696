@testable import ArcaPostgres
import Testing

@Suite struct ConnectionStringTests {
    @Test func parsesURLs() throws {
        let url = try ConnectionString("postgresql://alice:s3cret@db.example:6543/medical?sslmode=disable")
        #expect(url.value("host") == "db.example")
        #expect(url.value("port") == "6543")
        #expect(url.value("dbname") == "medical")
        #expect(url.value("password") == "s3cret")
        #expect(!url.redacted.contains("s3cret"))
        #expect(url.redacted == "host=db.example port=6543 dbname=medical user=alice")
    }

    @Test func parsesKeyValue() throws {
        let conninfo = try ConnectionString("host=/tmp/socket dbname='my db' password=hunter2 user=bob")
        #expect(conninfo.value("dbname") == "my db")
        #expect(!conninfo.redacted.contains("hunter2"))
        // Round trip through the quoted conninfo form.
        #expect(try ConnectionString(conninfo.conninfo) == conninfo)
    }

    @Test func quotesAwkwardValues() throws {
        let conninfo = try ConnectionString(#"dbname=x password='it\'s \\ odd'"#)
        #expect(conninfo.value("password") == #"it's \ odd"#)
        let again = try ConnectionString(conninfo.conninfo)
        #expect(again.value("password") == conninfo.value("password"))
    }

    @Test func replacesTheDatabase() throws {
        let url = try ConnectionString("postgresql://alice@host/one")
        #expect(url.replacing(database: "two").value("dbname") == "two")
        #expect(url.replacing(database: "two").value("user") == "alice")
    }

    @Test(arguments: ["postgresql://host/db?nosuchoption=1", "host=x = y", "dbname='unterminated"])
    func rejectsMalformed(_ text: String) {
        #expect(throws: ConnectionString.ParseError.self) { try ConnectionString(text) }
    }

    @Test func identifiersAreQuoted() {
        #expect(SQLIdentifier.quote("User") == #""User""#)
        #expect(SQLIdentifier.quote(#"quote"d"#) == #""quote""d""#)
        #expect(SQLIdentifier.qualified("Odd Schema", "with space") == #""Odd Schema"."with space""#)
        #expect(SQLIdentifier.literal("it's") == "'it''s'")
    }
}

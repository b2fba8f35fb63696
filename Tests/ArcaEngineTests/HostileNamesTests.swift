import ArcaEngine
import ArcaFormat
import ArcaPostgres
import ArcaTesting
import Foundation
import Testing

/// Object names and literals built to attack a restore
/// (Tests/Fixtures/hostile_names.sql): every restore path reproduces them
/// exactly and runs none of the statements hidden in them.
@Suite struct HostileNamesTests {
    static func source(_ label: String) throws -> TestDatabase {
        let database = try TestDatabase(label)
        try database.load(file: TestPaths.fixtures + "/hostile_names.sql")
        return database
    }

    /// No `pwned_*` table: none of the statements inside names or literals ran.
    static func expectNothingInjected(_ database: TestDatabase, sourceLocation: SourceLocation = #_sourceLocation) throws {
        #expect(try database.value("SELECT count(*) FROM pg_catalog.pg_class WHERE relname LIKE 'pwned%'") == "0", sourceLocation: sourceLocation)
    }

    @Test func serialAndParallelRestoresAreExact() throws {
        let source = try Self.source("hostile_src")
        defer { source.drop() }
        let backup = try Steps.backup(source, into: Steps.repository("hostile"))

        let serial = try TestDatabase("hostile_serial")
        defer { serial.drop() }
        try Steps.restore(backup.path, into: serial)
        try Self.expectNothingInjected(serial)
        try Steps.expectEqual(source, serial)

        let parallel = try TestDatabase("hostile_parallel", creating: false)
        defer { parallel.drop() }
        try Steps.restore(backup.path, into: parallel) {
            $0.create = true
            $0.jobs = 2
        }
        try Self.expectNothingInjected(parallel)
        try Steps.expectEqual(source, parallel)
    }

    @Test func cleanAndDataOnlyRestoresAreExact() throws {
        let source = try Self.source("hostile_clean_src")
        let target = try TestDatabase("hostile_clean_dst")
        defer { source.drop(); target.drop() }
        let backup = try Steps.backup(source, into: Steps.repository("hostile_clean"))
        try Steps.restore(backup.path, into: target)
        // The target drifts; --clean drops every object of the archive by its
        // exact name and recreates it.
        try target.execute("""
            DELETE FROM public.plain WHERE id > 5;
            CREATE TABLE public.local_notes (note text);
            """)
        try Steps.expectDifferent(source, target)
        try Steps.restore(backup.path, into: target) { $0.clean = true }
        try Self.expectNothingInjected(target)
        try target.execute("DROP TABLE public.local_notes")
        try Steps.expectEqual(source, target)

        try target.execute("DELETE FROM public.plain; UPDATE public.plain SET label = 'changed'")
        try Steps.restoreData(backup.path, into: target)
        try Self.expectNothingInjected(target)
        try Steps.expectEqual(source, target)
    }

    /// `--table` selects by dump id and dependency, never by name: the
    /// hostile tables come back with their own indexes, constraints,
    /// triggers, policies and comments, and the rest stays out.
    @Test func tableRestoreSelectsByDependency() throws {
        let source = try Self.source("hostile_table_src")
        defer { source.drop() }
        let backup = try Steps.backup(source, into: Steps.repository("hostile_table"))

        let subset = try TestDatabase("hostile_table_dst")
        defer { subset.drop() }
        try Steps.restore(backup.path, into: subset, tables: TableFilter(include: ["evil*.rec*", "evil*.child*"]))
        try Self.expectNothingInjected(subset)
        // What the subset must equal: everything but the table and the view it left out.
        let expected = try TestDatabase("hostile_table_expected")
        defer { expected.drop() }
        try Steps.restore(backup.path, into: expected)
        let view = try #require(try expected.value("SELECT oid::regclass::text FROM pg_class WHERE relkind = 'v' AND relnamespace::regnamespace::text LIKE '%evil%'"))
        try expected.execute("DROP VIEW \(view); DROP TABLE public.plain")
        try Steps.expectEqual(expected, subset)
        #expect(try subset.value("SELECT count(*) FROM pg_catalog.pg_policy") == "1")
        #expect(try subset.value("SELECT count(*) FROM pg_catalog.pg_trigger WHERE NOT tgisinternal") == "1")

        // The other way round: only public.plain, without the hostile objects' comments or grants.
        let plain = try TestDatabase("hostile_table_plain")
        defer { plain.drop() }
        try Steps.restore(backup.path, into: plain, tables: TableFilter(include: ["public.plain"]))
        try Self.expectNothingInjected(plain)
        #expect(try plain.value("SELECT count(*) FROM public.plain") == "10")
        #expect(try plain.value("SELECT count(*) FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname LIKE 'evil%' AND c.relkind IN ('r', 'v', 'i')") == "0")
        #expect(try plain.value("SELECT obj_description('public.plain'::regclass, 'pg_class') LIKE 'it''s;%'") == "t")
    }
}

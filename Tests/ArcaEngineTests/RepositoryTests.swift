import ArcaEngine
import ArcaFormat
import ArcaTesting
import Foundation
import Testing

@Suite struct RepositoryTests {
    func mode(_ path: String) throws -> Int {
        try (FileManager.default.attributesOfItem(atPath: path)[.posixPermissions] as? NSNumber)?.intValue ?? -1
    }

    @Test func backupFilesArePrivateAndTheSidecarChecks() throws {
        let source = try TestDatabase("perm_src")
        defer { source.drop() }
        try source.execute("CREATE TABLE t AS SELECT g FROM generate_series(1, 100) g")
        let repository = Steps.repository("perm")
        let backup = try Steps.backup(source, into: repository)
        _ = try Verification(path: backup.path, repository: repository).run()
        #expect(try mode(repository.root) == 0o700)
        #expect(try mode(repository.localDirectory) == 0o700)
        #expect(try mode(repository.temporaryDirectory) == 0o700)
        let id = try #require(BackupID(backup.backupId))
        for path in [backup.path, Repository.checksumPath(ofArchive: backup.path), repository.verificationPath(id)] {
            #expect(try mode(path) == 0o600, "\(path)")
        }
        let check = try Tool.capture("/bin/sh", ["-c", "cd '\(repository.localDirectory)' && md5sum -c '\(backup.backupId).arca.md5'"])
        #expect(check.status == 0, "\(check.stdout)\(check.stderr)")
        #expect(Steps.files(in: repository.temporaryDirectory).isEmpty)
    }

    /// Arca sets the mode of the folders it creates only: an existing
    /// folder given as the repository keeps its mode (`--repo /tmp` must not
    /// make /tmp private), and a repository folder that is a symbolic link
    /// is refused, so nothing is written, or has its mode changed, through it.
    @Test func existingFoldersKeepTheirModeAndLinksAreRefused() throws {
        let folder = TestPaths.temporaryDirectory("shared-folder")
        chmod(folder, 0o755)
        let shared = Repository(root: folder)
        try shared.prepare()
        #expect(try mode(folder) == 0o755)
        #expect(try mode(shared.localDirectory) == 0o700)

        let elsewhere = TestPaths.temporaryDirectory("link-target")
        chmod(elsewhere, 0o755)
        let linked = Repository(root: TestPaths.temporaryDirectory("linked") + "/repo")
        try FileManager.default.createDirectory(atPath: linked.root, withIntermediateDirectories: true)
        try FileManager.default.createSymbolicLink(atPath: linked.localDirectory, withDestinationPath: elsewhere)
        do {
            try linked.prepare()
            Issue.record("a repository whose local/ is a symbolic link was used")
        } catch RepositoryError.symbolicLink(let path) {
            #expect(path == linked.localDirectory)
        }
        #expect(try mode(elsewhere) == 0o755)
        #expect(Steps.files(in: elsewhere).isEmpty)
    }

    @Test func idsAreUniqueWithinOneSecond() throws {
        let repository = Steps.repository("ids")
        try repository.prepare()
        let now = Date(timeIntervalSince1970: 1_733_061_930)
        let first = try repository.reserve(startedAt: now)
        let second = try repository.reserve(startedAt: now)
        #expect(first.id != second.id)
        #expect(first.id.rawValue.hasPrefix("backup_20241201_140530_000"))
        #expect(second.id.rawValue.hasPrefix("backup_20241201_140530_000"))
    }

    @Test func listsNewestFirstWithIntegrity() throws {
        let source = try TestDatabase("list_src")
        defer { source.drop() }
        try source.execute("CREATE TABLE t AS SELECT g FROM generate_series(1, 10) g")
        let repository = Steps.repository("list")
        let older = try Steps.backup(source, into: repository)
        let newer = try Steps.backup(source, into: repository)
        _ = try Verification(path: older.path, repository: repository).run()
        let listings = try repository.listings()
        #expect(listings.map(\.id) == [newer.backupId, older.backupId])
        #expect(listings.map(\.integrity) == [.unverified, .verified])
        #expect(listings[0].rows == 10)
        #expect(listings[0].bytes == newer.bytes)
    }

    @Test func locatesIDsAndPathsAndRejectsEverythingElse() throws {
        let repository = Steps.repository("locate")
        try repository.prepare()
        #expect(throws: RepositoryError.self) { try repository.locate("backup_20241201_140530") }
        for reference in ["%2e%2e", "", "backup_x", "passwd\u{0}"] {
            do {
                _ = try repository.locate(reference)
                Issue.record("accepted \(reference.debugDescription)")
            } catch RepositoryError.invalidReference {
            }
        }
        #expect(throws: RepositoryError.self) { try repository.locate("../../etc/passwd.arca") }
        do {
            _ = try FileSource(path: repository.localDirectory)
            Issue.record("opened a directory as an archive")
        } catch RepositoryError.notARegularFile {
        }
    }
}

import ArcaEngine
import ArcaFormat
import ArcaTesting
import Foundation
import Testing

/// A passphrase costs one scrypt derivation per process, not one per
/// archive: archives written into a repository share its salt
/// (`<repo>/passphrase.json`), and each still carries it, so a host with
/// only the archives reads them.
@Suite struct PassphraseRepositoryTests {
    static let environment = ["ARCA_PASSPHRASE": "correct horse battery staple", "ARCA_PASSPHRASE_COST": "10"]

    /// The passphrase as a new process resolves it: no derivation made yet.
    static func freshKey() throws -> (ArchiveKey, Passphrase) {
        let key = try #require(try KeyConfiguration.resolve(environment: environment))
        guard case .passphrase(let passphrase) = key else { throw OperationError.invalidConfiguration("not a passphrase") }
        return (key, passphrase)
    }

    /// Writes `count` small archives into `repository` as a backup does: the
    /// key from `writingKey`, a reserved id, a published file.
    static func writeArchives(_ count: Int, into repository: Repository, key: ArchiveKey?) throws {
        try repository.prepare()
        for index in 0..<count {
            let reservation = try repository.reserve(startedAt: Date(timeIntervalSince1970: 1_733_061_930 + Double(index)))
            let header = FileHeader(chunkSize: 4096, compression: .zstd, compressionLevel: 3, archiveID: .random())
            let writer = try ArchiveWriter(sink: reservation.sink, header: header, key: try repository.writingKey(key))
            let manifest = Manifest(
                archiveId: header.archiveID.description, backupId: reservation.id.rawValue, startedAt: "2024-12-01T14:05:30.123Z",
                completedAt: "2024-12-01T14:05:31.000Z", tool: .init(version: "test"),
                source: .init(database: "db", serverVersion: "15.18", serverVersionNumber: 150018, snapshot: "s", systemIdentifier: nil, encoding: "UTF8"),
                compression: .init(level: 3), chunkSize: 4096, tables: [], sequences: [])
            let summary = try writer.finish(manifest: manifest)
            try reservation.sink.syncAndClose()
            _ = try repository.publish(reservation, fileMD5: summary.fileMD5)
        }
    }

    @Test func listingFiftyArchivesCostsOneDerivation() throws {
        let repository = Steps.repository("passphrase_list")
        let (writingKey, _) = try Self.freshKey()
        try Self.writeArchives(50, into: repository, key: writingKey)
        let plain = Steps.repository("passphrase_list_plain")
        try Self.writeArchives(50, into: plain, key: nil)

        let (readingKey, counter) = try Self.freshKey()
        let listings = try repository.listings(key: readingKey)
        #expect(listings.count == 50)
        #expect(listings.allSatisfy { $0.encrypted == true && $0.integrity != .unreadable && $0.tables == 0 }, "\(listings.compactMap(\.error))")
        #expect(counter.derivationCount == 1, "listing 50 archives ran scrypt \(counter.derivationCount) times")
        // Opening them all again, and listing the plain repository, derives nothing more.
        for id in try repository.backupIDs() { _ = try ArchiveReader(source: try FileSource(path: repository.archivePath(id)), key: readingKey) }
        _ = try plain.listings(key: readingKey)
        #expect(counter.derivationCount == 1)

        // A host with only the archives (no passphrase.json) reads them all the same.
        try FileManager.default.removeItem(atPath: repository.passphraseSaltPath)
        let (otherHostKey, otherHost) = try Self.freshKey()
        #expect(try repository.listings(key: otherHostKey).allSatisfy { $0.integrity != .unreadable })
        #expect(otherHost.derivationCount == 1)
    }

    /// The backup runner writes with the repository's salt.
    @Test func backupsShareTheRepositorySalt() throws {
        let source = try TestDatabase("passphrase_src")
        defer { source.drop() }
        try source.execute("CREATE TABLE t AS SELECT g FROM generate_series(1, 100) g")
        let repository = Steps.repository("passphrase_backup")
        let (key, _) = try Self.freshKey()
        let backups = try (0..<2).map { _ in try Steps.backup(source, into: repository, key: key) }
        let salts = try backups.map { try #require(try ArchiveOutline(source: try FileSource(path: $0.path)).keyEnvelope).salt }
        #expect(salts[0] == salts[1])
        let (readingKey, counter) = try Self.freshKey()
        #expect(try repository.listings(key: readingKey).map(\.rows) == [100, 100])
        #expect(counter.derivationCount == 1)
    }

    @Test func theSaltFileIsPrivateAndKeptAcrossBackups() throws {
        let repository = Steps.repository("passphrase_file")
        let (key, _) = try Self.freshKey()
        try Self.writeArchives(2, into: repository, key: key)
        let mode = try (FileManager.default.attributesOfItem(atPath: repository.passphraseSaltPath)[.posixPermissions] as? NSNumber)?.intValue
        #expect(mode == 0o600)
        let salts = try repository.backupIDs().map { id in
            try #require(try ArchiveOutline(source: try FileSource(path: repository.archivePath(id))).keyEnvelope).salt
        }
        #expect(Set(salts).count == 1)
        let recorded = try #require(FileManager.default.contents(atPath: repository.passphraseSaltPath))
        #expect(String(decoding: recorded, as: UTF8.self).contains(Hex.encode(salts[0])))

        // Another configured cost gets a salt of its own, recorded in its place.
        let costlier = try #require(try KeyConfiguration.resolve(environment: ["ARCA_PASSPHRASE": "correct horse battery staple", "ARCA_PASSPHRASE_COST": "11"]))
        try Self.writeArchives(1, into: repository, key: costlier)
        let envelopes = try repository.backupIDs().map { id in
            try #require(try ArchiveOutline(source: try FileSource(path: repository.archivePath(id))).keyEnvelope)
        }
        let costlierEnvelopes = envelopes.filter { $0.cost == ScryptCost(log2N: 11) }
        #expect(envelopes.count == 3 && costlierEnvelopes.count == 1 && costlierEnvelopes.allSatisfy { $0.salt != salts[0] })
    }

    /// The salt file is hostile input too: a cost out of bounds, a salt of
    /// the wrong length, or a file of any size is refused with its path.
    @Test(arguments: [
        #"{"log2N":30,"p":1,"r":8,"salt":"000102030405060708090a0b0c0d0e0f"}"#,
        #"{"log2N":10,"p":16,"r":8,"salt":"000102030405060708090a0b0c0d0e0f"}"#,
        #"{"log2N":10,"p":1,"r":8,"salt":"0001"}"#,
        #"{"log2N":10,"p":1,"r":8}"#,
        "not json",
        String(repeating: " ", count: 4097),
    ])
    func aForgedSaltFileIsRefused(contents: String) throws {
        let repository = Steps.repository("passphrase_forged")
        try repository.prepare()
        try Array(contents.utf8).withUnsafeBytes { bytes in
            let sink = try FileSink(creatingExclusively: repository.passphraseSaltPath)
            try sink.write(bytes)
            try sink.syncAndClose()
        }
        let (key, _) = try Self.freshKey()
        do {
            _ = try repository.writingKey(key)
            Issue.record("a forged passphrase.json was accepted")
        } catch let error as RepositoryError {
            guard case .malformedFile(let path, _) = error else { Issue.record("\(error)"); return }
            #expect(path == repository.passphraseSaltPath)
        }
    }

    @Test func costOutsideTheBoundsIsAConfigurationError() {
        for cost in ["9", "17", "20", "x"] {
            #expect(throws: OperationError.self) {
                try KeyConfiguration.resolve(environment: ["ARCA_PASSPHRASE": "correct horse battery staple", "ARCA_PASSPHRASE_COST": cost])
            }
        }
    }
}

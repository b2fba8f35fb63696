import ArcaEngine
import ArcaFormat
import ArcaTesting
import Foundation
import Testing

/// The small files beside the archives (sidecars, verification records) are
/// read with a size limit: someone who can write the repository folder
/// cannot make a reader allocate what a planted file declares or holds.
@Suite struct BoundedFilesTests {
    @Test func anOversizedSidecarIsRefusedNotRead() throws {
        let repository = Steps.repository("bounded_sidecar")
        try PassphraseRepositoryTests.writeArchives(1, into: repository, key: nil)
        let id = try #require(try repository.backupIDs().first)
        let archive = repository.archivePath(id)
        let sidecar = Repository.checksumPath(ofArchive: archive)
        let recorded = try #require(FileManager.default.contents(atPath: sidecar))
        // The right MD5 first, then 64 KiB of padding: a whole-file read would accept it.
        try (recorded + Data(repeating: 0x20, count: 64 << 10)).write(to: URL(fileURLWithPath: sidecar))
        do {
            let result = try Verification(path: archive, repository: repository).run()
            Issue.record("an oversized sidecar was read (sidecar: \(result.sidecar))")
        } catch RepositoryError.malformedFile(let path, let detail) {
            #expect(path == sidecar && detail.contains("larger than 4096 bytes"))
        }
    }

    @Test func anOversizedVerificationRecordCountsAsNone() throws {
        let repository = Steps.repository("bounded_record")
        try PassphraseRepositoryTests.writeArchives(1, into: repository, key: nil)
        let id = try #require(try repository.backupIDs().first)
        let record = #"{"intact":true,"problems":[],"tool":"arca","verifiedAt":"2024-12-01T14:05:30.123Z"}"#
        try Data((record + String(repeating: " ", count: 2 << 20)).utf8).write(to: URL(fileURLWithPath: repository.verificationPath(id)))
        #expect(repository.verificationRecord(id) == nil)
        #expect(try repository.listings().first?.integrity == .unverified)
    }
}

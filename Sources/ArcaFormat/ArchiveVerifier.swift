/// The result of reading a whole archive once and checking everything.
public struct VerificationReport: Sendable {
    /// Every problem found, in file order. Empty means the archive is intact.
    public var problems: [ArchiveError] = []
    public var tablesChecked = 0
    public var chunksChecked = 0
    public var rawBytes: UInt64 = 0
    /// MD5 of the whole file, trailer included: what the sidecar must say.
    public var fileMD5 = ""
    /// Whether the archive is encrypted (its header says so).
    public var encrypted = false

    public var isIntact: Bool { problems.isEmpty }

    public init() {}
}

extension Trailer {
    /// The body digests computed by a reader, against the recorded ones.
    func bodyProblem(md5: [UInt8], sha256: [UInt8]) -> ArchiveError? {
        if md5 != bodyMD5 { return .digestMismatch(.body, algorithm: "md5", expected: Hex.encode(bodyMD5), actual: Hex.encode(md5)) }
        if sha256 != bodySHA256 { return .digestMismatch(.body, algorithm: "sha256", expected: Hex.encode(bodySHA256), actual: Hex.encode(sha256)) }
        return nil
    }
}

/// Reads an archive from the first byte to the last, in order (FORMAT.md,
/// "How a reader proceeds", step 6). Damage to a chunk is recorded and the
/// pass goes on, so one run names every damaged chunk; damage to the header,
/// trailer or manifest is thrown, because without them nothing can be located.
public struct ArchiveVerifier {
    public let reader: ArchiveReader

    public init(reader: ArchiveReader) { self.reader = reader }

    public init(source: ByteSource) throws { reader = try ArchiveReader(source: source) }

    /// `progress` receives the number of bytes read so far.
    public func verify(progress: (UInt64) -> Void = { _ in }) throws -> VerificationReport {
        let source = reader.source
        let manifest = reader.manifest
        let header = reader.header
        var report = VerificationReport()
        report.encrypted = header.isEncrypted
        let bodyMD5 = Digest(.md5)
        let bodySHA256 = Digest(.sha256)
        func hashBody(_ bytes: UnsafeRawBufferPointer) {
            bodyMD5.update(bytes)
            bodySHA256.update(bytes)
        }

        struct Slot { let table: Int; let sequence: Int; let chunk: Manifest.Chunk }
        let streams = manifest.streams
        let slots = streams.enumerated().flatMap { index, stream in
            stream.descriptor.chunks.enumerated().map { Slot(table: index, sequence: $0.offset, chunk: $0.element) }
        }.sorted { $0.chunk.offset < $1.chunk.offset }

        let digests = streams.map { _ in StreamDigests() }
        var damagedTables = Set<Int>()
        // The large-object stream's records are read as its chunks come
        // (a stream's chunks lie in sequence order): what a restore needs of it.
        let recordsIndex = manifest.largeObjectData == nil ? nil : streams.count - 1
        var records = manifest.largeObjectData.map { LargeObjectRecords($0, chunkSize: header.chunkSize) }
        let decoder = reader.makeDecoder()
        // Sized by the frames the (validated) manifest lists, which lie in
        // the file, not by the chunk size the header declares.
        var buffer = [UInt8](repeating: 0, count: max(1 << 16, manifest.largestFrameLength))

        var position: UInt64 = 0
        // Feeds bytes [position, end) to the body digests, in bounded reads.
        func consume(upTo end: UInt64) throws {
            while position < end {
                let count = Int(min(end - position, UInt64(buffer.count)))
                try buffer.withUnsafeMutableBytes { bytes in
                    let slice = UnsafeMutableRawBufferPointer(rebasing: bytes[0..<count])
                    try source.read(at: position, into: slice)
                    hashBody(UnsafeRawBufferPointer(slice))
                }
                position += UInt64(count)
            }
        }

        try consume(upTo: header.dataOffset)
        for slot in slots {
            let named = streams[slot.table]
            let location = ArchiveReader.location(of: named.descriptor, named: named.name, sequence: slot.sequence)
            if slot.chunk.offset > position {
                report.problems.append(.indexMismatch(.frame(offset: position), "\(slot.chunk.offset - position) bytes are not listed in the manifest"))
                try consume(upTo: slot.chunk.offset)
            }
            let length = ArchiveFormat.frameHeaderLength + Int(slot.chunk.storedLength)
            try buffer.withUnsafeMutableBytes { bytes in
                let frame = UnsafeMutableRawBufferPointer(rebasing: bytes[0..<length])
                try source.read(at: slot.chunk.offset, into: frame)
                hashBody(UnsafeRawBufferPointer(frame))
                do {
                    let raw = try decoder.decode(
                        frame: UnsafeRawBufferPointer(frame), expected: slot.chunk, stream: named.descriptor.stream,
                        sequence: UInt64(slot.sequence), location: location)
                    digests[slot.table].update(raw)
                    report.rawBytes += UInt64(raw.count)
                    if slot.table == recordsIndex, !damagedTables.contains(slot.table) {
                        do {
                            try records?.feed(raw) { _ in }
                        } catch let error as ArchiveError {
                            report.problems.append(error)
                            records = nil
                        }
                    }
                } catch let error as ArchiveError {
                    report.problems.append(error)
                    damagedTables.insert(slot.table)
                }
            }
            position = slot.chunk.offset + UInt64(length)
            report.chunksChecked += 1
            progress(position)
        }
        if reader.trailer.manifestOffset > position {
            report.problems.append(.indexMismatch(.frame(offset: position), "\(reader.trailer.manifestOffset - position) bytes before the manifest are not listed in it"))
        }
        try consume(upTo: reader.trailer.manifestOffset + reader.trailer.manifestLength)

        for (index, named) in streams.enumerated() where !damagedTables.contains(index) {
            let (md5, sha256) = digests[index].finish()
            let stream = named.descriptor
            if md5 != stream.md5 {
                report.problems.append(.digestMismatch(.stream(named.name), algorithm: "md5", expected: stream.md5, actual: md5))
            } else if sha256 != stream.sha256 {
                report.problems.append(.digestMismatch(.stream(named.name), algorithm: "sha256", expected: stream.sha256, actual: sha256))
            }
        }
        if let recordsIndex, !damagedTables.contains(recordsIndex), let records {
            do { try records.finish() } catch let error as ArchiveError { report.problems.append(error) }
        }
        report.tablesChecked = manifest.storedTables.count

        if let problem = reader.trailer.bodyProblem(md5: bodyMD5.finish(), sha256: bodySHA256.finish()) { report.problems.append(problem) }
        try consume(upTo: source.size)
        report.fileMD5 = Hex.encode(bodyMD5.finish())
        progress(position)
        return report
    }

    /// What can be checked without the key of an encrypted archive: that
    /// the stored bytes are the ones written (the trailer's body MD5 and
    /// SHA-256, and the whole-file MD5 for the sidecar). Reads the file once.
    public static func verifyStoredBytes(source: ByteSource, progress: (UInt64) -> Void = { _ in }) throws -> VerificationReport {
        let outline = try ArchiveOutline(source: source)
        var report = VerificationReport()
        report.encrypted = outline.header.isEncrypted
        let md5 = Digest(.md5), sha256 = Digest(.sha256)
        let bodyEnd = outline.trailer.manifestOffset + outline.trailer.manifestLength
        var buffer = [UInt8](repeating: 0, count: 1 << 20)
        var position: UInt64 = 0
        while position < source.size {
            if position == bodyEnd, let problem = outline.trailer.bodyProblem(md5: md5.finish(), sha256: sha256.finish()) {
                report.problems.append(problem)
            }
            let limit = position < bodyEnd ? bodyEnd : source.size
            let count = Int(min(limit - position, UInt64(buffer.count)))
            try buffer.withUnsafeMutableBytes { bytes in
                let slice = UnsafeMutableRawBufferPointer(rebasing: bytes[0..<count])
                try source.read(at: position, into: slice)
                md5.update(UnsafeRawBufferPointer(slice))
                if position < bodyEnd { sha256.update(UnsafeRawBufferPointer(slice)) }
            }
            position += UInt64(count)
            progress(position)
        }
        report.fileMD5 = Hex.encode(md5.finish())
        return report
    }
}

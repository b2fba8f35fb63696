// libFuzzer entry point for the archive reader (scripts/fuzz.sh builds it;
// it is not part of the package). The fuzzer's input drives the same
// structure-aware mutations as the test suite's seeded run
// (Tests/ArcaFormatTests/ArchiveMutator.swift), so coverage guidance steers
// which field of which structure gets which value. A trap, or an outcome
// that is neither a typed error nor a valid read, aborts: that is a finding.

import Foundation

let seeds = ArchiveMutator<InputDrivenGenerator>.seeds

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzArchive(_ data: UnsafePointer<UInt8>?, _ count: Int) -> CInt {
    let input = data.map { Array(UnsafeBufferPointer(start: $0, count: count)) } ?? []
    var mutator = ArchiveMutator(random: InputDrivenGenerator(input))
    let mutated = mutator.mutate(seeds)
    if case .unexpected(let problem) = ArchiveMutator<InputDrivenGenerator>.exercise(mutated.bytes, key: mutated.key) {
        fatalError("unexpected outcome: \(problem)")
    }
    return 0
}

// swift-tools-version: 6.1
// Benchmarks live in their own package so that the main build and test never
// resolve package-benchmark. Run from this folder:
//   swift package --allow-writing-to-package-directory benchmark
import Foundation
import PackageDescription

// A path dependency's package identity is its folder's name, which depends on
// where the repository was cloned.
let arca = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().lastPathComponent

let package = Package(
    name: "ArcaBenchmarks",
    platforms: [.macOS(.v14)],
    dependencies: [
        .package(path: "../"),
        .package(url: "https://github.com/ordo-one/benchmark", from: "1.38.0", traits: ["MallocInterposer"]),
    ],
    targets: [
        .executableTarget(
            name: "ArchivePipeline",
            dependencies: [
                .product(name: "ArcaFormat", package: arca),
                .product(name: "Benchmark", package: "benchmark"),
            ],
            path: "Benchmarks/ArchivePipeline",
            plugins: [.plugin(name: "BenchmarkPlugin", package: "benchmark")]),
    ]
)

// swift-tools-version: 6.0
// Arca: a PostgreSQL backup engine. Layers, bottom to top:
//   CLibpq, CZstd, COpenSSL  system libraries (module maps + shim headers)
//   ArcaFormat               the archive format: frames, manifest, trailer, checksums,
//                            compression. No database, no network, opens no file.
//   ArcaPostgres             libpq: connections, queries, COPY streams, catalog queries
//   ArcaEngine               backup, restore, verify, repository, database comparison
//   arca (ArcaCLI)           the command-line shell
import PackageDescription

let package = Package(
    name: "Arca",
    platforms: [.macOS(.v14)],
    products: [
        .executable(name: "arca", targets: ["ArcaCLI"]),
        .library(name: "ArcaFormat", targets: ["ArcaFormat"]),
        .library(name: "ArcaPostgres", targets: ["ArcaPostgres"]),
        .library(name: "ArcaEngine", targets: ["ArcaEngine"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        .package(url: "https://github.com/apple/swift-log", from: "1.6.0"),
    ],
    targets: [
        .systemLibrary(
            name: "CLibpq", pkgConfig: "libpq",
            providers: [.apt(["libpq-dev"])]),
        .systemLibrary(
            name: "CZstd", pkgConfig: "libzstd",
            providers: [.apt(["libzstd-dev"])]),
        .systemLibrary(
            name: "COpenSSL", pkgConfig: "libcrypto",
            providers: [.apt(["libssl-dev"])]),

        .target(name: "ArcaFormat", dependencies: ["CZstd", "COpenSSL"]),
        .target(name: "ArcaPostgres", dependencies: ["CLibpq"]),
        .target(
            name: "ArcaEngine",
            dependencies: [
                "ArcaFormat", "ArcaPostgres",
                .product(name: "Logging", package: "swift-log"),
            ]),
        .executableTarget(
            name: "ArcaCLI",
            dependencies: [
                "ArcaEngine",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
            ]),

        .target(
            name: "ArcaTesting",
            dependencies: ["ArcaPostgres", "ArcaEngine"],
            path: "Tests/ArcaTesting"),
        .testTarget(name: "ArcaFormatTests", dependencies: ["ArcaFormat"]),
        .testTarget(name: "ArcaPostgresTests", dependencies: ["ArcaPostgres", "ArcaTesting"]),
        .testTarget(
            name: "ArcaEngineTests",
            dependencies: ["ArcaEngine", "ArcaTesting"]),
        .testTarget(name: "ArcaCLITests", dependencies: ["ArcaTesting"]),
    ],
    swiftLanguageModes: [.v6]
)

// swift-tools-version: 6.0
// Arca: a PostgreSQL backup engine. Layers, bottom to top:
//   CLibpq, CZstd, COpenSSL  system libraries (module maps + shim headers);
//   CMalloc                  glibc's malloc.h, for the CLI's start-up tuning
//   ArcaFormat               the archive format: frames, manifest, trailer, checksums,
//                            compression. No database, no network, opens no file.
//   ArcaPostgres             libpq: connections, queries, COPY streams, catalog queries
//   ArcaS3                   S3-compatible object storage: SigV4, requests, retries, multipart
//   ArcaEngine               backup, restore, verify, schema, storage (local, S3), retention,
//                            drills, sync: each piece of work, given everything it needs
//   ArcaOperations           the operations the three shells call: configuration, every
//                            command built once and run under the audit trail, error kinds,
//                            progress, schedules, status, notifications (webhooks, mail)
//   ArcaScheduler            the scheduler loop (a shell)
//   ArcaServer               the REST API (a shell)
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
        .library(name: "ArcaOperations", targets: ["ArcaOperations"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        .package(url: "https://github.com/apple/swift-log", from: "1.6.0"),
        .package(url: "https://github.com/hummingbird-project/hummingbird", from: "2.28.0"),
        .package(url: "https://github.com/hummingbird-project/hummingbird-auth", from: "2.5.0"),
        .package(url: "https://github.com/vapor/jwt-kit", from: "5.7.0"),
        // Hummingbird's own foundations, used directly by the server target.
        .package(url: "https://github.com/swift-server/swift-service-lifecycle", from: "2.6.0"),
        .package(url: "https://github.com/apple/swift-http-types", from: "1.0.0"),
        .package(url: "https://github.com/swift-server/async-http-client", from: "1.21.0"),
        .package(url: "https://github.com/apple/swift-nio", from: "2.65.0"),
        // HTTPRequestPart/HTTPResponsePart, for the server's request deadlines.
        .package(url: "https://github.com/apple/swift-nio-extras.git", from: "1.34.1"),
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
        // glibc's malloc.h, for `mallopt` at start-up (ArcaCLI).
        .systemLibrary(name: "CMalloc"),

        .target(name: "ArcaFormat", dependencies: ["CZstd", "COpenSSL"]),
        .target(name: "ArcaPostgres", dependencies: ["CLibpq"]),
        .target(
            name: "ArcaS3",
            dependencies: [
                "ArcaFormat",
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOFoundationCompat", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
            ]),
        .target(
            name: "ArcaEngine",
            dependencies: [
                "ArcaFormat", "ArcaPostgres", "ArcaS3",
                // ByteBuffer: the parts a streamed upload hands to ArcaS3.
                .product(name: "NIOCore", package: "swift-nio"),
            ]),
        .target(
            name: "ArcaOperations",
            dependencies: [
                "ArcaEngine", "ArcaFormat", "ArcaPostgres", "ArcaS3",
                // Notifications: webhooks over the process's HTTP client.
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
            ]),
        .target(
            name: "ArcaScheduler",
            dependencies: [
                "ArcaOperations", "ArcaEngine", "ArcaFormat",
                .product(name: "Logging", package: "swift-log"),
            ]),
        .target(
            name: "ArcaServer",
            dependencies: [
                "ArcaOperations", "ArcaEngine", "ArcaFormat", "ArcaPostgres",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOHTTPTypes", package: "swift-nio-extras"),
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HummingbirdCore", package: "hummingbird"),
                .product(name: "HummingbirdAuth", package: "hummingbird-auth"),
                .product(name: "JWTKit", package: "jwt-kit"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "HTTPTypes", package: "swift-http-types"),
            ]),
        .executableTarget(
            name: "ArcaCLI",
            dependencies: [
                "ArcaOperations", "ArcaScheduler", "ArcaServer", "ArcaEngine", "ArcaFormat", "ArcaPostgres", "CMalloc",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ]),

        .target(
            name: "ArcaTesting",
            dependencies: [
                "ArcaFormat", "ArcaPostgres", "ArcaEngine",
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "NIOCore", package: "swift-nio"),
            ],
            path: "Tests/ArcaTesting"),
        .testTarget(name: "ArcaFormatTests", dependencies: ["ArcaFormat"]),
        .testTarget(name: "ArcaPostgresTests", dependencies: ["ArcaPostgres", "ArcaTesting"]),
        .testTarget(
            name: "ArcaS3Tests",
            dependencies: [
                "ArcaS3", "ArcaTesting",
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
            ]),
        .testTarget(
            name: "ArcaEngineTests",
            dependencies: [
                "ArcaEngine", "ArcaTesting", "ArcaS3", "ArcaFormat", "ArcaPostgres",
                // The integration tests drive some paths through the operations and the scheduler.
                "ArcaOperations", "ArcaScheduler",
                .product(name: "Logging", package: "swift-log"),
            ]),
        .testTarget(
            name: "ArcaOperationsTests",
            dependencies: ["ArcaOperations", "ArcaEngine"]),
        .testTarget(name: "ArcaCLITests", dependencies: ["ArcaTesting", "ArcaEngine", "ArcaPostgres"]),
        .testTarget(
            name: "ArcaServerTests",
            dependencies: [
                "ArcaServer", "ArcaTesting", "ArcaOperations", "ArcaEngine", "ArcaFormat",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HummingbirdTesting", package: "hummingbird"),
                .product(name: "HTTPTypes", package: "swift-http-types"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "Logging", package: "swift-log"),
            ]),
    ],
    swiftLanguageModes: [.v6]
)

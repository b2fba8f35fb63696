import ArcaEngine
import ArcaOperations
import ArcaServer
import ArgumentParser
import Foundation
import Logging
import ServiceLifecycle

/// Where the API listens: `--host` and `--port`, for `serve` and `start`.
struct ListenOptions: ParsableArguments {
    @Option(name: .long, help: "Address the API listens on.")
    var host = "127.0.0.1"

    @Option(name: .long, help: "Port the API listens on.")
    var port = 3000
}

func serverConfiguration(_ service: ServiceConfiguration, _ listen: ListenOptions) throws -> ServerConfiguration {
    do {
        var configuration = try ServerConfiguration(service: service)
        configuration.host = listen.host
        configuration.port = listen.port
        return configuration
    } catch {
        Output.error("\(error)")
        throw ExitCode(ExitStatus.usage.rawValue)
    }
}

func bootstrapLogging() {
    LoggingSystem.bootstrap { label in
        var handler = StreamLogHandler.standardError(label: label)
        handler.logLevel = .info
        return handler
    }
}

struct ServeCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "serve",
        abstract: "Serve the REST API (JWT_SECRET required). SIGTERM or SIGINT stops it gracefully.")

    @OptionGroup var repository: RepositoryOption
    @OptionGroup var listen: ListenOptions

    func run() throws {
        let configuration = try serverConfiguration(try commandLineOperations(repository).configuration, listen)
        bootstrapLogging()
        do {
            try runBlocking {
                let app = try await buildApplication(configuration, logger: Logger(label: "arca"))
                try await app.runService()
            }
        } catch {
            throw Output.fail(error)
        }
    }
}

struct TokenCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "token", abstract: "Mint an API token signed with JWT_SECRET.")

    @Option(name: .long, help: "Who the token is for (recorded in the audit trail).")
    var subject: String

    @Option(name: .long, help: "viewer, operator or admin.")
    var role: String

    @Option(name: .long, help: "How long it is valid: 30m, 1h, 7d, or seconds.")
    var ttl = "1h"

    func validate() throws {
        guard Role(rawValue: role) != nil else { throw ValidationError("--role must be viewer, operator or admin.") }
        guard Self.seconds(ttl) != nil else { throw ValidationError("--ttl must look like 30m, 1h, 7d or 3600.") }
        guard !subject.isEmpty else { throw ValidationError("--subject must not be empty.") }
    }

    static func seconds(_ text: String) -> TimeInterval? {
        let units: [Character: Double] = ["s": 1, "m": 60, "h": 3600, "d": 86_400]
        if let unit = text.last.flatMap({ units[$0] }), let value = Double(text.dropLast()), value > 0 { return value * unit }
        if let value = Double(text), value > 0 { return value }
        return nil
    }

    func run() throws {
        guard let secret = ProcessInfo.processInfo.environment["JWT_SECRET"], !secret.isEmpty else {
            Output.error("JWT_SECRET is not set: tokens are signed with it. Set the same value the server uses.")
            throw ExitCode(ExitStatus.usage.rawValue)
        }
        let claims = ArcaClaims(subject: subject, role: Role(rawValue: role)!, expires: Date().addingTimeInterval(Self.seconds(ttl)!))
        do {
            try runBlocking {
                let token = try await TokenAuthority(secret: secret).sign(claims)
                print(token)
            }
        } catch {
            Output.error("\(error)")
            throw ExitCode(ExitStatus.usage.rawValue)
        }
    }
}

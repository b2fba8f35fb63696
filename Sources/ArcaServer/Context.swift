import Hummingbird
import NIOCore

/// Per request: the caller's identity once authenticated, and the peer address.
public struct ArcaRequestContext: RequestContext, RemoteAddressRequestContext {
    public var coreContext: CoreRequestContextStorage
    public let remoteAddress: SocketAddress?
    /// Set by the authentication middleware for `/api` routes.
    public var identity: Identity?
    /// The client address the rate limiter and audit use (X-Forwarded-For only when trusted).
    public var clientIP = "unknown"

    public init(source: ApplicationRequestContextSource) {
        coreContext = .init(source: source)
        remoteAddress = source.channel.remoteAddress
    }

    /// Bodies are small JSON objects; anything bigger is refused before it is read whole.
    public var maxUploadSize: Int { 16 * 1024 }
}

public struct Identity: Sendable {
    public var subject: String
    public var role: Role
}

/// What a token may do; each role includes the ones below it.
public enum Role: String, Sendable, Codable, Comparable, CaseIterable {
    case viewer
    case `operator`
    case admin

    public static func < (lhs: Role, rhs: Role) -> Bool {
        allCases.firstIndex(of: lhs)! < allCases.firstIndex(of: rhs)!
    }
}

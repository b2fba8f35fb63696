import Foundation
import HTTPTypes
import Hummingbird
import JWTKit

/// The claims of an Arca API token: HS256, `sub` (who), `role`, `exp` (required).
public struct ArcaClaims: JWTPayload, Sendable {
    public var sub: SubjectClaim
    public var exp: ExpirationClaim
    public var iat: IssuedAtClaim?
    public var role: Role

    public init(subject: String, role: Role, expires: Date, issued: Date = Date()) {
        sub = SubjectClaim(value: subject)
        exp = ExpirationClaim(value: expires)
        iat = IssuedAtClaim(value: issued)
        self.role = role
    }

    public func verify(using algorithm: some JWTAlgorithm) async throws {
        try exp.verifyNotExpired()
    }
}

/// Signs and verifies tokens with the configured secret. jwt-kit rejects
/// `alg: none` and any algorithm other than the key's (HS256).
public struct TokenAuthority: Sendable {
    private let keys: JWTKeyCollection

    public static let minimumSecretLength = 32

    public enum SecretError: Error, CustomStringConvertible {
        case tooShort(Int)
        public var description: String {
            switch self {
            case .tooShort(let length):
                "JWT_SECRET has \(length) bytes; it must have at least \(TokenAuthority.minimumSecretLength). Generate one with: openssl rand -base64 48"
            }
        }
    }

    public init(secret: String) async throws {
        // jwt-kit asserts on short HMAC keys; refuse them first, with a message.
        guard secret.utf8.count >= Self.minimumSecretLength else { throw SecretError.tooShort(secret.utf8.count) }
        keys = JWTKeyCollection()
        await keys.add(hmac: HMACKey(from: secret), digestAlgorithm: .sha256)
    }

    public func sign(_ claims: ArcaClaims) async throws -> String {
        try await keys.sign(claims)
    }

    public func verify(_ token: String) async throws -> ArcaClaims {
        try await keys.verify(token, as: ArcaClaims.self)
    }
}

/// `/api` routes require `Authorization: Bearer <jwt>`; failures are 401.
struct AuthenticationMiddleware: RouterMiddleware {
    typealias Context = ArcaRequestContext
    let authority: TokenAuthority
    let audit: AuditSink
    let failures: AuthenticationFailureThrottle

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        guard let header = request.headers[.authorization] else {
            return await refuse("Missing Authorization header: send Authorization: Bearer <token> (arca token makes one).", context)
        }
        guard header.lowercased().hasPrefix("bearer "), case let token = header.dropFirst(7).trimmingCharacters(in: .whitespaces), !token.isEmpty else {
            return await refuse("The Authorization header must be: Bearer <token>.", context)
        }
        let claims: ArcaClaims
        do {
            claims = try await authority.verify(token)
        } catch let error as JWTError where error.errorType == .claimVerificationFailure {
            return await refuse("The token has expired. Ask for a new one.", context)
        } catch {
            return await refuse("The token is not valid (malformed, wrongly signed, or not HS256).", context)
        }
        var context = context
        context.identity = Identity(subject: claims.sub.value, role: claims.role)
        return try await next(request, context)
    }

    private func refuse(_ message: String, _ context: Context) async -> Response {
        if let suppressed = await failures.admit(context.clientIP) {
            let note = suppressed > 0 ? " (\(suppressed) earlier failures from this address were not recorded)" : ""
            await audit.record(action: "login_failed", actor: "anonymous", clientIP: context.clientIP, outcome: .refused, error: message + note)
        }
        var error = APIError(.unauthorized, "unauthorized", message)
        error.headers[.wwwAuthenticate] = #"Bearer realm="arca""#
        return error.response()
    }
}

extension ArcaRequestContext {
    /// The caller's identity, or 403 when its role is below `role`.
    func require(_ role: Role) throws -> Identity {
        guard let identity else { throw APIError(.unauthorized, "unauthorized", "Authentication required.") }
        guard identity.role >= role else {
            throw APIError(.forbidden, "forbidden", "This needs the \(role.rawValue) role; the token has \(identity.role.rawValue).")
        }
        return identity
    }
}

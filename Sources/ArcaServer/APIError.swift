import ArcaEngine
import ArcaFormat
import ArcaOperations
import Foundation
import HTTPTypes
import Hummingbird

/// Every error the API returns: `{"success": false, "error": "...", "code": "..."}`
/// with a proper status, which for engine and operation errors is their
/// kind's (ErrorKind).
public struct APIError: Error, Sendable {
    public var status: HTTPResponse.Status
    public var code: String
    public var message: String
    public var headers: HTTPFields = [:]

    public init(_ status: HTTPResponse.Status, _ code: String, _ message: String) {
        self.status = status
        self.code = code
        self.message = message
    }

    static func map(_ error: any Error) -> APIError {
        switch error {
        case let error as APIError:
            return error
        case let error as any HTTPResponseError where error.status == .contentTooLarge:
            return APIError(.contentTooLarge, "body_too_large", "The request body is larger than the 16 KiB limit.")
        case let error as HTTPError:
            return APIError(error.status, "http_error", error.body ?? error.status.reasonPhrase)
        case let error as any HTTPResponseError:
            return APIError(error.status, "http_error", error.status.reasonPhrase)
        case let error as BlockingPool.Full:
            var busy = APIError(.serviceUnavailable, ErrorKind.code(of: error), "\(error)")
            busy.headers[.retryAfter] = String(BlockingPool.retryAfterSeconds)
            return busy
        case let error as DecodingError:
            return APIError(.badRequest, "invalid_body", "The request body is not the expected JSON: \(Self.describe(error)).")
        default:
            // Every engine and operation error declares its kind once (ErrorKind).
            return APIError(HTTPResponse.Status(code: ErrorKind.of(error).httpStatus), ErrorKind.code(of: error), "\(error)")
        }
    }

    private static func describe(_ error: DecodingError) -> String {
        switch error {
        case .keyNotFound(let key, _): "field \(key.stringValue) is missing"
        case .typeMismatch(_, let context), .valueNotFound(_, let context):
            "field \(context.codingPath.map(\.stringValue).joined(separator: ".")) has the wrong type"
        case .dataCorrupted: "malformed JSON"
        @unknown default: "undecodable"
        }
    }

    func response() -> Response {
        struct Body: Encodable {
            var success = false
            var error: String
            var code: String
        }
        var response = JSONBody.response(Body(error: message, code: code), status: status)
        for field in headers { response.headers.append(field) }
        return response
    }
}

/// Turns anything a route throws into the API's JSON error shape.
struct ErrorMiddleware<Context: RequestContext>: RouterMiddleware {
    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        do {
            return try await next(request, context)
        } catch {
            return APIError.map(error).response()
        }
    }
}

/// JSON bodies, encoded the same way everywhere.
enum JSONBody {
    static func response(_ value: some Encodable, status: HTTPResponse.Status = .ok) -> Response {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        let data = (try? encoder.encode(value)) ?? Data(#"{"success":false,"error":"encoding failed","code":"internal_error"}"#.utf8)
        return Response(
            status: status, headers: [.contentType: "application/json; charset=utf-8"],
            body: .init(byteBuffer: ByteBuffer(bytes: data)))
    }

    /// Decodes a JSON body, rejecting unknown fields where `known` is given.
    static func decode<T: Decodable>(_ type: T.Type, from request: Request, context: some RequestContext, known: Set<String>? = nil) async throws -> T {
        var request = request
        let buffer = try await request.collectBody(upTo: context.maxUploadSize)
        return try decode(type, from: Data(buffer: buffer), known: known)
    }

    /// As `decode`, for a body that may be left out: nil when it is empty.
    static func decodeIfPresent<T: Decodable>(_ type: T.Type, from request: Request, context: some RequestContext, known: Set<String>) async throws -> T? {
        var request = request
        let data = Data(buffer: try await request.collectBody(upTo: context.maxUploadSize))
        guard data.contains(where: { !" \t\r\n".utf8.contains($0) }) else { return nil }
        return try decode(type, from: data, known: known)
    }

    private static func decode<T: Decodable>(_ type: T.Type, from data: Data, known: Set<String>?) throws -> T {
        if let known {
            guard let object = try? JSONSerialization.jsonObject(with: data) as? [String: Any] else {
                throw APIError(.badRequest, "invalid_body", "The request body must be a JSON object.")
            }
            let unknown = Set(object.keys).subtracting(known)
            guard unknown.isEmpty else {
                throw APIError(.badRequest, "unknown_field", "Unknown field(s): \(unknown.sorted().joined(separator: ", ")).")
            }
        }
        return try JSONDecoder().decode(T.self, from: data)
    }
}

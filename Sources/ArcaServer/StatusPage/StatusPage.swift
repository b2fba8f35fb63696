import Foundation
import HTTPTypes
import Hummingbird
import NIOCore

/// The status page at `/`: one document, one script, one style sheet, all
/// compiled into the binary (no outside asset, no CDN). The page holds no
/// data: its script signs in with a token the operator pastes (kept in
/// sessionStorage, never in a URL) and reads the API as any client does,
/// so the API's roles decide what each button may do.
struct StatusPage: Sendable {
    /// No inline script or style, nothing from elsewhere, no framing, no
    /// form posts: the script is `/ui/app.js`, its requests go to this origin.
    static let contentSecurityPolicy =
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
        + "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

    static func headers(contentType: String) -> HTTPFields {
        [
            .contentType: contentType,
            .contentSecurityPolicy: contentSecurityPolicy,
            HTTPField.Name("X-Content-Type-Options")!: "nosniff",
            HTTPField.Name("X-Frame-Options")!: "DENY",
            HTTPField.Name("Referrer-Policy")!: "no-referrer",
            .cacheControl: "no-store",
        ]
    }

    func register(on router: Router<ArcaRequestContext>) {
        router.get("/") { _, _ in Self.response(StatusPageAssets.html, "text/html; charset=utf-8") }
        router.get("ui/app.js") { _, _ in Self.response(StatusPageAssets.script, "text/javascript; charset=utf-8") }
        router.get("ui/app.css") { _, _ in Self.response(StatusPageAssets.style, "text/css; charset=utf-8") }
    }

    static func response(_ text: String, _ contentType: String) -> Response {
        Response(status: .ok, headers: headers(contentType: contentType), body: .init(byteBuffer: ByteBuffer(string: text)))
    }
}

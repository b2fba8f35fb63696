import ArcaTesting
import Foundation
import NIOCore
import NIOHTTP1
import NIOPosix

/// A tiny local HTTP server that answers each request from a script, to drive the client
/// through failures moto cannot produce (500s, 503 SlowDown, 200 with an <Error> body).
/// It records what it received so tests can count attempts.
final class ScriptedHTTPServer: Sendable {
    struct Answer: Sendable {
        enum Behavior: Sendable {
            case respond
            /// Never answer: the client's timeout has to end the attempt.
            case hang
            /// Close the connection without answering.
            case closeConnection
        }

        var status: HTTPResponseStatus
        var headers: [(String, String)] = []
        var body: String = ""
        var behavior = Behavior.respond

        static let hang = Answer(status: .ok, behavior: .hang)
        static let closeConnection = Answer(status: .ok, behavior: .closeConnection)

        static func s3Error(_ status: HTTPResponseStatus, code: String, message: String = "scripted") -> Answer {
            Answer(status: status, headers: [("x-amz-request-id", "REQ\(code)")], body: """
                <?xml version="1.0" encoding="UTF-8"?>
                <Error><Code>\(code)</Code><Message>\(message)</Message><RequestId>REQ\(code)</RequestId></Error>
                """)
        }
    }

    struct ReceivedRequest: Sendable {
        var method: HTTPMethod
        var uri: String
        var headers: HTTPHeaders
        var receivedAt = ContinuousClock.now
    }

    /// Answers the n-th request (0-based) with `script(n)`.
    typealias Script = @Sendable (_ requestIndex: Int) -> Answer

    let port: Int
    private let channel: any Channel
    private let recorder: Recorder

    var endpoint: URL { URL(string: "http://127.0.0.1:\(port)")! }
    var receivedRequests: [ReceivedRequest] { recorder.requests }

    init(script: @escaping Script) async throws {
        let recorder = Recorder()
        self.recorder = recorder
        channel = try await ServerBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.configureHTTPServerPipeline()
                    try channel.pipeline.syncOperations.addHandler(Handler(script: script, recorder: recorder))
                }
            }
            .bind(host: "127.0.0.1", port: 0).get()
        port = channel.localAddress!.port!
    }

    func stop() async throws {
        try await channel.close()
    }

    private final class Recorder: @unchecked Sendable {
        private let lock = NSLock()
        private var received: [ReceivedRequest] = []  // guarded by `lock`

        var requests: [ReceivedRequest] { lock.withLock { received } }

        /// Records the request and returns its index.
        func record(_ request: ReceivedRequest) -> Int {
            lock.withLock {
                received.append(request)
                return received.count - 1
            }
        }
    }

    private final class Handler: ChannelInboundHandler {
        typealias InboundIn = HTTPServerRequestPart
        typealias OutboundOut = HTTPServerResponsePart

        let script: Script
        let recorder: Recorder
        var head: HTTPRequestHead?

        init(script: @escaping Script, recorder: Recorder) {
            self.script = script
            self.recorder = recorder
        }

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            switch unwrapInboundIn(data) {
            case .head(let head):
                self.head = head
            case .body:
                break
            case .end:
                guard let head else { return }
                let index = recorder.record(ReceivedRequest(method: head.method, uri: head.uri, headers: head.headers))
                let answer = script(index)
                switch answer.behavior {
                case .respond: break
                case .hang: return
                case .closeConnection:
                    context.close(promise: nil)
                    return
                }
                var headers = HTTPHeaders(answer.headers)
                let body = head.method == .HEAD ? "" : answer.body
                headers.replaceOrAdd(name: "content-length", value: String(answer.body.utf8.count))
                context.write(wrapOutboundOut(.head(HTTPResponseHead(version: head.version, status: answer.status, headers: headers))), promise: nil)
                if !body.isEmpty {
                    context.write(wrapOutboundOut(.body(.byteBuffer(ByteBuffer(string: body)))), promise: nil)
                }
                context.writeAndFlush(wrapOutboundOut(.end(nil)), promise: nil)
            }
        }
    }
}

import Foundation
import HTTPTypes
import HummingbirdCore
import Logging
import NIOCore
import NIOHTTPTypes

/// The HTTP/1.1 server with the limits Hummingbird does not have itself:
/// Hummingbird's idle timeout closes a connection that sends no complete
/// request part for `idleTimeout`; on top of it, a request's head must be
/// complete `headerTimeout` after its first byte and its body `bodyTimeout`
/// after its head (a client trickling a byte at a time is dropped), and
/// connections beyond `maxConnections` are answered 503 and closed.
struct LimitedHTTP1Channel: ServerChildChannel {
    typealias Value = HTTP1Channel.Value

    let responder: HTTPChannelHandler.Responder
    let limits: HTTPLimits
    let connections: ConnectionCounter

    func setup(channel: any Channel, logger: Logger) -> EventLoopFuture<Value> {
        let deadlines = RequestDeadlines(limits: limits, channel: channel)
        let http1 = HTTP1Channel(
            responder: responder,
            configuration: .init(additionalChannelHandlers: [RequestPartWatcher(deadlines)], idleTimeout: .init(limits.idleTimeout)))
        // The byte watcher goes first, before the HTTP decoder: it sees a
        // request begin before any of it can be decoded.
        return channel.eventLoop.makeCompletedFuture {
            try channel.pipeline.syncOperations.addHandler(RequestStartWatcher(deadlines))
        }.flatMap {
            http1.setup(channel: channel, logger: logger)
        }
    }

    func handle(value: Value, logger: Logger) async {
        guard connections.open() else {
            await refuse(value)
            return
        }
        defer { connections.close() }
        await HTTP1Channel(responder: responder).handle(value: value, logger: logger)
    }

    /// A connection over the cap is answered once its request's head is in
    /// (the header timeout bounds the wait; HTTP/1.1 answers a request) and
    /// closed, without its body being read.
    private func refuse(_ channel: Value) async {
        let response = HTTPResponse(status: .serviceUnavailable, headerFields: [
            .retryAfter: "1", .connection: "close", .contentLength: "0",
        ])
        try? await channel.executeThenClose { inbound, outbound in
            for try await part in inbound {
                guard case .head = part else { continue }
                try await outbound.write(contentsOf: [.head(response), .end(nil)])
                return
            }
        }
    }
}

/// The server's timeouts and connection cap, from `ServerConfiguration`.
struct HTTPLimits: Sendable {
    var idleTimeout: Duration
    var headerTimeout: Duration
    var bodyTimeout: Duration
    var maxConnections: Int

    init(_ configuration: ServerConfiguration) {
        idleTimeout = .milliseconds(Int64(configuration.idleTimeout * 1000))
        headerTimeout = .milliseconds(Int64(configuration.headerTimeout * 1000))
        bodyTimeout = .milliseconds(Int64(configuration.bodyTimeout * 1000))
        maxConnections = configuration.maxConnections
    }
}

/// Open connections, against the cap.
final class ConnectionCounter: @unchecked Sendable {
    let limit: Int
    private let lock = NSLock()
    private var count = 0

    init(limit: Int) { self.limit = limit }

    /// Counts a new connection; false (and not counted) when at the cap.
    func open() -> Bool {
        lock.withLock {
            guard count < limit else { return false }
            count += 1
            return true
        }
    }

    func close() { lock.withLock { count -= 1 } }
}

/// Where one connection's current request is, and the one deadline that
/// applies to it. Used only on the channel's event loop, by the two
/// watchers either side of the HTTP decoder.
final class RequestDeadlines: @unchecked Sendable {
    enum Phase {
        /// Between requests: Hummingbird's idle timeout applies.
        case waiting
        case readingHead
        case readingBody
        /// The request is read; the handler may take as long as the work does.
        case handling
    }

    let limits: HTTPLimits
    let channel: any Channel
    private(set) var phase = Phase.waiting
    private var timer: Scheduled<Void>?

    init(limits: HTTPLimits, channel: any Channel) {
        self.limits = limits
        self.channel = channel
    }

    func bytesArrived() {
        guard phase == .waiting else { return }
        enter(.readingHead, deadline: limits.headerTimeout)
    }

    func headRead() { enter(.readingBody, deadline: limits.bodyTimeout) }
    func endRead() { enter(.handling, deadline: nil) }
    func responseEnded() { if phase == .handling { enter(.waiting, deadline: nil) } }
    func closed() { enter(.waiting, deadline: nil) }

    private func enter(_ phase: Phase, deadline: Duration?) {
        self.phase = phase
        timer?.cancel()
        timer = nil
        guard let deadline else { return }
        let channel = self.channel
        timer = channel.eventLoop.scheduleTask(in: TimeAmount(deadline)) { channel.close(promise: nil) }
    }
}

/// Before the HTTP decoder: notices the first bytes of a request.
final class RequestStartWatcher: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer
    let deadlines: RequestDeadlines

    init(_ deadlines: RequestDeadlines) { self.deadlines = deadlines }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        deadlines.bytesArrived()
        context.fireChannelRead(data)
    }

    func channelInactive(context: ChannelHandlerContext) {
        deadlines.closed()
        context.fireChannelInactive()
    }
}

/// After the HTTP decoder: notices a request's head and end, and its
/// response's end.
final class RequestPartWatcher: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPRequestPart
    typealias InboundOut = HTTPRequestPart
    typealias OutboundIn = HTTPResponsePart
    typealias OutboundOut = HTTPResponsePart
    let deadlines: RequestDeadlines

    init(_ deadlines: RequestDeadlines) { self.deadlines = deadlines }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head: deadlines.headRead()
        case .body: break
        case .end: deadlines.endRead()
        }
        context.fireChannelRead(data)
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        if case .end = unwrapOutboundIn(data) { deadlines.responseEnded() }
        context.write(data, promise: promise)
    }
}

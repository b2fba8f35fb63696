import Foundation
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import NIOCore

/// An IPv4 or IPv6 address as its bytes (4 or 16). IPv4-mapped IPv6
/// addresses (`::ffff:192.0.2.1`) are their IPv4 address, so one client has
/// one key whatever notation a proxy writes.
struct IPAddress: Hashable, Sendable, CustomStringConvertible {
    let bytes: [UInt8]

    /// Parses dotted IPv4 or IPv6 text; nil for anything else (ports, names,
    /// garbage). Input is bounded before it reaches `inet_pton`.
    init?(_ text: some StringProtocol) {
        let text = text.trimmingCharacters(in: .whitespaces)
        guard !text.isEmpty, text.utf8.count <= 45 else { return nil }
        var v4 = in_addr()
        if inet_pton(AF_INET, text, &v4) == 1 {
            bytes = withUnsafeBytes(of: &v4) { Array($0) }
            return
        }
        var v6 = in6_addr()
        guard inet_pton(AF_INET6, text, &v6) == 1 else { return nil }
        let all = withUnsafeBytes(of: &v6) { Array($0) }
        bytes = all.prefix(12).elementsEqual([0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff]) ? Array(all.suffix(4)) : all
    }

    /// The canonical text (`inet_ntop`): the key the limiter and the audit use.
    var description: String {
        var buffer = [CChar](repeating: 0, count: Int(INET6_ADDRSTRLEN))
        let family = bytes.count == 4 ? AF_INET : AF_INET6
        bytes.withUnsafeBytes { raw in _ = inet_ntop(family, raw.baseAddress, &buffer, socklen_t(buffer.count)) }
        return String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }
}

/// A network in CIDR notation (`10.0.0.0/8`, `fd00::/8`); a bare address is
/// a network of one.
struct CIDRNetwork: Sendable, Equatable {
    let network: IPAddress
    let prefix: Int

    init?(_ text: some StringProtocol) {
        let parts = text.split(separator: "/", omittingEmptySubsequences: false)
        guard parts.count <= 2, let address = IPAddress(parts[0]) else { return nil }
        let bits = address.bytes.count * 8
        if parts.count == 2 {
            guard parts[1].count <= 3, let prefix = Int(parts[1]), (0...bits).contains(prefix) else { return nil }
            self.prefix = prefix
        } else {
            prefix = bits
        }
        network = address
    }

    func contains(_ address: IPAddress) -> Bool {
        guard address.bytes.count == network.bytes.count else { return false }
        var remaining = prefix
        for (a, b) in zip(address.bytes, network.bytes) where remaining > 0 {
            let mask: UInt8 = remaining >= 8 ? 0xff : ~(0xff >> UInt8(remaining))
            if a & mask != b & mask { return false }
            remaining -= 8
        }
        return true
    }

    /// What `ARCA_TRUST_PROXY=1` has always meant: a proxy on this machine.
    static let loopback = [CIDRNetwork("127.0.0.0/8")!, CIDRNetwork("::1")!]
}

/// Who the client is: the socket's peer, or — when that peer is a trusted
/// proxy — the rightmost `X-Forwarded-For` entry that is not a trusted
/// proxy. Entries to its left are written by the client and never believed.
struct ClientAddressResolver: Sendable {
    let trustedProxies: [CIDRNetwork]

    /// More hops than any real proxy chain; the rest of a longer header is
    /// not looked at.
    static let maximumHops = 32

    func resolve(peer: SocketAddress?, forwardedFor: [String]) -> String {
        guard let peerText = peer?.ipAddress, let peerAddress = IPAddress(peerText) else { return peer?.ipAddress ?? "unknown" }
        var nearest = peerAddress
        guard isTrusted(nearest) else { return nearest.description }
        // Each proxy appends the address it saw: walk from the right.
        let entries = forwardedFor.joined(separator: ",").split(separator: ",").suffix(Self.maximumHops)
        for entry in entries.reversed() {
            // A malformed entry was not written by a trusted proxy: the last
            // trusted hop is the best-known client.
            guard let address = IPAddress(entry) else { return nearest.description }
            nearest = address
            if !isTrusted(address) { return address.description }
        }
        return nearest.description
    }

    private func isTrusted(_ address: IPAddress) -> Bool {
        trustedProxies.contains { $0.contains(address) }
    }
}

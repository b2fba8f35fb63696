import Foundation

/// A blocking FIFO of bounded capacity between two threads. `close()` wakes
/// every waiter: pushers get `Closed`, poppers drain what is left and then
/// get nil. The bound is what keeps a backup's memory independent of the
/// database's size.
final class BoundedQueue<Element>: @unchecked Sendable {
    struct Closed: Error {}

    private let capacity: Int
    private var items: [Element] = []
    private var head = 0
    private var closed = false
    private let condition = NSCondition()

    init(capacity: Int) {
        precondition(capacity > 0)
        self.capacity = capacity
    }

    func push(_ item: Element) throws {
        condition.lock()
        defer { condition.unlock() }
        while !closed && items.count - head >= capacity { condition.wait() }
        guard !closed else { throw Closed() }
        items.append(item)
        condition.broadcast()
    }

    func pop() -> Element? {
        condition.lock()
        defer { condition.unlock() }
        while !closed && items.count == head { condition.wait() }
        guard items.count > head else { return nil }
        let item = items[head]
        head += 1
        if head > 64, head * 2 > items.count {
            items.removeFirst(head)
            head = 0
        }
        condition.broadcast()
        return item
    }

    func close() {
        condition.lock()
        closed = true
        condition.broadcast()
        condition.unlock()
    }
}

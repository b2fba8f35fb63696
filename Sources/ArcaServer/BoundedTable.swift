/// A table of at most `capacity` entries that forgets the least recently
/// used one to make room: the memory a per-client record may take, however
/// many clients there are. Every operation is O(1): slots in fixed arrays,
/// linked most-recent first, found through a dictionary.
struct BoundedTable<Key: Hashable, Value> {
    let capacity: Int
    private var slots: [Key: Int] = [:]
    private var keys: [Key] = []
    private var values: [Value] = []
    private var newer: [Int] = []
    private var older: [Int] = []
    private var newest = -1
    private var oldest = -1

    init(capacity: Int) {
        precondition(capacity > 0)
        self.capacity = capacity
        slots.reserveCapacity(capacity)
    }

    var count: Int { slots.count }

    /// Gives `body` the key's value (nil when absent or forgotten) to read
    /// or replace, and marks the key most recently used.
    mutating func update<T>(_ key: Key, _ body: (inout Value?) -> T) -> T {
        if let slot = slots[key] {
            var value: Value? = values[slot]
            let result = body(&value)
            if let value { values[slot] = value }
            moveToFront(slot)
            return result
        }
        var value: Value?
        let result = body(&value)
        guard let value else { return result }
        let slot: Int
        if keys.count < capacity {
            slot = keys.count
            keys.append(key)
            values.append(value)
            newer.append(-1)
            older.append(-1)
        } else {
            // Full: the least recently used entry gives up its slot.
            slot = oldest
            unlink(slot)
            slots[keys[slot]] = nil
            keys[slot] = key
            values[slot] = value
        }
        slots[key] = slot
        linkAtFront(slot)
        return result
    }

    private mutating func moveToFront(_ slot: Int) {
        guard slot != newest else { return }
        unlink(slot)
        linkAtFront(slot)
    }

    private mutating func unlink(_ slot: Int) {
        if newer[slot] >= 0 { older[newer[slot]] = older[slot] } else { newest = older[slot] }
        if older[slot] >= 0 { newer[older[slot]] = newer[slot] } else { oldest = newer[slot] }
        newer[slot] = -1
        older[slot] = -1
    }

    private mutating func linkAtFront(_ slot: Int) {
        older[slot] = newest
        newer[slot] = -1
        if newest >= 0 { newer[newest] = slot }
        newest = slot
        if oldest < 0 { oldest = slot }
    }
}

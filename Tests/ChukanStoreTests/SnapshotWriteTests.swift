import ChukanProto
import ChukanRegister
import ChukanStore
import Foundation
import Testing

/// Snapshot chunks are appended by a writer thread of their own; a failing disk must
/// still fail the snapshot, leave no file behind, and not stop the next one.
@Suite struct SnapshotWriteTests {
    /// Enough residents for several 1 MiB chunks, so that a failure can strike while
    /// later chunks are still being sealed.
    func state(_ fixture: DatabaseFixture) throws -> RegisterState {
        var s = RegisterState(tenant: "012041")
        for (i, r) in fixture.people.enumerated() { try s.apply(fixture.record(r), sequence: UInt64(i + 1)) }
        return s
    }

    @Test(arguments: ["short write", "EIO on write", "EIO on fsync"])
    func aFailingDiskFailsTheSnapshotAndLeavesNothing(fault: String) throws {
        let fixture = try DatabaseFixture(people: 6_000)
        let s = try state(fixture)
        let faults = FaultyFileSystem()
        let dir = fixture.dir + "/snapshots"
        try faults.createDirectory(dir)
        switch fault {
        case "short write": faults.shortNextWrite.store(true, ordering: .relaxed)
        case "EIO on write": faults.failWritesAfter(appends: 2, errno: EIO)
        default: faults.failNextSync.store(true, ordering: .relaxed)
        }
        #expect(throws: StoreIOError.self) { try Snapshots.write(s, directory: dir, keyRing: fixture.keys, fs: faults) }
        #expect(try faults.list(dir).isEmpty, "no snapshot and no temporary file are left")
        faults.failWrites.store(0, ordering: .relaxed)

        let info = try Snapshots.write(s, directory: dir, keyRing: fixture.keys, fs: faults)
        #expect(info.chunks > 2)
        let back = try Snapshots.load(path: info.path, keyRing: fixture.keys)
        #expect(back.count == s.count && back.persons == s.persons && back.hasSameIndexes(as: s))
    }
}

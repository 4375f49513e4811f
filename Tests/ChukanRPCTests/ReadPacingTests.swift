import ChukanRPC
import Foundation
import NIOCore
import Testing

/// A connection is read no faster than `readBytesPerSecond` (after its burst), so one client
/// sending large frames in a loop cannot take the server's CPU from the others.
@Suite struct ReadPacingTests {
    /// 6 MiB of Echo requests against 2 MiB/s with a 1 MiB burst cannot be read in under
    /// 2.5 s. (A lower bound on time: a loaded machine only makes it longer. Unpaced, the
    /// same calls take a fraction of a second.) Another connection is served meanwhile.
    @Test func aConnectionIsReadNoFasterThanItsRate() async throws {
        let s = try await TestServer.start {
            $0.readBytesPerSecond = 2 << 20
            $0.readBurst = 1 << 20
        }
        let heavy = try await s.client()
        let other = try await s.client()
        let megabyte = String(repeating: "m", count: (1 << 20) - 1024)
        let start = ContinuousClock.now
        try await withThrowingTaskGroup(of: Void.self) { group in
            for _ in 0..<6 {
                group.addTask {
                    let answer = try await heavy.echo(megabyte)
                    #expect(answer.count == megabyte.count)
                }
            }
            // Meanwhile a small call on another connection is answered (pacing is per
            // connection). Not checked to come first: a loaded suite may resume the test's
            // tasks in any order.
            group.addTask {
                try await Task.sleep(for: .milliseconds(500))
                #expect(try await other.echo("small") == "small")
            }
            try await group.waitForAll()
        }
        let elapsed = ContinuousClock.now - start
        #expect(elapsed >= .milliseconds(2400), "6 MiB read in \(elapsed) at 2 MiB/s")
        await heavy.close()
        await other.close()
        await s.stop()
    }

    /// The frame timeout blames the client, not the server's own pacing: a 3 MiB call read at
    /// 512 KiB/s takes about 5.5 s to arrive, well over a 2 s frame timeout, and is still
    /// answered. (The client sends at once; only a stall of the test's own sending for over
    /// 2 s — no pacing hold then — could close it.)
    @Test func pacingDoesNotTripTheFrameTimeout() async throws {
        let s = try await TestServer.start {
            $0.readBytesPerSecond = 512 << 10
            $0.readBurst = 512 << 10
            $0.frameTimeout = .seconds(2)
        }
        let c = try await s.client()
        let payload = String(repeating: "p", count: 3 << 20)
        let start = ContinuousClock.now
        #expect(try await c.echo(payload).count == payload.count)
        #expect(ContinuousClock.now - start >= .seconds(4))
        await c.close()
        await s.stop()
    }

    @Test func theBucketRefillsAtItsRateUpToItsBurst() {
        let t0 = NIODeadline.uptimeNanoseconds(1_000_000_000)
        var b = ByteBucket(bytesPerSecond: 1000, burst: 500)
        #expect(b.wait(at: t0) == .zero)
        b.spend(700, at: t0)  // overdrawn by 200
        // 201 bytes short: 201 ms at 1000 B/s.
        #expect(abs(b.wait(at: t0).nanoseconds - 201_000_000) < 1_000)
        #expect(b.wait(at: t0 + .milliseconds(201)) == .zero)
        // Idle for a minute: no more than the burst.
        b.spend(0, at: t0 + .seconds(60))
        b.spend(500, at: t0 + .seconds(60))
        #expect(b.wait(at: t0 + .seconds(60)) == .milliseconds(1))
    }
}

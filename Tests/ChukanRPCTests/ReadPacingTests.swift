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
        let otherServed = try await withThrowingTaskGroup(of: Bool.self) { group in
            for _ in 0..<6 {
                group.addTask {
                    let answer = try await heavy.echo(megabyte)
                    #expect(answer.count == megabyte.count)
                    return false
                }
            }
            // Meanwhile, a small call on another connection is answered while the heavy ones
            // are still being read.
            group.addTask {
                try await Task.sleep(for: .milliseconds(500))
                #expect(try await other.echo("small") == "small")
                return true
            }
            var servedFirst = false
            var done = 0
            for try await isOther in group {
                if isOther { servedFirst = done < 6 }
                done += 1
            }
            return servedFirst
        }
        let elapsed = ContinuousClock.now - start
        #expect(elapsed >= .milliseconds(2400), "6 MiB read in \(elapsed) at 2 MiB/s")
        #expect(otherServed, "the other connection waited for the paced one")
        await heavy.close()
        await other.close()
        await s.stop()
    }

    /// The frame timeout blames the client, not the server's own pacing: a 3 MiB call read at
    /// 1 MiB/s takes about 2 s to arrive, over a 1 s frame timeout, and is still answered.
    @Test func pacingDoesNotTripTheFrameTimeout() async throws {
        let s = try await TestServer.start {
            $0.readBytesPerSecond = 1 << 20
            $0.readBurst = 1 << 20
            $0.frameTimeout = .seconds(1)
        }
        let c = try await s.client()
        let payload = String(repeating: "p", count: 3 << 20)
        let start = ContinuousClock.now
        #expect(try await c.echo(payload).count == payload.count)
        #expect(ContinuousClock.now - start >= .milliseconds(1500))
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

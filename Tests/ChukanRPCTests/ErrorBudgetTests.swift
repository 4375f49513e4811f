@testable import ChukanRPC
import NIOCore
import Testing

/// The two small ledgers that decide whether a bad frame costs a connection anything.
@Suite struct ErrorBudgetTests {
    /// 100 errors at once, then 10 a second: the 101st in the same instant is refused, and
    /// one more is allowed a tenth of a second later.
    @Test func theBudgetRefillsAtItsRate() {
        var budget = ProtocolErrorBudget()
        let start = NIODeadline.now()
        var spent: [Bool] = []
        for _ in 0..<101 { spent.append(budget.spend(at: start)) }
        #expect(spent == Array(repeating: true, count: 100) + [false])
        let later = [budget.spend(at: start + .milliseconds(110)), budget.spend(at: start + .milliseconds(110))]
        #expect(later == [true, false])
    }

    /// Stray data frames are forgiven only for the last 16 client streams answered early,
    /// and only 64 of them each: the 65th on a stream, and any on a 17th stream back, are
    /// charged like every other bad frame.
    @Test func strayFramesAreForgivenAFewTimesForRecentStreamsOnly() {
        var ended = RecentlyEnded()
        ended.add(1)
        var forgiven: [Bool] = []
        for _ in 0...RecentlyEnded.framesEach { forgiven.append(ended.forgive(1)) }
        #expect(forgiven == Array(repeating: true, count: RecentlyEnded.framesEach) + [false])
        let never = ended.forgive(3)
        #expect(!never, "a stream never answered early")
        for id in stride(from: UInt32(3), through: 35, by: 2) { ended.add(id) }  // 17 more: streams 1 and 3 fall out
        let recent = [ended.forgive(3), ended.forgive(5), ended.forgive(35)]
        #expect(recent == [false, true, true])
    }
}

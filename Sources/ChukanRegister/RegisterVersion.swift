/// One published version of a tenant's register, boxed (`TenantDatabase.version`):
/// a reader takes it with one retain, where copying a `RegisterState` out retains each
/// of its ~25 tables — atomic operations on the same cache lines from every core.
/// Immutable.
///
/// The point lookups are its own methods: compiled here, beside `RegisterState`, they
/// read the index they need in place. Called from another module as
/// `version.state.byAtena(_:)`, the compiler copied the whole state out of the box first.
public final class RegisterVersion: Sendable {
    public let state: RegisterState

    public init(_ state: RegisterState) { self.state = state }

    public func person(_ id: String) -> PersonEntry? { state.person(id) }
    public func person(_ id: PackedID) -> PersonEntry? { state.person(id) }
    public func byAtena(_ n: String) -> PersonEntry? { state.byAtena(n) }
    public func byJuminhyo(_ c: String) -> PersonEntry? { state.byJuminhyo(c) }
    public func byKojinBango(_ k: String) -> PersonEntry? { state.byKojinBango(k) }
}

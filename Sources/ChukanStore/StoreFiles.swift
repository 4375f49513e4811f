#if canImport(Glibc)
import Glibc
#endif

/// A failed file operation, naming the operation and the file.
public struct StoreIOError: Error, Equatable, Sendable, CustomStringConvertible {
    public var operation: String
    public var path: String
    public var errno: Int32

    public init(_ operation: String, _ path: String, errno: Int32) {
        self.operation = operation
        self.path = path
        self.errno = errno
    }

    public var description: String { "\(operation) \(path) failed: \(String(cString: strerror(errno)))" }
}

/// A file being appended to. The store's only way to write: the seam where the
/// hardening tests inject ENOSPC, EIO and short writes.
public protocol AppendFile: AnyObject {
    var path: String { get }
    /// Writes all of `bytes` at the end, or throws. The end is where the last append (or
    /// a `truncate`) left it, not the end of any zeros `reserve` wrote beyond it.
    func append(_ bytes: UnsafeRawBufferPointer) throws
    /// Writes zeros after everything written so far, up to `size` bytes in all (no-op if
    /// the file is that long already); appends then overwrite them. Made durable by the
    /// next `sync`. Blocks that exist before they are written let a later fdatasync write
    /// the data alone: appending to a growing file makes each fdatasync write the inode
    /// too, one more device write per group commit.
    func reserve(upTo size: Int) throws
    /// Makes everything appended so far durable (fdatasync).
    func sync() throws
    /// Cuts the file back to `size` bytes.
    func truncate(to size: Int) throws
    func close()
}

/// The file operations the store uses, injectable for fault tests.
public protocol StoreFileSystem: Sendable {
    /// Creates a new file; fails if it exists.
    func createNew(_ path: String) throws -> any AppendFile
    func read(_ path: String) throws -> [UInt8]
    func truncate(_ path: String, to size: Int) throws
    func list(_ directory: String) throws -> [String]
    func remove(_ path: String) throws
    func rename(_ from: String, _ to: String) throws
    func createDirectory(_ path: String) throws
    /// fsyncs a directory, so that creations, renames and removals in it are durable.
    func syncDirectory(_ path: String) throws
}

/// The real thing: POSIX calls.
public struct PosixFileSystem: StoreFileSystem {
    public init() {}

    public func createNew(_ path: String) throws -> any AppendFile {
        // Not O_APPEND: appends are written at the file's own end, which zeros from
        // `reserve` may lie beyond.
        let fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw StoreIOError("create", path, errno: errno) }
        return PosixAppendFile(fd: fd, path: path)
    }

    public func read(_ path: String) throws -> [UInt8] {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw StoreIOError("open", path, errno: errno) }
        defer { Glibc.close(fd) }
        var st = stat()
        guard fstat(fd, &st) == 0 else { throw StoreIOError("stat", path, errno: errno) }
        // Read into uninitialised memory: a snapshot is hundreds of MB, and zeroing it
        // first, or copying it into a shorter array after, was a tenth of a load.
        return try [UInt8](unsafeUninitializedCapacity: Int(st.st_size)) { buffer, initialized in
            var done = 0
            while done < buffer.count {
                let n = Glibc.read(fd, buffer.baseAddress! + done, buffer.count - done)
                if n < 0 && errno == EINTR { continue }
                guard n >= 0 else {
                    initialized = done
                    throw StoreIOError("read", path, errno: errno)
                }
                if n == 0 { break }  // the file shrank since fstat: what is there
                done += n
            }
            initialized = done
        }
    }

    public func truncate(_ path: String, to size: Int) throws {
        guard Glibc.truncate(path, off_t(size)) == 0 else { throw StoreIOError("truncate", path, errno: errno) }
    }

    public func list(_ directory: String) throws -> [String] {
        guard let dir = opendir(directory) else { throw StoreIOError("list", directory, errno: errno) }
        defer { closedir(dir) }
        var names: [String] = []
        while let entry = readdir(dir) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in
                String(cString: raw.baseAddress!.assumingMemoryBound(to: CChar.self))
            }
            if name != "." && name != ".." { names.append(name) }
        }
        return names.sorted()
    }

    public func remove(_ path: String) throws {
        guard unlink(path) == 0 else { throw StoreIOError("remove", path, errno: errno) }
    }

    public func rename(_ from: String, _ to: String) throws {
        guard Glibc.rename(from, to) == 0 else { throw StoreIOError("rename", from, errno: errno) }
    }

    public func createDirectory(_ path: String) throws {
        var partial = path.hasPrefix("/") ? "" : "."
        for part in path.split(separator: "/") {
            let parent = partial.isEmpty ? "/" : partial
            partial += "/\(part)"
            if mkdir(partial, 0o700) == 0 {
                // A new directory exists after a power loss only once its parent's entry is synced.
                try syncDirectory(parent)
            } else if errno != EEXIST {
                throw StoreIOError("mkdir", partial, errno: errno)
            }
        }
    }

    public func syncDirectory(_ path: String) throws {
        let fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard fd >= 0 else { throw StoreIOError("open", path, errno: errno) }
        defer { Glibc.close(fd) }
        guard fsync(fd) == 0 else { throw StoreIOError("fsync", path, errno: errno) }
    }
}

final class PosixAppendFile: AppendFile {
    let fd: Int32
    let path: String
    private var closed = false
    /// Where the next append goes.
    private var end = 0
    /// The file's size: `end`, or more after `reserve`.
    private var size = 0

    init(fd: Int32, path: String) {
        self.fd = fd
        self.path = path
    }

    deinit { close() }

    func append(_ bytes: UnsafeRawBufferPointer) throws {
        try write(bytes, at: end, "write")
        end += bytes.count
        size = max(size, end)
    }

    func reserve(upTo target: Int) throws {
        while size < target {
            let n = min(target - size, Self.zeros.count)
            try Self.zeros.withUnsafeBytes { try write(UnsafeRawBufferPointer(rebasing: $0.prefix(n)), at: size, "write (reserve)") }
            size += n
        }
    }

    private static let zeros = [UInt8](repeating: 0, count: 1 << 20)

    private func write(_ bytes: UnsafeRawBufferPointer, at offset: Int, _ operation: String) throws {
        var done = 0
        while done < bytes.count {
            let n = pwrite(fd, bytes.baseAddress! + done, bytes.count - done, off_t(offset + done))
            if n < 0 && errno == EINTR { continue }
            guard n > 0 else { throw StoreIOError(operation, path, errno: n == 0 ? EIO : errno) }
            done += n
        }
    }

    func sync() throws {
        guard fdatasync(fd) == 0 else { throw StoreIOError("fdatasync", path, errno: errno) }
    }

    func truncate(to newSize: Int) throws {
        guard ftruncate(fd, off_t(newSize)) == 0 else { throw StoreIOError("truncate", path, errno: errno) }
        size = newSize
        end = min(end, newSize)
    }

    func close() {
        if !closed {
            closed = true
            Glibc.close(fd)
        }
    }
}

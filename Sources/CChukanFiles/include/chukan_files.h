#ifndef CHUKAN_FILES_H
#define CHUKAN_FILES_H

/// Swaps two paths in one step (Linux renameat2 with RENAME_EXCHANGE): both must exist;
/// afterwards each name holds what the other did, and no moment passes in which either
/// is missing. Returns 0, or -1 with errno set (EINVAL where the file system cannot).
/// Swift's Glibc module does not expose renameat2.
int chukan_rename_exchange(const char *from, const char *to);

#endif

#ifndef CHUKAN_PREFETCH_H
#define CHUKAN_PREFETCH_H

/// Asks the CPU to bring the cache line at `address` in for reading, without waiting
/// for it. Swift has no prefetch of its own; a lookup that will touch several objects
/// (a household's members) asks for all of them first, so that their cache misses
/// overlap instead of coming one after the other.
static inline void chukan_prefetch(const void *address) {
    __builtin_prefetch(address, 0, 3);
}

#endif

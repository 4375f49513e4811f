#ifndef CHUKAN_CRC32C_H
#define CHUKAN_CRC32C_H

#include <stddef.h>
#include <stdint.h>

/// Continues a CRC-32C (Castagnoli) over `len` bytes; start with 0. Uses the SSE 4.2
/// crc32 instruction where the CPU has it, a slicing-by-8 table otherwise.
uint32_t chukan_crc32c_update(uint32_t crc, const void *data, size_t len);

/// The table-driven path alone, so tests can check it on machines with the instruction.
uint32_t chukan_crc32c_update_software(uint32_t crc, const void *data, size_t len);

/// 1 when the hardware path is in use (for benchmarks and logs).
int chukan_crc32c_hardware(void);

#endif

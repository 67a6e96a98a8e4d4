/*
 * crc32c.h - CRC-32C (Castagnoli), the checksum on every manifest record.
 *
 * Chosen over CRC-32 for its better error detection on short records and
 * because x86-64 computes it in hardware (SSE4.2 crc32), which this uses
 * when the CPU has it; elsewhere a table-driven version gives the same
 * values. Thread-safe; no allocation.
 */
#ifndef MCACHE_REGISTRY_CRC32C_H
#define MCACHE_REGISTRY_CRC32C_H

#include <stddef.h>
#include <stdint.h>

/*
 * Extend crc (0 to start) over buf[0..len). mc_crc32c(0, "123456789", 9)
 * is 0xe3069283.
 */
uint32_t mc_crc32c(uint32_t crc, const void *buf, size_t len);

#endif

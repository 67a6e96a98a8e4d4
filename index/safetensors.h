/*
 * safetensors.h - the safetensors format, validated, and the tensor table
 * the loader stores beside a safetensors model in the arena.
 *
 * A safetensors file is: an 8-byte little-endian header length N, N bytes
 * of JSON {"name": {"dtype": "F32", "shape": [2, 3], "data_offsets": [b, e]},
 * ..., "__metadata__": {"k": "v"}}, then the data section; offsets are
 * relative to the data section's start (8 + N).
 *
 * mc_safetensors_parse() refuses, naming the tensor and the problem: a
 * header length beyond the file or over MC_ST_HEADER_MAX, malformed JSON,
 * an unknown dtype, offsets out of bounds or inverted, overlapping tensors,
 * a shape whose element count does not match its byte span, duplicate
 * names, and a data section with holes or bytes no tensor covers.
 *
 * The table it builds is position independent (offsets from its own start),
 * so the loader copies it into the arena as is; readers find tensors by
 * binary search on the name.
 */
#ifndef MCACHE_INDEX_SAFETENSORS_H
#define MCACHE_INDEX_SAFETENSORS_H

#include <stddef.h>
#include <stdint.h>

#define MC_ST_HEADER_MAX (100u << 20) /* as the reference implementation */
#define MC_TENSORS_MAGIC 0x5354454eu  /* "NETS" */

enum mc_dtype {
    MC_DT_BOOL = 1,
    MC_DT_U8,
    MC_DT_I8,
    MC_DT_F8_E4M3,
    MC_DT_F8_E5M2,
    MC_DT_I16,
    MC_DT_U16,
    MC_DT_F16,
    MC_DT_BF16,
    MC_DT_I32,
    MC_DT_U32,
    MC_DT_F32,
    MC_DT_I64,
    MC_DT_U64,
    MC_DT_F64,
    MC_DT_MAX = MC_DT_F64,
};

struct mc_tensor_entry {
    uint64_t begin, end; /* byte offsets in the data section */
    uint32_t name_off;   /* from the table's start, NUL-terminated */
    uint32_t shape_off;  /* from the table's start: uint64_t[ndim] */
    uint16_t name_len;
    uint8_t dtype;       /* enum mc_dtype */
    uint8_t ndim;
    uint32_t pad;
};

struct mc_tensor_table {
    uint32_t magic;
    uint32_t count;
    uint64_t data_start; /* offset of the data section in the file: 8 + N */
    uint64_t size;       /* bytes of this table */
    uint32_t meta_off;   /* __metadata__ as JSON text (from the table's start), 0: none */
    uint32_t meta_len;
    struct mc_tensor_entry e[]; /* sorted by name (strcmp) */
};

/* "F32" and so on; NULL if unknown. */
const char *mc_dtype_name(unsigned dtype);

/* Bytes per element; 0 if unknown. */
unsigned mc_dtype_size(unsigned dtype);

/*
 * Validate the safetensors file in file[0..size) and build its tensor
 * table (malloc'd, *out_size bytes; free() it). 0, or MC_EINVAL with a
 * message naming the tensor and what is wrong, or MC_ENOMEM.
 */
int mc_safetensors_parse(const uint8_t *file, uint64_t size, struct mc_tensor_table **out);

/* The entry named `name`, or NULL (binary search). */
const struct mc_tensor_entry *mc_tensor_table_find(const struct mc_tensor_table *t,
                                                   const char *name);

#endif

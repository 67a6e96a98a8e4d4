/*
 * abi_layout.c - the layout of every public struct the Python package
 * mirrors with ctypes (python/mcache/_lib.py), as this compiler lays it out
 * from include/mcache.h, printed as JSON for tests/python/test_mirror.py:
 *
 *   {"mc_tensor": {"size": 48, "align": 8, "fields": [["name", 0, 8], ...]}, ...}
 *
 * Each field is [name, offset, size], in declaration order. A struct added to
 * the Python side needs its entry here (the test fails until it has one).
 */
#include <stdalign.h>
#include <stddef.h>
#include <stdio.h>

#include "mcache.h"

struct field {
    const char *name;
    size_t offset, size;
};

#define FIELD(type, f)                                                                             \
    {                                                                                              \
        .name = #f, .offset = offsetof(type, f), .size = sizeof(((type *)0)->f)                    \
    }

static const struct field tensor[] = {
    FIELD(struct mc_tensor, name),      FIELD(struct mc_tensor, dtype),
    FIELD(struct mc_tensor, elem_size), FIELD(struct mc_tensor, ndim),
    FIELD(struct mc_tensor, shape),     FIELD(struct mc_tensor, data),
    FIELD(struct mc_tensor, size),      FIELD(struct mc_tensor, aligned),
};

static const struct field cache_info[] = {
    FIELD(struct mc_cache_info, base),       FIELD(struct mc_cache_info, size),
    FIELD(struct mc_cache_info, page_size),  FIELD(struct mc_cache_info, data_size),
    FIELD(struct mc_cache_info, data_used),  FIELD(struct mc_cache_info, data_largest_free),
    FIELD(struct mc_cache_info, index_size), FIELD(struct mc_cache_info, index_used),
    FIELD(struct mc_cache_info, models),     FIELD(struct mc_cache_info, entries),
    FIELD(struct mc_cache_info, generation), FIELD(struct mc_cache_info, epoch),
    FIELD(struct mc_cache_info, created_ns), FIELD(struct mc_cache_info, loader_pid),
    FIELD(struct mc_cache_info, format),
};

static void print_struct(const char *name, size_t size, size_t align, const struct field *f,
                         size_t n, const char *after)
{
    printf("  \"%s\": {\"size\": %zu, \"align\": %zu, \"fields\": [", name, size, align);
    for (size_t i = 0; i < n; i++)
        printf("%s[\"%s\", %zu, %zu]", i ? ", " : "", f[i].name, f[i].offset, f[i].size);
    printf("]}%s\n", after);
}

#define STRUCT(tag, fields, after)                                                                 \
    print_struct(#tag, sizeof(struct tag), alignof(struct tag), fields,                            \
                 sizeof(fields) / sizeof(fields[0]), after)

int main(void)
{
    printf("{\n");
    STRUCT(mc_tensor, tensor, ",");
    STRUCT(mc_cache_info, cache_info, "");
    printf("}\n");
    return 0;
}

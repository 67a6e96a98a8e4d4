/*
 * tensors.c - reading a tensor table (compiled into libmcache; the parser
 * that builds tables is safetensors.c, in the loader's side).
 */
#include <string.h>

#include "index/safetensors.h"

static const struct {
    const char *name;
    unsigned size;
} dtypes[] = {
    [MC_DT_BOOL] = {"BOOL", 1},    [MC_DT_U8] = {"U8", 1},   [MC_DT_I8] = {"I8", 1},
    [MC_DT_F8_E4M3] = {"F8_E4M3", 1}, [MC_DT_F8_E5M2] = {"F8_E5M2", 1},
    [MC_DT_I16] = {"I16", 2},      [MC_DT_U16] = {"U16", 2}, [MC_DT_F16] = {"F16", 2},
    [MC_DT_BF16] = {"BF16", 2},    [MC_DT_I32] = {"I32", 4}, [MC_DT_U32] = {"U32", 4},
    [MC_DT_F32] = {"F32", 4},      [MC_DT_I64] = {"I64", 8}, [MC_DT_U64] = {"U64", 8},
    [MC_DT_F64] = {"F64", 8},
};

const char *mc_dtype_name(unsigned dtype)
{
    return dtype >= 1 && dtype <= MC_DT_MAX ? dtypes[dtype].name : NULL;
}

unsigned mc_dtype_size(unsigned dtype)
{
    return dtype >= 1 && dtype <= MC_DT_MAX ? dtypes[dtype].size : 0;
}

const struct mc_tensor_entry *mc_tensor_table_find(const struct mc_tensor_table *t,
                                                   const char *name)
{
    size_t lo = 0, hi = t->count;

    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = strcmp(name, (const char *)t + t->e[mid].name_off);

        if (c == 0)
            return &t->e[mid];
        if (c < 0)
            hi = mid;
        else
            lo = mid + 1;
    }
    return NULL;
}

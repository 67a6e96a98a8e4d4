/*
 * safetensors.c - validate a safetensors header and build the tensor table
 * (see safetensors.h). Runs in the loader on bytes it has just verified
 * against the registry's checksum, but trusts nothing in them: every length
 * and offset is checked before use (tests/fuzz/fuzz_safetensors.c).
 */
#include "index/safetensors.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "common/err.h"

static int dtype_parse(const char *s)
{
    for (unsigned d = 1; d <= MC_DT_MAX; d++)
        if (strcmp(s, mc_dtype_name(d)) == 0)
            return (int)d;
    return -1;
}

struct tensor {
    const char *name;
    size_t name_len;
    int dtype;
    size_t ndim;
    json_t *shape;
    uint64_t begin, end;
};

static int by_begin(const void *x, const void *y)
{
    const struct tensor *a = x, *b = y;

    if (a->begin != b->begin)
        return a->begin < b->begin ? -1 : 1;
    return a->end < b->end ? -1 : a->end > b->end;
}

static int by_name(const void *x, const void *y)
{
    return strcmp(((const struct tensor *)x)->name, ((const struct tensor *)y)->name);
}

/* A JSON integer in [0, 2^63). */
static int get_u64(json_t *v, uint64_t *out)
{
    if (!json_is_integer(v) || json_integer_value(v) < 0)
        return -1;
    *out = (uint64_t)json_integer_value(v);
    return 0;
}

static int check_tensor(const char *name, json_t *o, uint64_t data_len, struct tensor *t)
{
    json_t *dt = json_object_get(o, "dtype"), *shape = json_object_get(o, "shape");
    json_t *offs = json_object_get(o, "data_offsets"), *v;
    uint64_t count = 1, esize, span;
    size_t i;

    if (!json_is_object(o))
        return mc_err(MC_EINVAL, "safetensors: tensor \"%s\" is not a JSON object", name);
    if (!json_is_string(dt))
        return mc_err(MC_EINVAL, "safetensors: tensor \"%s\" has no \"dtype\" string", name);
    t->dtype = dtype_parse(json_string_value(dt));
    if (t->dtype < 0)
        return mc_err(MC_EINVAL,
                      "safetensors: tensor \"%s\" has unknown dtype \"%.20s\" (known: BOOL, U8, "
                      "I8, F8_E4M3, F8_E5M2, I16, U16, F16, BF16, I32, U32, F32, I64, U64, F64)",
                      name, json_string_value(dt));
    if (!json_is_array(shape))
        return mc_err(MC_EINVAL, "safetensors: tensor \"%s\" has no \"shape\" array", name);
    if (json_array_size(shape) > 255)
        return mc_err(MC_EINVAL, "safetensors: tensor \"%s\" has %zu dimensions; at most 255",
                      name, json_array_size(shape));
    json_array_foreach(shape, i, v)
    {
        uint64_t d;
        if (get_u64(v, &d) != 0)
            return mc_err(MC_EINVAL,
                          "safetensors: dimension %zu of tensor \"%s\" is not a non-negative "
                          "integer",
                          i, name);
        if (d && count > UINT64_MAX / d)
            return mc_err(MC_EINVAL, "safetensors: the shape of tensor \"%s\" overflows", name);
        count *= d;
    }
    if (!json_is_array(offs) || json_array_size(offs) != 2 ||
        get_u64(json_array_get(offs, 0), &t->begin) || get_u64(json_array_get(offs, 1), &t->end))
        return mc_err(MC_EINVAL,
                      "safetensors: tensor \"%s\" needs \"data_offsets\": [begin, end] of "
                      "non-negative integers",
                      name);
    if (t->begin > t->end)
        return mc_err(MC_EINVAL,
                      "safetensors: tensor \"%s\" has data_offsets [%llu, %llu]: begin after end",
                      name, (unsigned long long)t->begin, (unsigned long long)t->end);
    if (t->end > data_len)
        return mc_err(MC_EINVAL,
                      "safetensors: tensor \"%s\" ends at %llu, beyond the %llu-byte data "
                      "section",
                      name, (unsigned long long)t->end, (unsigned long long)data_len);
    esize = mc_dtype_size((unsigned)t->dtype);
    span = t->end - t->begin;
    if (count > UINT64_MAX / esize || count * esize != span)
        return mc_err(MC_EINVAL,
                      "safetensors: tensor \"%s\" has %llu elements of %s (%llu bytes) but spans "
                      "%llu bytes",
                      name, (unsigned long long)count, mc_dtype_name((unsigned)t->dtype),
                      count > UINT64_MAX / esize ? 0ull : (unsigned long long)(count * esize),
                      (unsigned long long)span);
    t->name = name;
    t->name_len = strlen(name);
    t->ndim = json_array_size(shape);
    t->shape = shape;
    return 0;
}

/* The tensors must tile the data section: sorted by offset, no overlap, no hole. */
static int check_layout(struct tensor *ts, size_t n, uint64_t data_len)
{
    uint64_t at = 0;

    qsort(ts, n, sizeof(*ts), by_begin);
    for (size_t i = 0; i < n; i++) {
        if (ts[i].begin < at)
            return mc_err(MC_EINVAL,
                          "safetensors: tensor \"%s\" [%llu, %llu) overlaps tensor \"%s\"",
                          ts[i].name, (unsigned long long)ts[i].begin,
                          (unsigned long long)ts[i].end, ts[i - 1].name);
        if (ts[i].begin > at)
            return mc_err(MC_EINVAL,
                          "safetensors: bytes [%llu, %llu) of the data section belong to no "
                          "tensor (before \"%s\")",
                          (unsigned long long)at, (unsigned long long)ts[i].begin, ts[i].name);
        at = ts[i].end;
    }
    if (at != data_len)
        return mc_err(MC_EINVAL,
                      "safetensors: the data section is %llu bytes but its tensors cover %llu",
                      (unsigned long long)data_len, (unsigned long long)at);
    return 0;
}

static int build(struct tensor *ts, size_t n, uint64_t data_start, json_t *meta,
                 struct mc_tensor_table **out)
{
    size_t size = sizeof(struct mc_tensor_table) + n * sizeof(struct mc_tensor_entry);
    char *meta_text = meta ? json_dumps(meta, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
    struct mc_tensor_table *t;
    size_t pos;

    for (size_t i = 0; i < n; i++)
        size += ts[i].ndim * sizeof(uint64_t) + ts[i].name_len + 1;
    size += meta_text ? strlen(meta_text) + 1 : 0;
    size = (size + 7) & ~(size_t)7;
    if (size > UINT32_MAX) {
        free(meta_text);
        return mc_err(MC_EINVAL, "safetensors: the tensor table would be %zu bytes", size);
    }
    t = calloc(1, size);
    if (!t) {
        free(meta_text);
        return mc_err(MC_ENOMEM, "safetensors: out of memory for %zu tensors", n);
    }
    t->magic = MC_TENSORS_MAGIC;
    t->count = (uint32_t)n;
    t->data_start = data_start;
    t->size = size;
    qsort(ts, n, sizeof(*ts), by_name);
    pos = sizeof(*t) + n * sizeof(struct mc_tensor_entry);
    for (size_t i = 0; i < n; i++) { /* shapes first: they stay 8-aligned */
        struct mc_tensor_entry *e = &t->e[i];
        uint64_t *shape = (uint64_t *)((char *)t + pos);

        e->begin = ts[i].begin;
        e->end = ts[i].end;
        e->dtype = (uint8_t)ts[i].dtype;
        e->ndim = (uint8_t)ts[i].ndim;
        e->shape_off = (uint32_t)pos;
        for (size_t d = 0; d < ts[i].ndim; d++)
            get_u64(json_array_get(ts[i].shape, d), &shape[d]);
        pos += ts[i].ndim * sizeof(uint64_t);
    }
    for (size_t i = 0; i < n; i++) {
        t->e[i].name_off = (uint32_t)pos;
        t->e[i].name_len = (uint16_t)ts[i].name_len;
        memcpy((char *)t + pos, ts[i].name, ts[i].name_len + 1);
        pos += ts[i].name_len + 1;
    }
    if (meta_text) {
        t->meta_off = (uint32_t)pos;
        t->meta_len = (uint32_t)strlen(meta_text);
        memcpy((char *)t + pos, meta_text, t->meta_len + 1);
        free(meta_text);
    }
    *out = t;
    return 0;
}

int mc_safetensors_parse(const uint8_t *file, uint64_t size, struct mc_tensor_table **out)
{
    uint64_t n = 0, data_len;
    json_error_t jerr;
    json_t *root, *meta = NULL, *v;
    struct tensor *ts = NULL;
    const char *key;
    size_t count = 0;
    int rc = 0;

    *out = NULL;
    if (size < 8)
        return mc_err(MC_EINVAL, "safetensors: the file is %llu bytes, too short for the 8-byte "
                                 "header length",
                      (unsigned long long)size);
    for (int i = 7; i >= 0; i--)
        n = n << 8 | file[i];
    if (n > MC_ST_HEADER_MAX)
        return mc_err(MC_EINVAL, "safetensors: header length %llu exceeds the limit of %u bytes",
                      (unsigned long long)n, MC_ST_HEADER_MAX);
    if (n > size - 8)
        return mc_err(MC_EINVAL,
                      "safetensors: header length %llu goes beyond the %llu-byte file",
                      (unsigned long long)n, (unsigned long long)size);
    data_len = size - 8 - n;
    root = json_loadb((const char *)file + 8, (size_t)n, JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL,
                      &jerr);
    if (!root)
        return mc_err(MC_EINVAL, "safetensors: the header is not valid JSON (%s at byte %d)",
                      jerr.text, jerr.position);
    if (!json_is_object(root)) {
        json_decref(root);
        return mc_err(MC_EINVAL, "safetensors: the header is not a JSON object");
    }
    ts = calloc(json_object_size(root) + 1, sizeof(*ts));
    if (!ts) {
        json_decref(root);
        return mc_err(MC_ENOMEM, "safetensors: out of memory");
    }
    json_object_foreach(root, key, v)
    {
        if (strcmp(key, "__metadata__") == 0) {
            const char *mk;
            json_t *mv;
            if (!json_is_object(v)) {
                rc = mc_err(MC_EINVAL, "safetensors: __metadata__ is not an object");
                break;
            }
            json_object_foreach(v, mk, mv) if (!json_is_string(mv))
            {
                rc = mc_err(MC_EINVAL, "safetensors: __metadata__ value of \"%s\" is not a string",
                            mk);
                break;
            }
            if (rc)
                break; /* the inner break only left the metadata loop */
            meta = v;
            continue;
        }
        if (strlen(key) == 0 || strlen(key) > 65535 || memchr(key, '\0', strlen(key) + 1) !=
                                                           key + strlen(key)) {
            rc = mc_err(MC_EINVAL, "safetensors: a tensor name is empty or too long");
            break;
        }
        rc = check_tensor(key, v, data_len, &ts[count]);
        if (rc)
            break;
        count++;
    }
    if (!rc)
        rc = check_layout(ts, count, data_len);
    if (!rc)
        rc = build(ts, count, 8 + n, meta, out);
    free(ts);
    json_decref(root);
    return rc;
}

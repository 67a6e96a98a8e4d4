/*
 * test_safetensors.c - the safetensors header validator and tensor table:
 * a good file parses into a sorted, position-independent table; each kind
 * of damage the issue names is refused with a message naming the tensor
 * and the problem.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "index/safetensors.h"
#include "mcache.h"
#include "tests/helpers/run.h"

/* A safetensors file from a header text and a data section of data_len bytes. */
static uint8_t *st_file(const char *header, uint64_t data_len, uint64_t *size)
{
    uint64_t n = strlen(header);
    uint8_t *f = calloc(1, 8 + n + data_len + 1);

    for (int i = 0; i < 8; i++)
        f[i] = (uint8_t)(n >> (8 * i));
    memcpy(f + 8, header, n);
    for (uint64_t i = 0; i < data_len; i++)
        f[8 + n + i] = (uint8_t)i;
    *size = 8 + n + data_len;
    return f;
}

static void test_good_file(void **state)
{
    const char *h = "{\"w\":{\"dtype\":\"F32\",\"shape\":[2,3],\"data_offsets\":[8,32]},"
                    "\"b\":{\"dtype\":\"F16\",\"shape\":[4],\"data_offsets\":[0,8]},"
                    "\"__metadata__\":{\"format\":\"pt\"}}";
    uint64_t size;
    uint8_t *f = st_file(h, 32, &size);
    struct mc_tensor_table *t;

    (void)state;
    assert_int_equal(mc_safetensors_parse(f, size, &t), 0);
    assert_int_equal(t->magic, MC_TENSORS_MAGIC);
    assert_int_equal(t->count, 2);
    assert_int_equal(t->data_start, 8 + strlen(h));
    /* Sorted by name: b, w. */
    assert_string_equal((char *)t + t->e[0].name_off, "b");
    assert_string_equal((char *)t + t->e[1].name_off, "w");
    const struct mc_tensor_entry *w = mc_tensor_table_find(t, "w");
    assert_non_null(w);
    assert_int_equal(w->dtype, MC_DT_F32);
    assert_int_equal(w->ndim, 2);
    const uint64_t *shape = (const uint64_t *)((char *)t + w->shape_off);
    assert_int_equal(shape[0], 2);
    assert_int_equal(shape[1], 3);
    assert_int_equal(w->begin, 8);
    assert_int_equal(w->end, 32);
    assert_null(mc_tensor_table_find(t, "nope"));
    assert_string_equal((char *)t + t->meta_off, "{\"format\":\"pt\"}");
    /* Position independent: a copy elsewhere reads the same. */
    struct mc_tensor_table *copy = malloc(t->size);
    memcpy(copy, t, t->size);
    free(t);
    assert_non_null(mc_tensor_table_find(copy, "b"));
    free(copy);
    free(f);
}

static void test_empty_and_scalar(void **state)
{
    uint64_t size;
    uint8_t *f = st_file("{}", 0, &size);
    struct mc_tensor_table *t;

    (void)state;
    assert_int_equal(mc_safetensors_parse(f, size, &t), 0);
    assert_int_equal(t->count, 0);
    free(t);
    free(f);
    f = st_file("{\"s\":{\"dtype\":\"I64\",\"shape\":[],\"data_offsets\":[0,8]}}", 8, &size);
    assert_int_equal(mc_safetensors_parse(f, size, &t), 0);
    assert_int_equal(t->e[0].ndim, 0);
    free(t);
    free(f);
}

/* Each bad header is refused with a message containing `want`. */
static void refused(const char *header, uint64_t data_len, const char *want)
{
    uint64_t size;
    uint8_t *f = st_file(header, data_len, &size);
    struct mc_tensor_table *t = (void *)1;

    assert_int_equal(mc_safetensors_parse(f, size, &t), MC_EINVAL);
    assert_null(t);
    if (!strstr(mc_last_error(), want))
        fail_msg("message \"%s\" lacks \"%s\"", mc_last_error(), want);
    free(f);
}

static void test_refusals(void **state)
{
    (void)state;
    refused("{\"a\":", 0, "not valid JSON");
    refused("[1,2]", 0, "not a JSON object");
    refused("{\"a\":{\"dtype\":\"F33\",\"shape\":[1],\"data_offsets\":[0,4]}}", 4,
            "tensor \"a\" has unknown dtype \"F33\"");
    refused("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,16]}}", 8,
            "tensor \"a\" ends at 16, beyond the 8-byte data section");
    refused("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[8,0]}}", 8,
            "tensor \"a\" has data_offsets [8, 0]: begin after end");
    refused("{\"a\":{\"dtype\":\"F32\",\"shape\":[2,2],\"data_offsets\":[0,8]}}", 8,
            "tensor \"a\" has 4 elements of F32 (16 bytes) but spans 8 bytes");
    refused("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
            "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}",
            12, "tensor \"b\" [4, 12) overlaps tensor \"a\"");
    refused("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
            "\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}",
            8, "duplicate");
    refused("{\"a\":{\"dtype\":\"U8\",\"shape\":[4],\"data_offsets\":[4,8]}}", 8,
            "bytes [0, 4) of the data section belong to no tensor");
    refused("{\"a\":{\"dtype\":\"U8\",\"shape\":[4],\"data_offsets\":[0,4]}}", 8,
            "data section is 8 bytes but its tensors cover 4");
    refused("{\"a\":{\"dtype\":\"U8\",\"shape\":[-1],\"data_offsets\":[0,4]}}", 4,
            "dimension 0 of tensor \"a\"");
    refused("{\"a\":{\"dtype\":\"U8\",\"shape\":[4]}}", 4, "tensor \"a\" needs \"data_offsets\"");
    refused("{\"a\":{\"shape\":[4],\"data_offsets\":[0,4]}}", 4, "tensor \"a\" has no \"dtype\"");
    refused("{\"a\":{\"dtype\":\"U8\",\"shape\":[4294967296,4294967296,16],\"data_offsets\":[0,4]}}",
            4, "overflows");
    refused("{\"__metadata__\":{\"k\":1}}", 0, "__metadata__ value of \"k\" is not a string");
    /* Bad metadata first, a good tensor after: still refused (a review find). */
    refused("{\"__metadata__\":{\"k\":1},\"a\":{\"dtype\":\"U8\",\"shape\":[4],"
            "\"data_offsets\":[0,4]}}",
            4, "__metadata__ value of \"k\" is not a string");
}

static void test_bad_lengths(void **state)
{
    uint8_t f[16] = {0};
    struct mc_tensor_table *t;

    (void)state;
    assert_int_equal(mc_safetensors_parse(f, 5, &t), MC_EINVAL);
    assert_non_null(strstr(mc_last_error(), "too short"));
    f[0] = 200; /* header length 200 in a 16-byte file */
    assert_int_equal(mc_safetensors_parse(f, 16, &t), MC_EINVAL);
    assert_non_null(strstr(mc_last_error(), "header length 200 goes beyond the 16-byte file"));
    memset(f, 0xff, 8); /* absurd length */
    assert_int_equal(mc_safetensors_parse(f, 16, &t), MC_EINVAL);
    assert_non_null(strstr(mc_last_error(), "exceeds the limit"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_good_file),
        cmocka_unit_test(test_empty_and_scalar),
        cmocka_unit_test(test_refusals),
        cmocka_unit_test(test_bad_lengths),
    };
    MC_TEST_FILTER_FROM_ENV();
    return cmocka_run_group_tests(tests, NULL, NULL);
}

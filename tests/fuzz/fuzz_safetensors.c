/*
 * fuzz_safetensors.c - fuzz target for the safetensors header validator
 * (mcached runs it on every safetensors model it loads).
 *
 * With libFuzzer (cmake -DMCACHE_FUZZ=ON, clang):
 *   ./fuzz_safetensors tests/fuzz/corpus/safetensors -max_total_time=60
 * Without it, main() replays the seed corpus and mutations of it.
 */
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "index/safetensors.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct mc_tensor_table *t;
    uint8_t *copy = malloc(size ? size : 1); /* exact size: ASan sees any overread */

    if (!copy)
        return 0;
    memcpy(copy, data, size);
    if (mc_safetensors_parse(copy, size, &t) == 0) {
        uint64_t data_len = size - t->data_start;
        /* Whatever parses must describe bytes inside the file, consistently. */
        for (uint32_t i = 0; i < t->count; i++) {
            const struct mc_tensor_entry *e = &t->e[i];
            if (e->begin > e->end || e->end > data_len || !mc_dtype_size(e->dtype) ||
                e->name_off >= t->size || e->shape_off > t->size ||
                mc_tensor_table_find(t, (const char *)t + e->name_off) != e)
                abort();
        }
        free(t);
    }
    free(copy);
    return 0;
}

#ifndef MC_LIBFUZZER
static size_t load(const char *path, uint8_t *buf, size_t cap)
{
    FILE *f = fopen(path, "rb");
    size_t n;

    if (!f)
        return 0;
    n = fread(buf, 1, cap, f);
    fclose(f);
    return n;
}

int main(int argc, char **argv)
{
    static uint8_t buf[1 << 16], mut[1 << 16];
    uint64_t x = 0x2545f4914f6cdd1dull;
    int files = 0;

    for (int i = 1; i < argc; i++) {
        DIR *d = opendir(argv[i]);
        struct dirent *e;
        char p[1024];

        while (d && (e = readdir(d))) {
            if (e->d_name[0] == '.')
                continue;
            snprintf(p, sizeof(p), "%s/%s", argv[i], e->d_name);
            size_t n = load(p, buf, sizeof(buf));
            LLVMFuzzerTestOneInput(buf, n);
            files++;
            /* Mutations: flips, truncations, insertions of JSON-ish bytes. */
            for (int k = 0; k < 3000; k++) {
                size_t m = n;
                memcpy(mut, buf, n);
                for (int j = 0; j < 1 + k % 4 && m; j++) {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    size_t at = x % m;
                    switch (x >> 60 & 3) {
                    case 0:
                        mut[at] ^= (uint8_t)(1u << (x >> 32 & 7));
                        break;
                    case 1:
                        m = at;
                        break;
                    default:
                        mut[at] = (uint8_t)"{}[]\",:0123456789-eE\x00"[x % 22];
                    }
                }
                LLVMFuzzerTestOneInput(mut, m);
            }
        }
        if (d)
            closedir(d);
    }
    printf("fuzz_safetensors: %d seeds, %d mutations each: no crash\n", files, 3000);
    return 0;
}
#endif

/*
 * fuzz_proto.c - fuzz target for the control protocol's decoder (what
 * mcached runs on every byte a client sends).
 *
 * With libFuzzer (cmake -DMCACHE_FUZZ=ON, clang):
 *   ./fuzz_proto tests/fuzz/corpus/proto -max_total_time=60
 * Without it (every build, run by ctest), main() replays the seed corpus and
 * 200,000 random and mutated inputs, so the target keeps building and the
 * seeds keep passing.
 */
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "index/proto.h"
#include "mcache.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct mc_frame f;
    struct mc_request rq;
    char *payload;

    if (size < sizeof(f))
        return 0;
    memcpy(&f, data, sizeof(f));
    if (mc_frame_check(&f, MC_FRAME_REQUEST, MC_PROTO_MAX_REQUEST) != 0)
        return 0;
    if (f.length > size - sizeof(f))
        f.length = (uint32_t)(size - sizeof(f));
    /* As the daemon does: an exact-size heap copy, so ASan sees any overread. */
    payload = malloc(f.length ? f.length : 1);
    if (!payload)
        return 0;
    memcpy(payload, data + sizeof(f), f.length);
    if (mc_request_decode(payload, f.length, &rq) == 0) {
        /* Every decoded string lies inside the payload and is terminated. */
        if (!rq.op || rq.op < payload || rq.op >= payload + f.length)
            abort();
        for (unsigned i = 0; i < rq.nargs; i++)
            if (!rq.args[i] || rq.args[i] < payload || rq.args[i] >= payload + f.length ||
                strlen(rq.args[i]) >= f.length)
                abort();
    }
    free(payload);
    return 0;
}

#ifndef MC_LIBFUZZER
static int run_file(const char *path)
{
    FILE *fp = fopen(path, "rb");
    uint8_t buf[1 << 17];
    size_t n;

    if (!fp)
        return -1;
    n = fread(buf, 1, sizeof(buf), fp);
    fclose(fp);
    return LLVMFuzzerTestOneInput(buf, n);
}

int main(int argc, char **argv)
{
    uint8_t buf[512];
    uint64_t x = 0x9e3779b97f4a7c15ull;
    int files = 0;

    for (int i = 1; i < argc; i++) {
        DIR *d = opendir(argv[i]);
        struct dirent *e;
        char p[1024];

        if (!d) {
            files += run_file(argv[i]) == 0;
            continue;
        }
        while ((e = readdir(d)))
            if (e->d_name[0] != '.') {
                snprintf(p, sizeof(p), "%s/%s", argv[i], e->d_name);
                files += run_file(p) == 0;
            }
        closedir(d);
    }
    for (int k = 0; k < 200000; k++) {
        size_t n = 16 + (size_t)(x % 200);
        struct mc_frame f = {.magic = MC_PROTO_MAGIC, .version = 1, .type = MC_FRAME_REQUEST};

        for (size_t i = 0; i < n; i++) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            buf[i] = k % 3 ? (uint8_t)"load\0ab\0\x01"[x % 9] : (uint8_t)x;
        }
        f.length = (uint32_t)(x % 300);
        if (k % 2)
            memcpy(buf, &f, sizeof(f));
        LLVMFuzzerTestOneInput(buf, n);
    }
    printf("fuzz_proto: %d corpus files and 200000 generated inputs: no crash\n", files);
    return 0;
}
#endif

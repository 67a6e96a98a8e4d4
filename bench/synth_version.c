/*
 * synth_version.c - a synthetic version published in an arena's table
 * (see synth.h).
 */
#include "bench/synth.h"

#include "shm/extent.h"

int synth_version(struct mc_writer *w, struct mc_arena *a, const char *name, const char *version,
                  const char *meta, uint64_t data_off, uint64_t size, uint64_t extent_off)
{
    struct mc_version_desc d = {0};

    d.name = name;
    d.version = version;
    d.meta = meta;
    d.checksum = "xxh3-128:00000000000000000000000000000000";
    d.state = MC_STATE_READY;
    d.data_size = size;
    d.data_off = data_off;
    d.extent_off = extent_off;
    d.extent_size = extent_off ? mc_extent_round(&a->hdr->data_ext, size) : 0;
    return mc_table_put_version(w, &d, NULL);
}

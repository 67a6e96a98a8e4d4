/*
 * h_cache.c - mcached's operations: load, evict, pin, stats, deployments (api helper).
 */
#include "serve/http.h"

const struct route h_cache_routes[] = {
    {0},
};

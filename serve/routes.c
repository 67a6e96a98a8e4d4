/*
 * routes.c - every route group, in the order they are matched.
 */
#include <stddef.h>

#include "serve/http.h"

const struct route *const srv_route_groups[] = {
    h_core_routes, h_status_routes, h_registry_routes, h_artifact_routes,
    h_cache_routes, h_admin_routes, NULL,
};

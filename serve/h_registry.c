/*
 * h_registry.c - the registry's routes: models, versions, aliases, search (api helper).
 */
#include "serve/http.h"

const struct route h_registry_routes[] = {
    {0},
};

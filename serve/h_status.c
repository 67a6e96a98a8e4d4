/*
 * h_status.c - the status page and /v1/status (ui helper).
 */
#include "serve/http.h"

const struct route h_status_routes[] = {
    {0},
};

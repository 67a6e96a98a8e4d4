/* h_core.c: written by the core helper */
#include "serve/http.h"
const struct route h_core_routes[] = {
    {0},
};

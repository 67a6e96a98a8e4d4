/*
 * h_admin.c - rm, gc, fsck, verify, snapshots, tokens, audit (api helper).
 */
#include "serve/http.h"

const struct route h_admin_routes[] = {
    {0},
};

/*
 * h_artifacts.c - push (streaming upload) and download (api helper).
 */
#include "serve/http.h"

const struct route h_artifact_routes[] = {
    {0},
};

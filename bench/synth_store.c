/*
 * synth_store.c - a synthetic registry store (see synth.h). It writes the
 * way the registry's own mutations do, through its internals
 * (registry/reg_int.h): each record goes to the store's metadata backend
 * and is applied as replay would apply it, but with one sync at the end
 * instead of one per record.
 */
#include "bench/synth.h"

#include <stdio.h>

#include "common/err.h"
#include "registry/reg_int.h"

/* The push of version k of model i (whose name goes to name). */
static json_t *synth_record(struct mc_registry *r, size_t i, size_t k, char *name, size_t size)
{
    char version[32], sum[48];
    json_t *rec;

    /* every tenth model in a namespace */
    if (i % 10 == 0)
        snprintf(name, size, "team%02zu/model-%06zu", i % 100, i);
    else
        snprintf(name, size, "model-%06zu", i);
    snprintf(version, sizeof(version), "1.%zu.0", k);
    snprintf(sum, sizeof(sum), "xxh3-128:%016llx%016llx", (unsigned long long)(i * 31 + k),
             (unsigned long long)(k * 17 + i));
    rec = version_record(r->uid, "push", name, version);
    if (rec == NULL)
        return NULL;
    json_object_set_new(rec, "size", json_integer((json_int_t)(1000000 + i * 7 + k)));
    json_object_set_new(rec, "format", json_string(k % 2 ? "gguf" : "safetensors"));
    json_object_set_new(rec, "checksum", json_string(sum));
    json_object_set_new(rec, "status", json_string("ready"));
    json_object_set_new(rec, "preload", json_boolean(k == 0));
    json_object_set_new(rec, "pinned", json_false());
    json_object_set_new(rec, "description",
                        json_string("synthetic model for the registry benchmark"));
    json_object_set_new(rec, "framework", json_string("pytorch"));
    json_object_set_new(rec, "precision", json_string("fp16"));
    json_object_set_new(rec, "device", json_string("cuda"));
    json_object_set_new(rec, "source", json_string("s3://models/synthetic"));
    json_object_set_new(rec, "metrics",
                        json_pack("{s:f,s:f}", "accuracy", 0.5 + (double)(k % 50) / 100.0,
                                  "latency_ms", 10.0 + (double)(i % 90)));
    json_object_set_new(rec, "params", json_pack("{s:s,s:s}", "lr", "0.001", "epochs", "10"));
    json_object_set_new(rec, "tags",
                        json_pack("{s:s,s:s}", "env", k % 3 ? "dev" : "prod", "team", "bench"));
    return rec;
}

int synth_registry(const char *dir, size_t models, size_t versions)
{
    struct mc_registry_opts opts = {.flags = MC_REGISTRY_CREATE};
    struct mc_registry *r;
    char name[64];
    int rc = mc_registry_open(dir, &opts, &r);

    if (rc)
        return rc;
    if (mc_registry_model_count(r) != 0) {
        mc_registry_close(r);
        return mc_err(MC_EEXIST, "%s already holds models; synthesize into a new store", dir);
    }
    rc = reg_write_begin(r);
    for (size_t i = 0; rc == 0 && i < models; i++) {
        for (size_t k = 0; rc == 0 && k <= versions; k++) {
            json_t *rec;

            if (k < versions) {
                rec = synth_record(r, i, k, name, sizeof(name));
            } else {
                char to[32];

                /* one alias per model, on its newest version */
                snprintf(to, sizeof(to), "1.%zu.0", versions ? versions - 1 : 0);
                if (versions == 0)
                    continue;
                rec = version_record(r->uid, "alias", name, NULL);
                if (rec && (json_object_set_new(rec, "alias", json_string("production")) ||
                            json_object_set_new(rec, "from", json_null()) ||
                            json_object_set_new(rec, "to", json_string(to)))) {
                    json_decref(rec);
                    rec = NULL;
                }
            }
            if (rec == NULL)
                rc = mc_err(MC_ENOMEM, "out of memory building a manifest record");
            if (rc == 0)
                rc = r->be->ops->append(r->be, rec, false);
            if (rc == 0)
                rc = state_apply_json(r->st, rec, false, mc_registry_generation(r));
            json_decref(rec);
        }
    }
    if (rc == 0)
        rc = r->be->ops->sync(r->be);
    if (r->lock_mode)
        reg_unlock(r); /* no automatic compaction: the journal is what gets timed */
    mc_registry_close(r);
    return rc;
}

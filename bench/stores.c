/*
 * stores.c - one model served by every system, and fresh-worker reads of it
 * (see stores.h).
 */
#include "bench/stores.h"

#include <errno.h>
#include <inttypes.h>
#include <lmdb.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "bench/lookups.h"
#include "bench/model.h"
#include "shm/arena.h"

const char *msys_name(enum msys m)
{
    switch (m) {
    case MS_MCACHE:
        return "mcache (tmpfs arena)";
    case MS_MCACHE_HUGE:
        return "mcache (huge pages)";
    case MS_READ:
        return "read() into private memory";
    case MS_MMAP:
        return "mmap of the page-cached file";
    case MS_LMDB:
        return "LMDB (zero-copy value)";
    default:
        return "?";
    }
}

bool huge_available(struct bench *b, uint64_t data_size, char *why, size_t len)
{
    uint64_t need = barena_footprint(data_size, 0), hps = meminfo("Hugepagesize");
    uint64_t free_pages = meminfo("HugePages_Free"), want = hps ? (need + hps - 1) / hps : 0;
    uint64_t page = 0;
    uint32_t backing = MC_BACKING_OTHER;

    mc_backing_detect(b->o.huge_dir, &page, &backing);
    if (backing != MC_BACKING_HUGETLB && backing != MC_BACKING_THP) {
        snprintf(why, len,
                 "neither a hugetlbfs nor a tmpfs mounted huge=always is at %s (as root: mount "
                 "-t hugetlbfs none %s, or give --huge-dir)",
                 b->o.huge_dir, b->o.huge_dir);
        return false;
    }
    if (backing == MC_BACKING_HUGETLB && free_pages < want) {
        snprintf(why, len,
                 "%" PRIu64 " huge pages of %" PRIu64 " KiB are free, %" PRIu64
                 " are needed; reserve them as root with `echo %" PRIu64
                 " > /proc/sys/vm/nr_hugepages` (this tool never changes system settings)",
                 free_pages, hps / 1024, want, meminfo("HugePages_Total") + want - free_pages);
        return false;
    }
    if (backing == MC_BACKING_THP && fs_avail(b->o.huge_dir) < need) {
        snprintf(why, len, "the huge=always tmpfs at %s has less than %" PRIu64 " MiB free",
                 b->o.huge_dir, (uint64_t)(need / MiB));
        return false;
    }
    if (!bench_huge_dir(b)) {
        snprintf(why, len, "cannot create a directory in %s: %s", b->o.huge_dir, strerror(errno));
        return false;
    }
    return true;
}

static int lmdb_put_blob(const char *dir, uint64_t size, uint64_t *sum)
{
    MDB_val k = {strlen(MODEL_KEY), (void *)MODEL_KEY}, v = {size, NULL};
    MDB_env *env;
    MDB_txn *txn;
    MDB_dbi dbi;
    int rc;

    if (lmdb_env_make(dir, size + 64 * MiB, &env))
        return -1;
    if (!(rc = mdb_txn_begin(env, NULL, 0, &txn))) {
        if ((rc = mdb_dbi_open(txn, NULL, 0, &dbi)) ||
            (rc = mdb_put(txn, dbi, &k, &v, MDB_RESERVE))) {
            mdb_txn_abort(txn);
        } else {
            *sum = model_fill(v.mv_data, 0, size);
            rc = mdb_txn_commit(txn);
        }
    }
    if (!rc)
        rc = mdb_env_sync(env, 1);
    mdb_env_close(env);
    return rc ? bench_error("LMDB: writing the model into %s: %s", dir, mdb_strerror(rc)) : 0;
}

static int arena_with_model(struct bench *b, struct stores *s, struct barena *ba, const char *dir,
                            const char *tag)
{
    uint64_t sum;

    if (barena_create(b, ba, dir, tag, s->size, 0) ||
        barena_put_model(ba, MODEL_NAME, MODEL_VERSION, s->size, &sum))
        return -1;
    barena_seal(ba);
    if (s->sum && sum != s->sum)
        return bench_error("model bytes differ between stores (bug)");
    s->sum = sum;
    return 0;
}

int stores_make(struct bench *b, struct stores *s, const char *tag, uint64_t size, unsigned what)
{
    uint64_t sum = 0;
    char name[64];

    memset(s, 0, sizeof(*s));
    s->size = size;
    if ((what & ST_ARENA) &&
        fs_require(b->o.shm_dir, barena_footprint(size, 0) + 16 * MiB, "the mcache arena"))
        return -1;
    if ((what & (ST_FILE | ST_LMDB)) &&
        fs_require(b->o.tmp_dir,
                   (what & ST_FILE ? size : 0) + (what & ST_LMDB ? size + 64 * MiB : 0),
                   "the model file and LMDB environment"))
        return -1;
    bench_progress("%s: preparing a %s model for each system", b->scenario,
                   fmt_bytes(size, name, sizeof(name)));
    if (what & ST_ARENA) {
        if (arena_with_model(b, s, &s->arena, b->shm_work, tag))
            return -1;
        s->have[MS_MCACHE] = true;
    }
    if ((what & ST_HUGE) && huge_available(b, size, s->why_no_huge, sizeof(s->why_no_huge))) {
        /* Optional: a failure here is reported and the 4 KiB figures still stand. */
        snprintf(name, sizeof(name), "%s-huge", tag);
        if (arena_with_model(b, s, &s->huge, b->huge_work, name) == 0)
            s->have[MS_MCACHE_HUGE] = true;
        else
            snprintf(s->why_no_huge, sizeof(s->why_no_huge),
                     "creating the arena in %.400s failed (the error is above)", b->huge_work);
    }
    if (what & ST_FILE) {
        snprintf(s->file, sizeof(s->file), "%s/%s.model", b->tmp_work, tag);
        if (model_file_write(s->file, size, &sum))
            return -1;
        if (s->sum && sum != s->sum)
            return bench_error("model bytes differ between stores (bug)");
        s->sum = sum;
        s->have[MS_READ] = s->have[MS_MMAP] = true;
    }
    if (what & ST_LMDB) {
        snprintf(s->lmdb, sizeof(s->lmdb), "%s/%s.lmdb", b->tmp_work, tag);
        snprintf(s->lmdb_data, sizeof(s->lmdb_data), "%s/data.mdb", s->lmdb);
        if (lmdb_put_blob(s->lmdb, size, &sum))
            return -1;
        if (s->sum && sum != s->sum)
            return bench_error("model bytes differ between stores (bug)");
        s->sum = sum;
        s->have[MS_LMDB] = true;
    }
    return stores_rewarm(s);
}

void stores_drop(struct stores *s)
{
    barena_destroy(&s->arena);
    barena_destroy(&s->huge);
    if (s->file[0])
        unlink(s->file);
    if (s->lmdb[0])
        rm_tree(s->lmdb);
    memset(s->have, 0, sizeof(s->have));
}

void stores_args(const struct stores *s, enum msys m, const char **args)
{
    const struct barena *ba = m == MS_MCACHE_HUGE ? &s->huge : &s->arena;
    size_t n = 0;

    switch (m) {
    case MS_MCACHE:
    case MS_MCACHE_HUGE:
        args[n++] = "mcache";
        args[n++] = ba->dir;
        args[n++] = ba->cache;
        args[n++] = MODEL_NAME;
        args[n++] = MODEL_VERSION;
        break;
    case MS_READ:
    case MS_MMAP:
        args[n++] = m == MS_READ ? "read" : "mmap";
        args[n++] = s->file;
        break;
    default:
        args[n++] = "lmdb";
        args[n++] = s->lmdb;
        args[n++] = MODEL_KEY;
        break;
    }
    args[n] = NULL;
}

int stores_rewarm(const struct stores *s)
{
    if (s->have[MS_READ] && file_residency(s->file) < 0.999 && file_warm(s->file))
        return -1;
    if (s->have[MS_LMDB] && file_residency(s->lmdb_data) < 0.999 && file_warm(s->lmdb_data))
        return -1;
    return 0;
}

int stores_check_sum(const struct stores *s, enum msys m, const char *line)
{
    uint64_t sum;

    if (!line_u64(line, "sum", &sum))
        return bench_error("%s worker answered \"%s\"", msys_name(m), line);
    if (sum != s->sum)
        return bench_error("%s worker read different bytes (sum 0x%" PRIx64 ", expected 0x%" PRIx64
                           ")",
                           msys_name(m), sum, s->sum);
    return 0;
}

int stores_read(struct bench *b, const struct stores *s, enum msys m, struct read_run *r)
{
    const char *args[10] = {"read"};
    struct worker w;
    char line[512];

    stores_args(s, m, args + 1);
    if (bench_worker(b, &w, args))
        return -1;
    if (worker_line(&w, line, sizeof(line))) {
        worker_finish(&w);
        return bench_error("the %s worker died before answering", msys_name(m));
    }
    memset(r, 0, sizeof(*r));
    line_u64(line, "attach_ns", &r->attach_ns);
    line_u64(line, "ready_ns", &r->ready_ns);
    line_u64(line, "first_ns", &r->first_ns);
    line_u64(line, "second_ns", &r->second_ns);
    if (stores_check_sum(s, m, line)) {
        worker_kill(&w);
        return -1;
    }
    return worker_finish(&w);
}

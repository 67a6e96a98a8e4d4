/*
 * bench.h - mcache-bench: the framework every scenario uses.
 *
 * A scenario is one function, `int sc_NAME(struct bench *b)`, and one entry
 * in the table in main.c. It measures each system it compares (mcache and
 * the baselines and peers beside it) in the same run, records every raw
 * value with bench_add(), states its targets with bench_target(), and
 * returns 0, or a negative value on a real error (a missed target is not an
 * error). The framework prints the table, merges the rows into
 * OUT/results.json and results.csv, and draws the plots.
 *
 * Everything a scenario creates goes under the run's private directories
 * (b->shm_work, b->tmp_work, bench_huge_dir()), and every process it starts
 * goes through bench_spawn(): both are removed or killed on exit, on errors
 * and on SIGINT/SIGTERM (cleanup.c).
 */
#ifndef MCACHE_BENCH_H
#define MCACHE_BENCH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>

#define KiB (1ull << 10)
#define MiB (1ull << 20)
#define GiB (1ull << 30)

/* ---- options ---- */

struct bench_opts {
    const char *out_dir;  /* --out */
    const char *shm_dir;  /* --shm-dir: where arenas live */
    const char *huge_dir; /* --huge-dir: hugetlbfs mount for huge-page runs */
    const char *tmp_dir;  /* --tmp-dir: disk directory for model files and LMDB */
    const char *registry; /* --registry: fleet's PostgreSQL URL (else $MCACHE_BENCH_REGISTRY) */
    bool quick;
    bool no_redis;
    bool no_plots;
    unsigned runs;      /* runs per measurement, >= 5 */
    bool runs_given;    /* --runs was given (else a scenario may trim it to its budget) */
    uint64_t size;      /* model size for start, memory, pressure */
    uint64_t ops;       /* get: lookups per latency run */
    uint64_t redis_ops; /* get: Redis GETs per run */
    unsigned tput_ms;   /* get: duration of one lookups-per-second run */
    unsigned idle_s;    /* pressure: idle wait */
    unsigned rounds;    /* pressure: idle rounds */
    unsigned passes;    /* pressure: full passes per phase */
    uint64_t hog_max;   /* pressure: cap on the hog (0: until the floor) */
    uint64_t base;      /* --base: first arena base address (0: slots of the default range) */
};

/* ---- one run ---- */

struct bench_row;
struct bench_target;

struct bench {
    struct bench_opts o;
    const char *self;     /* path of this executable, for workers */
    char shm_work[512];   /* private directory in shm_dir (arenas, LMDB for get) */
    char tmp_work[512];   /* private directory in tmp_dir (files, LMDB on disk) */
    char huge_work[512];  /* private directory in huge_dir, once made ("" before) */
    const char *scenario; /* the one running now */
    bool asked;           /* it was named on the command line (not only reached through `all`) */
    struct bench_row *rows;
    size_t nrows, rows_cap;
    struct bench_target *targets;
    size_t ntargets, targets_cap;
    char **ran; /* scenarios run, for merging */
    size_t nran;
    unsigned placed;     /* arenas given a base address so far (bench_next_base) */
    unsigned next_arena; /* sequence for unique cache names */
};

/* A measured quantity of one system: every raw value of every run. */
struct bench_row {
    char *scenario, *system, *metric, *unit;
    double *runs;
    size_t n, cap;
    int pctl;          /* 50: the row's headline is the median; 99: the 99th percentile */
    char *base_system; /* ratio against this system's row of the same metric, or */
    double base_value; /* ... against this value (base_system NULL, base_label set) */
    char *base_label;
};

struct bench_target {
    char *scenario;
    char *what; /* "get+release within 2.5x of raw ck_ht, 10,000 models" */
    double value;
    double limit;
    bool at_most; /* pass iff value <= limit (else value >= limit) */
    bool pass;
};

/* The row for (current scenario, system, metric), created on first use. */
struct bench_row *bench_row(struct bench *b, const char *system, const char *metric,
                            const char *unit);

/* Record one raw value. */
void bench_add(struct bench *b, const char *system, const char *metric, const char *unit, double v);

/* The ratio column of every row of `metric` is against `system`'s row. */
void bench_base_system(struct bench *b, const char *metric, const char *system);

/*
 * The ratio column of the rows of `system` (NULL: every row) of the current
 * scenario, matching `metric_prefix` (NULL: all), is against a fixed value
 * (e.g. one model's size, or the system's own warm median).
 */
void bench_base_value(struct bench *b, const char *system, const char *metric_prefix, double v,
                      const char *label);

/* The headline value of a row (median, or its percentile) and its extremes. */
double row_value(const struct bench_row *r);
double row_min(const struct bench_row *r);
double row_max(const struct bench_row *r);
/* Headline of (scenario now, system, metric), or NaN if absent. */
double bench_value(struct bench *b, const char *system, const char *metric);
/* Ratio of a row to its baseline, or NaN. */
double row_ratio(struct bench *b, const struct bench_row *r);

/* A target: printed PASS or MISS at once and kept in results.json. */
void bench_target(struct bench *b, double value, bool at_most, double limit, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));

/* Print the current scenario's table on stdout. */
void bench_print_table(struct bench *b, const char *title);

/* A visible note on stdout ("note: ..."). */
void bench_note(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Progress on stderr (what is running now). */
void bench_progress(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* A real error on stderr; returns -1. */
int bench_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/*
 * The base address for the next arena the bench makes or has mcached make,
 * of size bytes (barena.c). Without --base: slot after slot of the default
 * range (mc_arena_slot_base), so the arenas of a run, which this process
 * may map together, never overlap (their cache names carry the pid, so
 * their own default slots could); an arena must then fit a slot. With
 * --base ADDR: ADDR, then 64 GiB higher for each next arena.
 */
int bench_next_base(struct bench *b, uint64_t size, uint64_t *base);

/* Allocation that cannot fail (exits with cleanup on out of memory). */
void *xrealloc(void *p, size_t n);
char *xstrdup(const char *s);

/* Statistics over raw values. */
double stat_median(const double *v, size_t n);
double stat_pctl(const double *v, size_t n, int pctl);

/* ---- output (report.c) ---- */

/* Merge this run's rows into OUT/results.json; write results.csv and plots. */
int report_write(struct bench *b);

/* The machine the figures were measured on (machine.c). */
struct machine {
    char cpu[128];
    unsigned cores;
    uint64_t memory;    /* MemTotal, bytes */
    char kernel[256];   /* uname -srv */
    char os[128];       /* PRETTY_NAME of /etc/os-release */
    uint64_t page_size; /* page size backing arenas in --shm-dir */
    char backing[96];   /* "4 KiB pages (tmpfs)" */
    uint64_t huge_page_size, huge_pages_free;
    bool free_page_reporting; /* see vm_free_page_reporting() */
    char date[32];            /* UTC, ISO 8601 */
};

void machine_get(struct bench *b, struct machine *m);
/*
 * Does this machine hand its free memory back to a hypervisor (a
 * virtio-balloon with free page reporting)? Then the first touch of memory
 * that stayed free a while faults on the host: copies into fresh memory
 * (cp, read() into malloc) swing with what the guest freed just before.
 */
bool vm_free_page_reporting(void);
/* "AMD EPYC, 2 cores, 23.5 GiB, Linux 6.18.44" (for plot titles). */
void machine_line(const struct machine *m, char *buf, size_t len);

/* ---- processes (proc.c) ---- */

/* In a child just forked from pid parent: die with the bench (PR_SET_PDEATHSIG), SIGPIPE default. */
void child_init(pid_t parent);

/* A worker: this program re-executed with a hidden subcommand, or a server. */
struct worker {
    pid_t pid;
    FILE *in;  /* its stdin (we write) */
    FILE *out; /* its stdout (we read); NULL if not captured */
};

/* Start `mcache-bench __worker ARGS...` (NULL-terminated). */
int bench_worker(struct bench *b, struct worker *w, const char *const *args);
/* Start n identical workers (none left running on failure). */
int workers_start(struct bench *b, struct worker *w, size_t n, const char *const *args);
/* rc == 0: finish every worker (the first failure is returned); else kill them, return rc. */
int workers_end(struct worker *w, size_t n, int rc);
/* Start any program; stdout to /dev/null unless capture. */
int bench_spawn(struct worker *w, const char *prog, const char *const *argv, bool capture);
/* Read one line from the worker into buf (newline removed); -1 on EOF. */
int worker_line(struct worker *w, char *buf, size_t len);
/* Send a line. */
int worker_send(struct worker *w, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Close its stdin and wait for it; 0 if it exited 0. */
int worker_finish(struct worker *w);
/* Kill it (SIGKILL) and reap it. */
void worker_kill(struct worker *w);
/*
 * A TCP port on 127.0.0.1 the kernel considers free right now (bound to
 * port 0, then closed): a server started on it may still lose it to
 * another process, so its start is retried on another port; -1 if none.
 */
int loopback_free_port(void);
/* Value of "key=" in a worker's line, as an unsigned number (base 0); false if absent. */
bool line_u64(const char *line, const char *key, uint64_t *v);

/*
 * CPU pinning, so that timed loops are not moved between CPUs mid-run (a
 * migration costs a loop its warm caches and TLB). cpu_nth(i): the i-th CPU
 * this process may use, wrapping. cpu_pin(cpu): pin the calling process;
 * -1 restores the CPUs it was allowed before.
 */
int cpu_nth(unsigned i);
int cpu_pin(int cpu);

/* The hidden worker entry point: argv[1] == "__worker". */
int worker_main(int argc, char **argv);

/* ---- cleanup (cleanup.c) ---- */

void cleanup_install(void);
void cleanup_add_dir(const char *path);
void cleanup_add_pid(pid_t pid);
void cleanup_del_pid(pid_t pid);
void cleanup_run(void);
/* Remove leftovers of earlier runs that were killed (dirs named for a dead pid). */
void cleanup_stale(const char *dir);
/* Remove a directory tree; async-signal-safe. */
void rm_tree(const char *path);

/* ---- the run's directories ---- */

int bench_dirs_make(struct bench *b);
/* A private directory in --huge-dir, made on first call; NULL if it cannot be. */
const char *bench_huge_dir(struct bench *b);

/* ---- scenarios ---- */

int sc_load(struct bench *b);
int sc_get(struct bench *b);
int sc_start(struct bench *b);
int sc_memory(struct bench *b);
int sc_pressure(struct bench *b);
int sc_restart(struct bench *b);
int sc_registry(struct bench *b);
int sc_deploy(struct bench *b);
int sc_http(struct bench *b);
int sc_torch(struct bench *b);
int sc_fleet(struct bench *b);

#endif

/*
 * worker.c - an inference worker in C over libmcache: attaches to the cache,
 * gets the demo model (demo@production), and runs its forward pass in plain C
 * straight from the arena (zero-copy: the weights are never copied).
 *
 * The demo model (examples/make_demo_model.py) is an MLP,
 * y = fc2(relu(fc1(x))), stored as safetensors with F32 tensors fc1.weight
 * [H, I], fc1.bias [H], fc2.weight [O, H], fc2.bias [O]; the sizes are taken
 * from the tensors, so any H works.
 *
 *   mcache-worker [--cache NAME] [--shm-dir DIR] [--watch SECONDS] [NAME [REF]]
 *
 * Once: get NAME@REF (default demo@production; asks mcached to load it if it
 * is registered but not resident), print the model, then one line per fixed
 * input: "y[i] = v0 v1 ... -> argmax".
 * --watch: serve for SECONDS as a worker does: every iteration gets NAME@REF
 * (the warm path: no system call), runs the model, releases it. Prints a line
 * whenever the version it is served changes (a blue-green alias move), and at
 * the end "watched ...: N inferences, V=n ..., errors E". Every result of a
 * version must equal that version's first result: a torn or mixed read would
 * show up as an error.
 *
 * Exit status: 0 ok, 1 an error (message on stderr), 2 bad usage.
 */
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "mcache.h"

#define BATCH    4
#define MAX_OUT  16
#define VERSIONS 8

struct mlp {
    struct mc_tensor w1, b1, w2, b2;
    unsigned in, hidden, out;
};

/* The fixed inputs, the same formula as examples/torch_worker.py. */
static float input_at(unsigned row, unsigned col)
{
    return (float)cos(0.3 * row + 0.7 * col);
}

static int tensor_f32(const mc_model *m, const char *name, unsigned ndim, struct mc_tensor *t)
{
    if (mc_model_tensor_find(m, name, t) != 0) {
        fprintf(stderr, "worker: %s\n", mc_last_error());
        return -1;
    }
    if (strcmp(t->dtype, "F32") != 0 || t->ndim != ndim) {
        fprintf(stderr, "worker: tensor \"%s\" of %s@%s is %s with %u dimensions; expected F32 "
                        "with %u (is this the demo model?)\n",
                name, mc_model_name(m), mc_model_version(m), t->dtype, t->ndim, ndim);
        return -1;
    }
    return 0;
}

/* Find the four tensors and check their shapes agree. */
static int mlp_bind(const mc_model *m, struct mlp *n)
{
    if (tensor_f32(m, "fc1.weight", 2, &n->w1) || tensor_f32(m, "fc1.bias", 1, &n->b1) ||
        tensor_f32(m, "fc2.weight", 2, &n->w2) || tensor_f32(m, "fc2.bias", 1, &n->b2))
        return -1;
    n->hidden = (unsigned)n->w1.shape[0];
    n->in = (unsigned)n->w1.shape[1];
    n->out = (unsigned)n->w2.shape[0];
    if (n->b1.shape[0] != n->hidden || n->w2.shape[1] != n->hidden || n->b2.shape[0] != n->out ||
        n->out > MAX_OUT || n->hidden == 0 || n->in == 0) {
        fprintf(stderr, "worker: %s@%s: tensor shapes do not make an MLP %u -> %u -> %u\n",
                mc_model_name(m), mc_model_version(m), n->in, n->hidden, n->out);
        return -1;
    }
    return 0;
}

/* y = fc2(relu(fc1(x))) for the fixed inputs, reading the weights in place. */
static int mlp_forward(const struct mlp *n, float y[BATCH][MAX_OUT])
{
    const float *w1 = n->w1.data, *b1 = n->b1.data, *w2 = n->w2.data, *b2 = n->b2.data;
    float *h = malloc(n->hidden * sizeof(*h));

    if (!h) {
        fprintf(stderr, "worker: out of memory\n");
        return -1;
    }
    for (unsigned r = 0; r < BATCH; r++) {
        for (unsigned j = 0; j < n->hidden; j++) {
            float s = b1[j];
            for (unsigned k = 0; k < n->in; k++)
                s += w1[(size_t)j * n->in + k] * input_at(r, k);
            h[j] = s > 0 ? s : 0;
        }
        for (unsigned o = 0; o < n->out; o++) {
            float s = b2[o];
            for (unsigned j = 0; j < n->hidden; j++)
                s += w2[(size_t)o * n->hidden + j] * h[j];
            y[r][o] = s;
        }
    }
    free(h);
    return 0;
}

static void print_outputs(const struct mlp *n, float y[BATCH][MAX_OUT])
{
    for (unsigned r = 0; r < BATCH; r++) {
        unsigned best = 0;

        printf("y[%u] =", r);
        for (unsigned o = 0; o < n->out; o++) {
            printf(" %.6f", y[r][o]);
            if (y[r][o] > y[r][best])
                best = o;
        }
        printf(" -> %u\n", best);
    }
}

static int get_model(mc_cache *c, const char *name, const char *ref, mc_model **m)
{
    int rc = mc_get(c, name, ref, m);

    if (rc == MC_ENOTRESIDENT || rc == MC_EFAILED)
        rc = mc_get_load(c, name, ref, 30000, m); /* ask mcached; wait up to 30 s */
    if (rc)
        fprintf(stderr, "worker: %s@%s: %s\n", name, ref, mc_last_error());
    return rc;
}

static int run_once(mc_cache *c, const char *name, const char *ref)
{
    float y[BATCH][MAX_OUT];
    struct mlp n;
    mc_model *m;

    if (get_model(c, name, ref, &m))
        return 1;
    printf("%s@%s (%s, %zu bytes, %s) as %s@%s\n", mc_model_name(m), mc_model_version(m),
           mc_model_format(m), mc_model_size(m), mc_model_checksum(m), name, ref);
    if (mlp_bind(m, &n) || mlp_forward(&n, y)) {
        mc_release(m);
        return 1;
    }
    printf("MLP %u -> %u -> %u, weights read in place at %p (zero-copy)\n", n.in, n.hidden,
           n.out, n.w1.data);
    print_outputs(&n, y);
    mc_release(m);
    return 0;
}

static double now_s(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int run_watch(mc_cache *c, const char *name, const char *ref, double seconds)
{
    struct {
        char version[64];
        long served;
        float y[BATCH][MAX_OUT];
    } seen[VERSIONS];
    int nseen = 0, last = -1;
    long inferences = 0, errors = 0;
    double start = now_s();

    while (now_s() - start < seconds) {
        float y[BATCH][MAX_OUT];
        struct mlp n;
        mc_model *m;
        int i;

        if (get_model(c, name, ref, &m)) {
            errors++;
            continue;
        }
        if (mlp_bind(m, &n) || mlp_forward(&n, y)) {
            errors++;
            mc_release(m);
            continue;
        }
        for (i = 0; i < nseen && strcmp(seen[i].version, mc_model_version(m)); i++)
            ;
        if (i == nseen && nseen < VERSIONS) {
            snprintf(seen[i].version, sizeof(seen[i].version), "%s", mc_model_version(m));
            memcpy(seen[i].y, y, sizeof(y));
            seen[i].served = 0;
            nseen++;
        }
        if (i < nseen) {
            seen[i].served++;
            for (unsigned r = 0; r < BATCH; r++)
                if (memcmp(seen[i].y[r], y[r], n.out * sizeof(float)) != 0) {
                    fprintf(stderr, "worker: %s@%s gave a different result than before\n",
                            name, seen[i].version);
                    errors++;
                    break;
                }
            if (i != last) {
                printf("%7.3f s: %s@%s serves %s, y[0][0] = %.6f\n", now_s() - start, name, ref,
                       seen[i].version, y[0][0]);
                fflush(stdout);
                last = i;
            }
        }
        inferences++;
        mc_release(m);
        nanosleep(&(struct timespec){.tv_nsec = 200000}, NULL); /* a request every 0.2 ms */
    }
    printf("watched %.1f s: %ld inferences,", seconds, inferences);
    for (int i = 0; i < nseen; i++)
        printf(" %s=%ld", seen[i].version, seen[i].served);
    printf(", errors %ld\n", errors);
    return errors ? 1 : 0;
}

static void usage(FILE *f)
{
    fprintf(f, "usage: mcache-worker [--cache NAME] [--shm-dir DIR] [--watch SECONDS] "
               "[NAME [REF]]\n"
               "Runs the demo MLP from the cache (default demo@production); see "
               "examples/worker.c.\n");
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {{"cache", required_argument, NULL, 'c'},
                                         {"shm-dir", required_argument, NULL, 'd'},
                                         {"watch", required_argument, NULL, 'w'},
                                         {"help", no_argument, NULL, 'h'},
                                         {NULL, 0, NULL, 0}};
    const char *cache = NULL, *dir = NULL, *name = "demo", *ref = "production";
    double watch = 0;
    mc_cache *c;
    int o, rc;

    while ((o = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (o) {
        case 'c':
            cache = optarg;
            break;
        case 'd':
            dir = optarg;
            break;
        case 'w':
            watch = atof(optarg);
            if (watch <= 0) {
                fprintf(stderr, "worker: --watch needs a number of seconds > 0, not \"%s\"\n",
                        optarg);
                return 2;
            }
            break;
        case 'h':
            usage(stdout);
            return 0;
        default:
            usage(stderr);
            return 2;
        }
    }
    if (optind < argc)
        name = argv[optind++];
    if (optind < argc)
        ref = argv[optind++];
    if (optind < argc) {
        usage(stderr);
        return 2;
    }
    if (mc_attach_dir(dir, cache, &c) != 0) {
        fprintf(stderr, "worker: %s\n", mc_last_error());
        return 1;
    }
    rc = watch > 0 ? run_watch(c, name, ref, watch) : run_once(c, name, ref);
    mc_detach(c);
    return rc;
}

/*
 * dump_worker.c - the C worker install_destdir builds against an installed
 * libmcache with nothing but `pkg-config --cflags --libs mcache`: attaches to
 * CACHE in SHM_DIR, gets NAME@REF (asking mcached to load it), and writes the
 * model's bytes, read in place from the arena, to stdout.
 *
 *   dump_worker SHM_DIR CACHE NAME REF
 *
 * Exit status: 0 done, 1 an mcache error (message on stderr), 2 bad usage.
 */
#include <stdio.h>

#include <mcache.h>

int main(int argc, char **argv)
{
    mc_cache *c;
    mc_model *m;
    int rc = 1;

    if (argc != 5) {
        fprintf(stderr, "usage: dump_worker SHM_DIR CACHE NAME REF\n");
        return 2;
    }
    if (mc_attach_dir(argv[1], argv[2], &c) != 0) {
        fprintf(stderr, "dump_worker: %s\n", mc_last_error());
        return 1;
    }
    if (mc_get_load(c, argv[3], argv[4], 30000, &m) != 0) {
        fprintf(stderr, "dump_worker: %s@%s: %s\n", argv[3], argv[4], mc_last_error());
    } else {
        if (fwrite(mc_model_data(m), 1, mc_model_size(m), stdout) == mc_model_size(m) &&
            fflush(stdout) == 0)
            rc = 0;
        else
            perror("dump_worker: stdout");
        mc_release(m);
    }
    mc_detach(c);
    return rc;
}

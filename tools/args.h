/*
 * args.h - mcache's command-line parser: long and short options from a
 * table, values given as "--opt VALUE" or "--opt=VALUE", repeatable
 * options collected in order, "--" ending options, positionals anywhere.
 *
 * Every command has its own table; the global options (--store, --json...)
 * are a second table accepted before or after the command name. The tables
 * also produce the OPTIONS section of each command's --help.
 */
#ifndef MCACHE_TOOLS_ARGS_H
#define MCACHE_TOOLS_ARGS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

enum opt_kind {
    OPT_FLAG,  /* --dry-run */
    OPT_VALUE, /* --keep N (the last one given wins) */
    OPT_LIST,  /* --tag K=V, repeatable, all kept in order */
};

struct opt_spec {
    const char *name; /* long name without "--" */
    char short_name;  /* 0: none */
    enum opt_kind kind;
    const char *metavar; /* "N", "K=V"; NULL for flags */
    const char *help;    /* one line */
};

#define ARGS_MAX_OPTS 32
#define ARGS_MAX_POS  16

struct args {
    const struct opt_spec *tables[2];
    size_t ntable[2];
    /* Results, indexed like the concatenation of the two tables. */
    unsigned count[ARGS_MAX_OPTS * 2];
    const char *value[ARGS_MAX_OPTS * 2];
    const char **list[ARGS_MAX_OPTS * 2];
    const char *pos[ARGS_MAX_POS];
    size_t npos;
    size_t dashdash; /* positionals before "--" (a command to run follows); npos+1 if none */
};

/* Number of entries in a NULL-name-terminated table. */
size_t opt_table_len(const struct opt_spec *t);

/*
 * Parse argv[0..argc) against tables t0 and t1 (either may be NULL). With
 * stop_at_pos, parsing ends at the first positional (its index is returned
 * in *next): that is how the global options before the command are read.
 * 0, or MC_EINVAL with a message naming the option and what it needs.
 */
int args_parse(struct args *a, const struct opt_spec *t0, const struct opt_spec *t1, int argc,
               char **argv, bool stop_at_pos, int *next);

void args_free(struct args *a);

/* How often --name was given (0: not given). */
unsigned args_count(const struct args *a, const char *name);
bool args_flag(const struct args *a, const char *name);
/* The value of --name, or NULL. */
const char *args_value(const struct args *a, const char *name);
/* Every value of a repeatable --name, in order; *n gets their number. */
const char *const *args_list(const struct args *a, const char *name, size_t *n);

/* The OPTIONS section of a help text for table t. */
void args_print_options(FILE *f, const struct opt_spec *t);

#endif

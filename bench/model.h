/*
 * model.h - the bytes every system serves, reading them, and the host facts
 * the scenarios size themselves by.
 *
 * A model of the benchmark is `size` bytes of a pseudo-random pattern (no
 * zero pages, nothing compressible). Whoever reads it sums it as 64-bit
 * words; every system must give the same sum as the generator, so a
 * benchmark can never be fast by reading the wrong bytes.
 */
#ifndef MCACHE_BENCH_MODEL_H
#define MCACHE_BENCH_MODEL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* Fill p with words [first, first + n/8) of the pattern; returns their sum. */
uint64_t model_fill(void *p, uint64_t first_word, size_t n);

/* Sum every 64-bit word of p (n a multiple of 8): one full read. */
uint64_t model_sum(const void *p, size_t n);

/* Write a model file of size bytes (fdatasync'd); *sum gets the pattern's sum. */
int model_file_write(const char *path, uint64_t size, uint64_t *sum);
/* The same from word first_word of the pattern (distinct bytes for distinct first words). */
int model_file_write_at(const char *path, uint64_t first_word, uint64_t size, uint64_t *sum);

/* Read a file through (into the page cache). */
int file_warm(const char *path);

/* Fraction (0..1) of a file's pages in the page cache (mincore; touches nothing). */
double file_residency(const char *path);

/* A field of /proc/meminfo in bytes ("MemAvailable"; HugePages_* are counts), 0 if absent. */
uint64_t meminfo(const char *field);

/*
 * size, halved (not below 16 MiB) until copies models of that size plus
 * fixed bytes fit in percent of MemAvailable; a note ("SCENARIO: ... cannot
 * hold WHAT of a ... model") says so when it had to halve.
 */
uint64_t size_fitting_memory(const char *scenario, const char *what, uint64_t size,
                             unsigned copies, uint64_t fixed, unsigned percent);

/* Free bytes in the file system holding path, or 0 on error. */
uint64_t fs_avail(const char *path);

/* 0 if the file system holding dir has need bytes free, else an error naming what needs them. */
int fs_require(const char *dir, uint64_t need, const char *what);

/* Is dir on hugetlbfs? */
bool fs_is_hugetlbfs(const char *dir);
/* Is dir on tmpfs or ramfs (not a disk)? */
bool fs_is_memory(const char *dir);

/* Proportional set size of a process in bytes (smaps_rollup), 0 on error. */
uint64_t proc_pss(pid_t pid);

/* The path of an executable on $PATH into buf; false if there is none. */
bool find_on_path(const char *prog, char *buf, size_t len);
/*
 * A program the bench runs: $env_var if set (an error, -1, if it is not
 * executable), else each of rel (NULL-terminated, relative to the directory
 * of self, this program), else prog on $PATH. 0 (bin holds it), or 1 when
 * none is there: the caller says where it looked and what to do.
 */
int find_program(const char *self, const char *env_var, const char *const *rel, const char *prog,
                 char *bin, size_t len);

/* "1.5 GiB" */
const char *fmt_bytes(uint64_t v, char *buf, size_t len);

/* Parse "64M", "1G", "4096" (K, M, G, T: powers of 1024). */
int parse_size(const char *s, uint64_t *out);

#endif

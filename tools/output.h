/*
 * output.h - human output: sizes, durations, ages and times as people read
 * them, aligned tables, and "key  value" blocks.
 *
 * Formats (docs/cli.md):
 *   sizes      binary units, 3 significant digits: "812 B", "1.50 KiB",
 *              "12.3 MiB", "512 MiB", "1.02 GiB"
 *   durations  "850 ms", "1.24 s", "3 min 5 s", "2 h 3 min", "4 d 2 h"
 *   ages       the largest whole unit: "12 s ago", "5 min ago", "2 h ago",
 *              "3 d ago" ("in the future" if the clock went back)
 *   times      local time, "2024-05-01 12:34:56"
 */
#ifndef MCACHE_TOOLS_OUTPUT_H
#define MCACHE_TOOLS_OUTPUT_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#define FMT_LEN 48 /* room for any single formatted value below */

const char *fmt_size(uint64_t bytes, char *buf);
const char *fmt_duration(double seconds, char *buf);
const char *fmt_age(uint64_t then_ns, uint64_t now_ns, char *buf);
const char *fmt_time(uint64_t ns, char *buf);
/* Bytes per second as "1.23 GB/s" (decimal: how disks and links are rated). */
const char *fmt_rate(double bytes_per_s, char *buf);

/*
 * A table: a header row and rows of cells, printed with every column as
 * wide as its widest cell, two spaces between columns, no trailing blanks.
 * Columns flagged right-aligned (numbers, sizes) are padded on the left.
 * Empty or NULL cells print as "-". Cells are copied.
 */
struct table {
    size_t ncols, nrows, cap;
    const char *head[16];
    unsigned right; /* bit i: column i is right-aligned */
    char **cells;   /* nrows * ncols */
    char **notes;   /* the first nnotes_set rows' notes, NULL: none (table_note) */
    size_t nnotes_set, capnotes;
};

void table_init(struct table *t, unsigned right_mask, const char *const *head);
void table_add(struct table *t, const char *const *row);
/*
 * A line of free text under the last row added, printed after it starting
 * where the second column starts; it does not widen any column.
 */
void table_note(struct table *t, const char *note);
/* Print with `indent` leading spaces on every line. */
void table_print(const struct table *t, FILE *f, int indent);
void table_free(struct table *t);

/* "label" padded to width, then the value; printf-style. */
void kv(FILE *f, int width, const char *label, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

#endif

/*
 * output.c - human sizes, durations, ages and times; aligned tables.
 */
#include "tools/output.h"

#include <stdarg.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/vec.h"

const char *fmt_size(uint64_t bytes, char *buf)
{
    static const char *units[] = {"B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"};
    double v = (double)bytes;
    int u = 0;

    if (bytes < 1024) {
        snprintf(buf, FMT_LEN, "%llu B", (unsigned long long)bytes);
        return buf;
    }
    while (v >= 1024 && u < 6)
        v /= 1024, u++;
    /* Three significant digits; a value that rounds up to 1024 moves up a unit. */
    if (v >= 1023.5 && u < 6)
        v /= 1024, u++;
    snprintf(buf, FMT_LEN, v < 9.995 ? "%.2f %s" : v < 99.95 ? "%.1f %s" : "%.0f %s", v, units[u]);
    return buf;
}

const char *fmt_duration(double s, char *buf)
{
    unsigned long long t;

    if (s < 0)
        s = 0;
    if (s < 1) {
        snprintf(buf, FMT_LEN, "%.0f ms", s * 1000);
        return buf;
    }
    if (s < 60) {
        snprintf(buf, FMT_LEN, s < 9.995 ? "%.2f s" : "%.1f s", s);
        return buf;
    }
    t = (unsigned long long)s;
    if (t < 3600)
        snprintf(buf, FMT_LEN, "%llu min %llu s", t / 60, t % 60);
    else if (t < 86400)
        snprintf(buf, FMT_LEN, "%llu h %llu min", t / 3600, t % 3600 / 60);
    else
        snprintf(buf, FMT_LEN, "%llu d %llu h", t / 86400, t % 86400 / 3600);
    return buf;
}

const char *fmt_age(uint64_t then_ns, uint64_t now_ns, char *buf)
{
    uint64_t s;

    if (then_ns > now_ns + 1000000000ull) {
        snprintf(buf, FMT_LEN, "in the future");
        return buf;
    }
    s = then_ns > now_ns ? 0 : (now_ns - then_ns) / 1000000000ull;
    if (s < 60)
        snprintf(buf, FMT_LEN, "%llu s ago", (unsigned long long)s);
    else if (s < 3600)
        snprintf(buf, FMT_LEN, "%llu min ago", (unsigned long long)s / 60);
    else if (s < 86400)
        snprintf(buf, FMT_LEN, "%llu h ago", (unsigned long long)s / 3600);
    else
        snprintf(buf, FMT_LEN, "%llu d ago", (unsigned long long)s / 86400);
    return buf;
}

const char *fmt_time(uint64_t ns, char *buf)
{
    time_t t = (time_t)(ns / 1000000000ull);
    struct tm tm;

    if (!localtime_r(&t, &tm) || !strftime(buf, FMT_LEN, "%Y-%m-%d %H:%M:%S", &tm))
        snprintf(buf, FMT_LEN, "@%lld", (long long)t);
    return buf;
}

const char *fmt_rate(double bps, char *buf)
{
    if (bps >= 1e9)
        snprintf(buf, FMT_LEN, "%.2f GB/s", bps / 1e9);
    else if (bps >= 1e6)
        snprintf(buf, FMT_LEN, "%.0f MB/s", bps / 1e6);
    else
        snprintf(buf, FMT_LEN, "%.0f kB/s", bps / 1e3);
    return buf;
}

/* ---- tables ---------------------------------------------------------- */

void table_init(struct table *t, unsigned right_mask, const char *const *head)
{
    memset(t, 0, sizeof(*t));
    t->right = right_mask;
    while (head[t->ncols] && t->ncols < 16) {
        t->head[t->ncols] = head[t->ncols];
        t->ncols++;
    }
}

/*
 * A copy of s with control bytes (< 0x20, 0x7f) written \xNN: cells hold
 * text others chose (reasons, audit entries, HTTP clients' names) and a
 * terminal must not take it for escape sequences. Aborts without memory.
 */
static char *ctl_escaped(const char *s)
{
    static const char hex[] = "0123456789abcdef";
    size_t n = 0;
    char *b, *w;

    for (const char *p = s; *p; p++)
        n += (unsigned char)*p < 0x20 || *p == 0x7f ? 4 : 1;
    if ((b = malloc(n + 1)) == NULL)
        abort(); /* a CLI listing cannot go on without memory */
    w = b;
    for (const char *p = s; *p; p++) {
        unsigned char c = (unsigned char)*p;

        if (c < 0x20 || c == 0x7f) {
            *w++ = '\\';
            *w++ = 'x';
            *w++ = hex[c >> 4];
            *w++ = hex[c & 15];
        } else {
            *w++ = (char)c;
        }
    }
    *w = '\0';
    return b;
}

void table_add(struct table *t, const char *const *row)
{
    /* The array's items are rows of ncols cells (every table has a column). */
    if (mc_vec_reserve(&t->cells, &t->cap, t->nrows + 1, t->ncols * sizeof(*t->cells), 16))
        abort(); /* a CLI listing cannot go on without memory */
    for (size_t i = 0; i < t->ncols; i++) {
        const char *s = row[i] && *row[i] ? row[i] : "-";
        char *d = ctl_escaped(s);

        t->cells[t->nrows * t->ncols + i] = d;
    }
    t->nrows++;
}

void table_note(struct table *t, const char *note)
{
    if (t->nrows == 0 || note == NULL || *note == '\0')
        return;
    if (mc_vec_reserve(&t->notes, &t->capnotes, t->nrows, sizeof(*t->notes), 16))
        abort();
    /* rows added since the last note have none; the last row may have one */
    for (size_t r = t->nnotes_set; r < t->nrows; r++)
        t->notes[r] = NULL;
    free(t->notes[t->nrows - 1]);
    t->notes[t->nrows - 1] = ctl_escaped(note);
    t->nnotes_set = t->nrows;
}

/* Display width: UTF-8 continuation bytes take no column. */
static size_t width(const char *s)
{
    size_t w = 0;

    for (; *s; s++)
        w += ((unsigned char)*s & 0xc0) != 0x80;
    return w;
}

static void print_row(const struct table *t, FILE *f, int indent, const size_t *w,
                      const char *const *cells)
{
    fprintf(f, "%*s", indent, "");
    for (size_t i = 0; i < t->ncols; i++) {
        size_t pad = w[i] - width(cells[i]);
        bool last = i + 1 == t->ncols;

        if (t->right & (1u << i))
            fprintf(f, "%*s%s", (int)pad, "", cells[i]);
        else
            fprintf(f, "%s%*s", cells[i], last ? 0 : (int)pad, "");
        if (!last)
            fputs("  ", f);
    }
    fputc('\n', f);
}

void table_print(const struct table *t, FILE *f, int indent)
{
    size_t w[16] = {0};

    for (size_t i = 0; i < t->ncols; i++) {
        w[i] = width(t->head[i]);
        for (size_t r = 0; r < t->nrows; r++) {
            size_t x = width(t->cells[r * t->ncols + i]);
            if (x > w[i])
                w[i] = x;
        }
    }
    print_row(t, f, indent, w, t->head);
    for (size_t r = 0; r < t->nrows; r++) {
        print_row(t, f, indent, w, (const char *const *)&t->cells[r * t->ncols]);
        if (r < t->nnotes_set && t->notes[r])
            fprintf(f, "%*s%s\n", indent + (t->ncols > 1 ? (int)w[0] + 2 : 2), "", t->notes[r]);
    }
}

void table_free(struct table *t)
{
    for (size_t i = 0; i < t->nrows * t->ncols; i++)
        free(t->cells[i]);
    free(t->cells);
    for (size_t i = 0; i < t->nnotes_set; i++)
        free(t->notes[i]);
    free(t->notes);
    memset(t, 0, sizeof(*t));
}

void kv(FILE *f, int w, const char *label, const char *fmt, ...)
{
    va_list ap;

    fprintf(f, "%-*s  ", w, label);
    va_start(ap, fmt);
    vfprintf(f, fmt, ap);
    va_end(ap);
    fputc('\n', f);
}

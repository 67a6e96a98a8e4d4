/*
 * progress.c - the progress bar (see progress.h).
 */
#include "tools/progress.h"

#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "common/clock.h"
#include "tools/cli.h"
#include "tools/output.h"

#define REDRAW_NS 100000000ull /* 10 frames a second at most */
#define TAIL_MAX  56 /* "  [", "]  " and the widest numbers: "100%  1023 MiB/1023 MiB..." */

static int term_columns(void)
{
    struct winsize ws;

    if (ioctl(STDERR_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_col >= 20)
        return ws.ws_col;
    return 80;
}

void progress_start(struct progress *p, const struct cli *c, const char *label, uint64_t total)
{
    const char *d = getenv("MCACHE_PROGRESS_DELAY");

    memset(p, 0, sizeof(*p));
    p->on = !c->quiet && isatty(STDERR_FILENO);
    snprintf(p->label, sizeof(p->label), "%s", label);
    p->total = total;
    p->t0_ns = mc_mono_ns();
    p->delay_ns = (d && *d ? strtoull(d, NULL, 10) : 250) * 1000000ull;
    if (p->on && !p->delay_ns)
        progress_update(p, 0);
}

/* Appends a field to the tail when the whole field fits in room columns. */
static void __attribute__((format(printf, 4, 5)))
tail_add(char *tail, size_t size, size_t room, const char *fmt, ...)
{
    size_t n = strlen(tail);
    va_list ap;
    int w;

    va_start(ap, fmt);
    w = vsnprintf(tail + n, size - n, fmt, ap);
    va_end(ap);
    if (w < 0 || n + (size_t)w > room)
        tail[n] = '\0';
}

void progress_update(struct progress *p, uint64_t done)
{
    char line[512], bar[64], sd[FMT_LEN], st[FMT_LEN], sr[FMT_LEN], se[FMT_LEN], tail[192];
    uint64_t now = mc_mono_ns();
    double secs = (double)(now - p->t0_ns) / 1e9, frac, rate;
    int cols, lw, bw, fill;
    size_t room;
    bool narrow;

    if (!p->on || now - p->t0_ns < p->delay_ns)
        return;
    if (p->drawn && now - p->last_ns < REDRAW_NS && done < p->total)
        return;
    p->last_ns = now;
    /*
     * The line must fit the terminal ("\r" only returns within one row), and
     * the bar keeps one width while the numbers after it change theirs: the
     * label gives way first, then the bar, then the ETA and the rate.
     */
    cols = term_columns();
    lw = (int)strlen(p->label);
    if (lw > cols - TAIL_MAX - 10)
        lw = cols - TAIL_MAX - 10;
    bw = cols - TAIL_MAX - lw;
    if (bw > 30)
        bw = 30;
    narrow = lw < 8 || bw < 10;
    room = narrow ? (size_t)cols - 1 : sizeof(tail) - 1;
    frac = p->total ? (double)(done > p->total ? p->total : done) / (double)p->total : 0;
    rate = secs > 0 ? (double)done / secs : 0;
    snprintf(tail, sizeof(tail), "%3.0f%%  %s/%s", frac * 100, fmt_size(done, sd),
             fmt_size(p->total, st));
    if (rate > 0)
        tail_add(tail, sizeof(tail), room, "  %s", fmt_rate(rate, sr));
    if (rate > 0 && done < p->total)
        tail_add(tail, sizeof(tail), room, "  ETA %s",
                 fmt_duration((double)(p->total - done) / rate, se));
    if (narrow) { /* just the numbers, as many as fit */
        snprintf(line, sizeof(line), "\r%.*s\033[K", (int)room, tail);
    } else {
        fill = (int)(frac * bw + 0.5);
        memset(bar, '#', (size_t)fill);
        memset(bar + fill, '-', (size_t)(bw - fill));
        bar[bw] = '\0';
        snprintf(line, sizeof(line), "\r%.*s  [%s]  %s\033[K", lw, p->label, bar, tail);
    }
    fputs(line, stderr);
    fflush(stderr);
    p->drawn = true;
}

void progress_clear(struct progress *p)
{
    if (p->drawn) {
        fputs("\r\033[K", stderr);
        fflush(stderr);
    }
    p->drawn = false;
}

void progress_end(struct progress *p)
{
    progress_clear(p);
    p->on = false;
}

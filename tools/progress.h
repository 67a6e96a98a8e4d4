/*
 * progress.h - the progress bar on stderr for pushes, loads and verifies.
 *
 * Drawn only when stderr is a terminal and --quiet was not given, and only
 * once the operation has run longer than $MCACHE_PROGRESS_DELAY
 * milliseconds (default 250: quick operations never flicker). Redrawn at
 * most ten times a second on one line ("\r" and erase-to-end), and erased
 * when the operation ends, so the result printed after it stands alone:
 *
 *   push resnet@1.2.0  [###############---------------]   52%  532 MiB/1.00 GiB  1.21 GB/s  ETA 1 s
 */
#ifndef MCACHE_TOOLS_PROGRESS_H
#define MCACHE_TOOLS_PROGRESS_H

#include <stdbool.h>
#include <stdint.h>

struct cli;

struct progress {
    bool on;    /* may draw */
    bool drawn; /* the line currently shows a bar */
    char label[80];
    uint64_t total;
    uint64_t t0_ns, last_ns, delay_ns;
};

void progress_start(struct progress *p, const struct cli *c, const char *label, uint64_t total);
/* done of total bytes so far. */
void progress_update(struct progress *p, uint64_t done);
/* Erase the bar (if drawn), e.g. to print a message; the next update redraws it. */
void progress_clear(struct progress *p);
/* Erase the bar for good. */
void progress_end(struct progress *p);

#endif

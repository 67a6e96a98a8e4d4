/*
 * machine.c - what the figures were measured on: CPU, cores, memory,
 * kernel, and the pages that back the arena.
 */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/utsname.h>
#include <time.h>
#include <unistd.h>

#include "bench/bench.h"
#include "bench/model.h"
#include "shm/arena.h"

/* Value of "key<spaces>:" or "key=" in a text file, quotes stripped. */
static void file_field(const char *path, const char *key, char sep, char *out, size_t len)
{
    char line[512];
    size_t kl = strlen(key);
    FILE *f = fopen(path, "r");

    if (!f)
        return;
    while (fgets(line, sizeof(line), f)) {
        char *v = line + kl;

        if (strncmp(line, key, kl))
            continue;
        while (*v == ' ' || *v == '\t')
            v++;
        if (*v != sep)
            continue;
        v++;
        while (*v == ' ' || *v == '"')
            v++;
        v[strcspn(v, "\"\n")] = '\0';
        snprintf(out, len, "%s", v);
        break;
    }
    fclose(f);
}

#define VIRTIO_ID_BALLOON          5
#define VIRTIO_BALLOON_F_REPORTING 5 /* feature bit: free page reporting */

/* The first line of a small file into buf ("" if unreadable). */
static void first_line(const char *path, char *buf, size_t len)
{
    FILE *f = fopen(path, "r");

    buf[0] = '\0';
    if (f) {
        if (!fgets(buf, (int)len, f))
            buf[0] = '\0';
        fclose(f);
    }
}

bool vm_free_page_reporting(void)
{
    DIR *d = opendir("/sys/bus/virtio/devices");
    struct dirent *e;
    bool on = false;

    if (!d)
        return false;
    while (!on && (e = readdir(d))) {
        char path[320], id[32], feat[256];

        if (e->d_name[0] == '.')
            continue;
        snprintf(path, sizeof(path), "/sys/bus/virtio/devices/%s/device", e->d_name);
        first_line(path, id, sizeof(id));
        if (strtol(id, NULL, 0) != VIRTIO_ID_BALLOON)
            continue;
        /* "features" is one '0'/'1' character per feature bit, bit 0 first. */
        snprintf(path, sizeof(path), "/sys/bus/virtio/devices/%s/features", e->d_name);
        first_line(path, feat, sizeof(feat));
        on = strlen(feat) > VIRTIO_BALLOON_F_REPORTING && feat[VIRTIO_BALLOON_F_REPORTING] == '1';
    }
    closedir(d);
    return on;
}

void machine_get(struct bench *b, struct machine *m)
{
    struct utsname u;
    time_t now = time(NULL);
    uint32_t backing = 0;

    memset(m, 0, sizeof(*m));
    snprintf(m->cpu, sizeof(m->cpu), "unknown CPU");
    file_field("/proc/cpuinfo", "model name", ':', m->cpu, sizeof(m->cpu));
    m->cores = (unsigned)sysconf(_SC_NPROCESSORS_ONLN);
    m->memory = meminfo("MemTotal");
    if (uname(&u) == 0)
        snprintf(m->kernel, sizeof(m->kernel), "%s %s %s", u.sysname, u.release, u.version);
    file_field("/etc/os-release", "PRETTY_NAME", '=', m->os, sizeof(m->os));
    if (mc_backing_detect(b->o.shm_dir, &m->page_size, &backing) == 0)
        snprintf(m->backing, sizeof(m->backing), "%s", mc_backing_name(backing));
    m->huge_page_size = meminfo("Hugepagesize");
    m->huge_pages_free = meminfo("HugePages_Free");
    m->free_page_reporting = vm_free_page_reporting();
    strftime(m->date, sizeof(m->date), "%Y-%m-%dT%H:%M:%SZ", gmtime(&now));
}

void machine_line(const struct machine *m, char *buf, size_t len)
{
    char release[64] = "";

    sscanf(m->kernel, "%*s %63s", release);
    snprintf(buf, len, "%s, %u cores, %.1f GiB, Linux %s, %.10s", m->cpu, m->cores,
             (double)m->memory / GiB, release, m->date);
}

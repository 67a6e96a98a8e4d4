/*
 * model.c - the benchmark's model bytes, full reads, page-cache residency
 * and host facts (see model.h).
 */
#include "bench/model.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <linux/magic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <unistd.h>

#include "bench/bench.h"

static inline uint64_t pattern_word(uint64_t i)
{
    uint64_t z = i * 0x9e3779b97f4a7c15ull + 0x6d63616368650001ull; /* splitmix64 */

    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

uint64_t model_fill(void *p, uint64_t first_word, size_t n)
{
    uint64_t *w = p, sum = 0;

    for (size_t i = 0; i < n / 8; i++) {
        w[i] = pattern_word(first_word + i);
        sum += w[i];
    }
    return sum;
}

uint64_t model_sum(const void *p, size_t n)
{
    const uint64_t *w = p;
    uint64_t a = 0, b = 0, c = 0, d = 0;
    size_t i = 0, words = n / 8;

    /* Four independent chains keep the loads, not the adds, the limit. */
    for (; i + 4 <= words; i += 4) {
        a += w[i];
        b += w[i + 1];
        c += w[i + 2];
        d += w[i + 3];
    }
    for (; i < words; i++)
        a += w[i];
    return a + b + c + d;
}

int model_file_write(const char *path, uint64_t size, uint64_t *sum)
{
    return model_file_write_at(path, 0, size, sum);
}

int model_file_write_at(const char *path, uint64_t first_word, uint64_t size, uint64_t *sum)
{
    const size_t chunk = 8 * MiB;
    uint8_t *buf = malloc(chunk);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    uint64_t s = 0;

    if (!buf || fd < 0) {
        free(buf);
        if (fd >= 0)
            close(fd);
        return bench_error("creating model file %s: %s", path, strerror(errno));
    }
    for (uint64_t off = 0; off < size; off += chunk) {
        size_t n = size - off < chunk ? (size_t)(size - off) : chunk;

        s += model_fill(buf, first_word + off / 8, n);
        for (size_t done = 0; done < n;) {
            ssize_t w = write(fd, buf + done, n - done);

            if (w < 0 && errno == EINTR)
                continue;
            if (w <= 0) {
                int e = errno;

                free(buf);
                close(fd);
                return bench_error("writing model file %s: %s (%s free there)", path, strerror(e),
                                   fmt_bytes(fs_avail(path), (char[32]){0}, 32));
            }
            done += (size_t)w;
        }
    }
    free(buf);
    if (fdatasync(fd) != 0 || close(fd) != 0)
        return bench_error("syncing model file %s: %s", path, strerror(errno));
    *sum = s;
    return 0;
}

int file_warm(const char *path)
{
    static char buf[1 << 20];
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    ssize_t n;

    if (fd < 0)
        return bench_error("opening %s: %s", path, strerror(errno));
    while ((n = read(fd, buf, sizeof(buf))) > 0)
        ;
    close(fd);
    return n < 0 ? bench_error("reading %s: %s", path, strerror(errno)) : 0;
}

double file_residency(const char *path)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    long page = sysconf(_SC_PAGESIZE);
    struct stat st;
    unsigned char *vec;
    size_t pages, in = 0;
    void *p;

    if (fd < 0 || fstat(fd, &st) != 0 || st.st_size == 0) {
        if (fd >= 0)
            close(fd);
        return 0;
    }
    p = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_SHARED, fd, 0);
    close(fd);
    if (p == MAP_FAILED)
        return 0;
    pages = ((size_t)st.st_size + (size_t)page - 1) / (size_t)page;
    vec = malloc(pages);
    if (vec && mincore(p, (size_t)st.st_size, vec) == 0)
        for (size_t i = 0; i < pages; i++)
            in += vec[i] & 1;
    free(vec);
    munmap(p, (size_t)st.st_size);
    return (double)in / (double)pages;
}

uint64_t meminfo(const char *field)
{
    char line[256];
    size_t fl = strlen(field);
    uint64_t kb = 0;
    FILE *f = fopen("/proc/meminfo", "r");

    if (!f)
        return 0;
    while (fgets(line, sizeof(line), f))
        if (!strncmp(line, field, fl) && line[fl] == ':') {
            kb = strtoull(line + fl + 1, NULL, 10);
            if (strstr(line, "kB")) /* HugePages_Total/Free/... are counts */
                kb *= 1024;
            break;
        }
    fclose(f);
    return kb;
}

uint64_t size_fitting_memory(const char *scenario, const char *what, uint64_t size,
                             unsigned copies, uint64_t fixed, unsigned percent)
{
    uint64_t avail = meminfo("MemAvailable"), want = size;
    char a[32], w[32], g[32];

    while (size > 16 * MiB && copies * size + fixed > avail / 100 * percent)
        size /= 2;
    if (size != want)
        bench_note("%s: %s available cannot hold %s of a %s model; using a %s model instead",
                   scenario, fmt_bytes(avail, a, sizeof(a)), what, fmt_bytes(want, w, sizeof(w)),
                   fmt_bytes(size, g, sizeof(g)));
    return size;
}

uint64_t fs_avail(const char *path)
{
    struct statfs sf;

    if (statfs(path, &sf) != 0)
        return 0;
    return (uint64_t)sf.f_bavail * (uint64_t)sf.f_bsize;
}

int fs_require(const char *dir, uint64_t need, const char *what)
{
    uint64_t avail = fs_avail(dir);
    char a[32], n[32];

    if (avail >= need)
        return 0;
    return bench_error("%s has %s free; %s needs %s there. Free space, point the bench "
                       "elsewhere (--shm-dir / --tmp-dir), or use a smaller --size",
                       dir, fmt_bytes(avail, a, sizeof(a)), what, fmt_bytes(need, n, sizeof(n)));
}

bool fs_is_hugetlbfs(const char *dir)
{
    struct statfs sf;

    return statfs(dir, &sf) == 0 && (unsigned long)sf.f_type == HUGETLBFS_MAGIC;
}

bool fs_is_memory(const char *dir)
{
    struct statfs sf;

    return statfs(dir, &sf) == 0 &&
           ((unsigned long)sf.f_type == TMPFS_MAGIC || (unsigned long)sf.f_type == RAMFS_MAGIC ||
            (unsigned long)sf.f_type == HUGETLBFS_MAGIC);
}

uint64_t proc_pss(pid_t pid)
{
    char path[64], line[256];
    uint64_t kb = 0;
    FILE *f;

    snprintf(path, sizeof(path), "/proc/%d/smaps_rollup", (int)pid);
    f = fopen(path, "r");
    if (!f)
        return 0;
    while (fgets(line, sizeof(line), f))
        if (sscanf(line, "Pss: %" SCNu64 " kB", &kb) == 1)
            break;
    fclose(f);
    return kb * 1024;
}

const char *fmt_bytes(uint64_t v, char *buf, size_t len)
{
    if (v >= GiB)
        snprintf(buf, len, "%.1f GiB", (double)v / GiB);
    else if (v >= MiB)
        snprintf(buf, len, "%.0f MiB", (double)v / MiB);
    else
        snprintf(buf, len, "%.0f KiB", (double)v / KiB);
    return buf;
}

int parse_size(const char *s, uint64_t *out)
{
    static const char units[] = "kmgt";
    const char *u;
    char *end;
    unsigned long long v;

    errno = 0;
    v = strtoull(s, &end, 10);
    if (errno || end == s)
        return -1;
    if (*end && (u = strchr(units, tolower((unsigned char)*end)))) {
        v <<= 10 * (u - units + 1);
        end++;
    }
    if (*end == 'i' && end[1] == 'B')
        end += 2;
    else if (*end == 'B')
        end++;
    if (*end)
        return -1;
    *out = v;
    return 0;
}

int find_program(const char *self, const char *env_var, const char *const *rel, const char *prog,
                 char *bin, size_t len)
{
    const char *e = getenv(env_var);
    char dir[900], *slash;

    if (e && *e) {
        snprintf(bin, len, "%s", e);
        return access(bin, X_OK) == 0
                   ? 0
                   : bench_error("$%s is %s, which is not an executable file", env_var, e);
    }
    snprintf(dir, sizeof(dir), "%s", self);
    if ((slash = strrchr(dir, '/')))
        *slash = '\0';
    for (size_t i = 0; rel[i]; i++) {
        snprintf(bin, len, "%s/%s", dir, rel[i]);
        if (access(bin, X_OK) == 0)
            return 0;
    }
    return find_on_path(prog, bin, len) ? 0 : 1;
}

bool find_on_path(const char *prog, char *buf, size_t len)
{
    const char *path = getenv("PATH");
    char dirs[4096];

    snprintf(dirs, sizeof(dirs), "%s", path && *path ? path : "/usr/local/bin:/usr/bin:/bin");
    for (char *save, *d = strtok_r(dirs, ":", &save); d; d = strtok_r(NULL, ":", &save)) {
        snprintf(buf, len, "%s/%s", d, prog);
        if (access(buf, X_OK) == 0)
            return true;
    }
    return false;
}

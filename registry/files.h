/*
 * files.h - what the parts of the registry that keep files share (the
 * journal backend, the local artifact store): names in the store directory
 * both use, fsyncing a directory, and the crash points the crash tests
 * compile in (used by the rules too).
 */
#ifndef MCACHE_REGISTRY_FILES_H
#define MCACHE_REGISTRY_FILES_H

/* STORE/damaged/: what repair, a torn-tail cut or an orphan sweep set aside. */
#define MC_DAMAGED_DIR "damaged"

/* fsync a directory by fd (rel NULL), or by path relative to dirfd. 0 or -errno. */
int mc_fsync_dir(int dirfd, const char *rel);

#ifdef MC_REGISTRY_CRASHPOINTS
/* SIGKILL this process here if $MCACHE_CRASH_AT names this point. */
void mc_crashpoint(const char *point);
#else
#define mc_crashpoint(point) ((void)0)
#endif

#endif
